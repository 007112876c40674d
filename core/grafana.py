"""Small builders for Grafana dashboard JSON, shared by every package's dashboard code.

Dashboards are plain dicts (Grafana's JSON model, schemaVersion 42). Each domain package
has ``<package>/dashboard.py`` with ``def dashboards() -> list[tuple[str, dict]]`` giving
(folder, dashboard); ``mebuku grafana build`` writes them to
``grafana/dashboards/<folder>/<uid>.json`` and a test checks the committed files are current.
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

SCHEMA_VERSION = 42
SQL_DATASOURCE: dict[str, str] = {
    "type": "grafana-postgresql-datasource",
    "uid": "mebuku-timescale",
}
API_DATASOURCE: dict[str, str] = {"type": "simpod-json-datasource", "uid": "mebuku-api"}

Panel = dict[str, Any]


def sql_target(sql: str, fmt: str = "time_series", ref_id: str = "A") -> dict[str, Any]:
    """A raw-SQL query. ``fmt`` is "time_series" or "table"."""
    return {
        "refId": ref_id,
        "datasource": SQL_DATASOURCE,
        "editorMode": "code",
        "format": fmt,
        "rawQuery": True,
        "rawSql": sql.strip(),
    }


class PanelOptions(TypedDict, total=False):
    """The optional keywords of :func:`panel`, each omitted when not given."""

    unit: str | None
    description: str
    thresholds: list[tuple[float | None, str]] | None
    options: dict[str, Any] | None
    field_config: dict[str, Any] | None


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    grid: tuple[int, int, int, int],
    **opts: Unpack[PanelOptions],
) -> Panel:
    """One panel; ``grid`` is (x, y, w, h) on Grafana's 24-column grid.

    ``thresholds`` is [(None, "red"), (25, "green")]: the first step's value must be None.
    """
    unit, thresholds = opts.get("unit"), opts.get("thresholds")
    field_config, options = opts.get("field_config"), opts.get("options")
    description = opts.get("description", "")
    defaults: dict[str, Any] = dict(field_config or {})
    if unit:
        defaults["unit"] = unit
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in thresholds],
        }
    x, y, w, h = grid
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"] if targets else SQL_DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
    }


def query_variable(
    name: str, sql: str, *, label: str | None = None, multi: bool = True, include_all: bool = True
) -> dict[str, Any]:
    """A template variable filled by SQL (Grafana expands ``$name`` to a quoted list)."""
    return {
        "type": "query",
        "name": name,
        "label": label or name,
        "datasource": SQL_DATASOURCE,
        "query": sql.strip(),
        "definition": sql.strip(),
        "refresh": 2,
        "multi": multi,
        "includeAll": include_all,
        "allValue": None,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if include_all else {},
        "sort": 1,
    }


class DashboardOptions(TypedDict, total=False):
    """The optional keywords of :func:`dashboard`, each with its default when not given."""

    description: str
    variables: list[dict[str, Any]] | None
    time_from: str
    refresh: str


def dashboard(
    uid: str,
    title: str,
    panels: list[Panel],
    *,
    tags: list[str],
    **opts: Unpack[DashboardOptions],
) -> dict[str, Any]:
    """A complete dashboard; panel ids are assigned in order."""
    description, variables = opts.get("description", ""), opts.get("variables")
    time_from, refresh = opts.get("time_from", "now-6h"), opts.get("refresh", "30s")
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": sorted(tags),
        "timezone": "Asia/Tokyo",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": refresh,
        "templating": {"list": variables or []},
        "annotations": {"list": []},
        "panels": panels,
    }
