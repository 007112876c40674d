"""Small builders for Grafana dashboard JSON, shared by every package's dashboard code.

Dashboards are plain dicts (Grafana's JSON model, schemaVersion 42). Each domain package
has ``<package>/dashboard.py`` with ``def dashboards() -> list[tuple[str, dict]]`` giving
(folder, dashboard); ``mebuku grafana build`` writes them to
``grafana/dashboards/<folder>/<uid>.json`` and a test checks the committed files are current.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from core.i18n import N_, Lang, gettext

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


# --- language ------------------------------------------------------------------------------
# Dashboards are built once per language (api/grafana/build.py): each ``dashboards(lang)``
# takes its words from the catalogue (core/i18n.py) through ``gettext_for(lang)``. SQL keeps
# stable English column aliases; what people read comes from field overrides (display
# names, units), value mappings and, for codes that become series or stat names, a CASE
# built from the catalogue (:func:`sql_label`).

Gettext = Callable[[str], str]

# Grafana's time units print English abbreviations ("1.5 min"); Japanese uses a suffix.
_JA_TIME_UNITS: dict[str, str] = {"s": N_("sec"), "m": N_("min")}


def unit_for(unit: str, lang: Lang) -> str:
    """A Grafana unit id in ``lang``: Japanese time units become ``suffix:秒``/``suffix:分``."""
    if lang == "ja" and unit in _JA_TIME_UNITS:
        return "suffix:" + gettext(_JA_TIME_UNITS[unit], lang)
    return unit


def _override(p: Panel, field: str, props: list[dict[str, Any]]) -> None:
    overrides: list[dict[str, Any]] = p["fieldConfig"]["overrides"]
    for o in overrides:
        if o["matcher"] == {"id": "byName", "options": field}:
            o["properties"].extend(props)
            return
    overrides.append({"matcher": {"id": "byName", "options": field}, "properties": props})


def names(p: Panel, labels: Mapping[str, str]) -> Panel:
    """Show each query column (or series) ``field`` as ``labels[field]`` (legends, headers,
    tooltips, stat names). The SQL keeps its alias, so queries stay language-neutral."""
    for field, label in labels.items():
        _override(p, field, [{"id": "displayName", "value": label}])
    return p


def field_units(p: Panel, units: Mapping[str, str]) -> Panel:
    """A unit per column (tables whose columns measure different things)."""
    for field, unit in units.items():
        _override(p, field, [{"id": "unit", "value": unit}])
    return p


def hidden(p: Panel, fields: Sequence[str]) -> Panel:
    """Columns kept for tooltips, links and joins (ids), not shown as table columns."""
    for field in fields:
        _override(p, field, [{"id": "custom.hidden", "value": True}])
    return p


def value_texts(p: Panel, field: str, texts: Mapping[str, str]) -> Panel:
    """Show the codes of column ``field`` as words (value mappings), e.g. STALLED -> 停止."""
    mapping = {
        "type": "value",
        "options": {
            code: {"text": text, "index": i} for i, (code, text) in enumerate(texts.items())
        },
    }
    _override(p, field, [{"id": "mappings", "value": [mapping]}])
    return p


def sql_text(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def sql_label(expr: str, labels: Mapping[str, str], default: str | None = None) -> str:
    """``CASE expr WHEN 'code' THEN 'label' ... ELSE default END``: codes that become series
    or stat names (a legend cannot be remapped per value) shown in the dashboard's language.
    ``default`` (SQL) is the code itself unless given."""
    whens = " ".join(f"WHEN {sql_text(k)} THEN {sql_text(v)}" for k, v in labels.items())
    return f"CASE {expr} {whens} ELSE {default or expr + '::text'} END"


def fill(template: str, parts: Mapping[str, str]) -> str:
    """Replace ``{name}`` in SQL that also holds Grafana's ``${var}`` (str.format would not)."""
    for name, sql in parts.items():
        template = template.replace("{" + name + "}", sql)
    return template


def axis_label(p: Panel, label: str) -> Panel:
    """The label of a graph's value axis (what the numbers are; the unit says in what)."""
    p["fieldConfig"]["defaults"].setdefault("custom", {})["axisLabel"] = label
    return p
