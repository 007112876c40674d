"""Small builders for Grafana dashboard JSON, shared by every package's dashboard code.

Dashboards are plain dicts (Grafana's JSON model, schemaVersion 42). Each domain package
has ``<package>/dashboard.py`` with ``def dashboards() -> list[tuple[str, dict]]`` giving
(folder, dashboard); ``mebuku grafana build`` writes them to
``grafana/dashboards/<folder>/<uid>.json`` and a test checks the committed files are current.
"""

from __future__ import annotations

import re
from typing import Any

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


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    grid: tuple[int, int, int, int],
    unit: str | None = None,
    description: str = "",
    thresholds: list[tuple[float | None, str]] | None = None,
    options: dict[str, Any] | None = None,
    field_config: dict[str, Any] | None = None,
) -> Panel:
    """One panel; ``grid`` is (x, y, w, h) on Grafana's 24-column grid.

    ``thresholds`` is [(None, "red"), (25, "green")]: the first step's value must be None.
    """
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


def rollup_interval(p: Panel) -> str | None:
    """The bucket width of the coarsest rollup a panel's SQL groups by ``$__interval``
    (``grafana.*_1m``, ``_5m``, ``_1h``), made Grafana's minimum interval for the panel:
    a count per ``$__interval`` then never means per minute at one zoom and per 20 s at
    another, and a percentile series has no empty steps between hours."""
    widths = [
        m.group(1)
        for t in p.get("targets", [])
        if "$__interval" in t.get("rawSql", "")
        for m in _ROLLUP.finditer(t["rawSql"])
    ]
    return max(widths, key=_SECONDS.__getitem__) if widths else None


_ROLLUP = re.compile(r"\bgrafana\.\w+_(1m|5m|1h)\b")
_SECONDS = {"1m": 60, "5m": 300, "1h": 3600}


def dashboard(
    uid: str,
    title: str,
    panels: list[Panel],
    *,
    tags: list[str],
    description: str = "",
    variables: list[dict[str, Any]] | None = None,
    time_from: str = "now-6h",
    refresh: str = "30s",
) -> dict[str, Any]:
    """A complete dashboard; panel ids are assigned in order."""
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        if width := rollup_interval(p):
            p.setdefault("interval", width)
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
