"""What people read on the dashboards is Japanese in the Japanese build and English in the
English build (names from data excepted), and codes are shown as words.

Static text (titles, descriptions, variable labels, display names, value mappings, units,
map layers, links) is checked in the JSON. What the queries put on screen (column headers,
legends, series names, stat names) is checked by running every panel's SQL on the seeded
data as Grafana would, so a new column without a display name fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from api.grafana.build import collect, iter_panels
from core import plugins
from core.operators import registry
from core.roles import role_url
from tests.grafana.panel_runner import (
    MAX_DATA_POINTS,
    MIN_INTERVAL,
    panel_queries,
    resolve_variables,
    run,
    seed_all,
    time_range,
)
from tests.support.grafana_macros import QueryContext, expand, panel_interval

KANA_KANJI = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
ANY_JAPANESE = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
# Panels whose string column names what the numbers are (stat names, bars, slices).
LABEL_PANELS = {"stat", "bargauge", "piechart", "barchart"}


@pytest.fixture(scope="module")
def seeded(db_url: str) -> Iterator[str]:
    seed_all(db_url)
    yield db_url


def _registered() -> set[str]:
    """The uids every registered ``mebuku.dashboards`` entry point declares (one build each)."""
    return {d["uid"] for p in plugins.load("mebuku.dashboards") for _folder, d in p.obj("ja")}


def _by_lang() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"ja": [], "en": []}
    for _folder, d in collect():
        out["ja" if "ja" in d["tags"] else "en"].append(d)
    return out


def _overrides(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """field name -> {property id: value}."""
    out: dict[str, dict[str, Any]] = {}
    for o in p["fieldConfig"]["overrides"]:
        assert o["matcher"]["id"] == "byName"
        props = out.setdefault(o["matcher"]["options"], {})
        props.update({x["id"]: x["value"] for x in o["properties"]})
    return out


def static_texts(d: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, text) of everything a viewer reads that is written in the dashboard."""
    texts = [("title", d["title"]), ("description", d["description"])]
    texts += [(f"link {i}", link["title"]) for i, link in enumerate(d["links"])]
    texts += [(f"${v['name']}", v["label"]) for v in d["templating"]["list"]]
    for p in iter_panels(d):
        where = p["title"]
        texts += [(where, p["title"]), (f"{where}: description", p["description"])]
        axis = p["fieldConfig"]["defaults"].get("custom", {}).get("axisLabel", "")
        texts.append((f"{where}: axis", axis))
        if p["type"] == "timeseries":
            assert axis, f"{d['uid']} {where}: a graph needs an axis label"
        units = [p["fieldConfig"]["defaults"].get("unit", "")]
        for field, props in _overrides(p).items():
            if "displayName" in props:
                texts.append((f"{where}: {field}", props["displayName"]))
            units.append(props.get("unit", ""))
            for m in props.get("mappings", []):
                texts += [(f"{where}: {field}={k}", v["text"]) for k, v in m["options"].items()]
        texts += [(f"{where}: unit", u.removeprefix("suffix:")) for u in units if "suffix:" in u]
        for layer in p.get("options", {}).get("layers", []):
            texts.append((f"{where}: layer", layer["name"]))
    return [(w, t) for w, t in texts if t]


def test_japanese_build_reads_japanese() -> None:
    dashboards = _by_lang()["ja"]
    assert {d["uid"] for d in dashboards} == _registered()
    missing = [
        f"{d['uid']} {w}: {t!r}"
        for d in dashboards
        for w, t in static_texts(d)
        if not KANA_KANJI.search(t)
    ]
    assert missing == []


def test_english_build_has_no_japanese_labels() -> None:
    dashboards = _by_lang()["en"]
    assert {d["uid"] for d in dashboards} == {f"{uid}-en" for uid in _registered()}
    found = [
        f"{d['uid']} {w}: {t!r}"
        for d in dashboards
        for w, t in static_texts(d)
        if ANY_JAPANESE.search(t) and not _is_operator_name(t)
    ]
    assert found == []


def _is_operator_name(text: str) -> bool:
    return text in {op.legal_name for op in registry().operators}


def _data_names(conn: psycopg.Connection) -> set[str]:
    """Names that come from data (feed, registries, devices), allowed in either language."""
    rows = conn.execute(
        """
        SELECT coalesce(route_long_name, route_short_name, route_id) FROM grafana.gtfs_routes
        UNION SELECT stop_name FROM grafana.gtfs_stops
        UNION SELECT title FROM grafana.fiveg_trials
        UNION SELECT label FROM grafana.fiveg_trial_devices
        UNION SELECT DISTINCT vehicle_id FROM grafana.bus_telemetry
        UNION SELECT DISTINCT device_id FROM grafana.fiveg_trial_devices
        """
    ).fetchall()
    return {r[0] for r in rows if r[0]} | {op.legal_name for op in registry().operators}


def _without_names(text: str, names: set[str]) -> str:
    for n in sorted(names, key=len, reverse=True):
        text = text.replace(n, "")
    return text


def _shown(q: Any, desc: list[Any], rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, str]]:
    """(kind, text) a viewer sees from a result: ("field", column) for headers and legends,
    ("label", value) for series and stat names made from values."""
    cols = [c.name for c in desc]
    if q.fmt == "time_series" and "metric" in cols:
        for r in rows:
            yield "label", str(r[cols.index("metric")])
        return
    strings = [i for i, c in enumerate(desc) if c.type_code in (25, 1043)]
    label_col = strings[0] if q.panel_type in LABEL_PANELS and strings else None
    for i, name in enumerate(cols):
        if (name in ("time", "time_sec") and q.panel_type == "timeseries") or i == label_col:
            continue
        yield "field", name
    if label_col is not None:
        for r in rows:
            yield "label", str(r[label_col])


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_what_the_queries_show_is_in_the_language(seeded: str, lang: str) -> None:
    now = datetime.now(UTC)
    by_uid = {d["uid"]: d for d in _by_lang()[lang]}
    panels = {(d["uid"], p["title"]): p for d in by_uid.values() for p in iter_panels(d)}
    problems: list[str] = []
    checked = 0
    with psycopg.connect(role_url(seeded, "grafana")) as conn:
        names = _data_names(conn)
        for q in panel_queries():
            if q.dashboard not in by_uid:
                continue
            d, p = by_uid[q.dashboard], panels[(q.dashboard, q.panel)]
            start, end = time_range(d, now)
            base = QueryContext(
                start, end, panel_interval(start, end, MAX_DATA_POINTS, MIN_INTERVAL)
            )
            ctx = QueryContext(start, end, base.interval, False, resolve_variables(conn, d, base))
            desc, rows = run(conn, expand(q.sql, ctx))
            overrides = _overrides(p)
            for kind, text in _shown(q, desc, rows):
                checked += 1
                where = f"{q.dashboard} / {q.panel}: {text!r}"
                props = overrides.get(text, {})
                if kind == "field":
                    if props.get("custom.hidden"):
                        continue
                    if "displayName" not in props:
                        problems.append(f"{where} has no display name")
                    continue
                if lang == "ja" and not KANA_KANJI.search(text) and text not in names:
                    problems.append(f"{where} is not Japanese")
                if lang == "en" and ANY_JAPANESE.search(_without_names(text, names)):
                    problems.append(f"{where} is Japanese")
            problems += _unmapped_codes(q.dashboard, p, overrides, desc, rows)
    assert checked > 100
    assert problems == [], "\n".join(problems)


def _unmapped_codes(
    uid: str,
    p: dict[str, Any],
    overrides: dict[str, dict[str, Any]],
    desc: list[Any],
    rows: list[tuple[Any, ...]],
) -> list[str]:
    """A column shown through value mappings must have a word for every code it holds."""
    cols = [c.name for c in desc]
    out = []
    for field, props in overrides.items():
        if "mappings" not in props or field not in cols:
            continue
        known = {k for m in props["mappings"] for k in m["options"]}
        for r in rows:
            value = r[cols.index(field)]
            if value is not None and str(value) not in known:
                out.append(f"{uid} / {p['title']}: {field}={value!r} has no word")
    return out
