"""Run every SQL panel query and template variable of the generated dashboards.

Expands each query as Grafana would (tests/support/grafana_macros.py) for the dashboard's
default time range, runs it read-only against a real database and checks the result has
the shape the panel type needs. Shared by the plain-PostgreSQL and the TimescaleDB panel tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from api.grafana.build import collect, iter_panels
from core.grafana import SQL_DATASOURCE
from tests.support.grafana_macros import QueryContext, Variable, expand, panel_interval

SEED_MODULES = (
    "tests.support.seed.ingest",
    "tests.support.seed.mobility",
    "tests.support.seed.fares",
    "tests.support.seed.fiveg",
    "tests.support.seed.opendata",
)
NUMERIC_OIDS = {20, 21, 23, 26, 700, 701, 1700}
TIME_OIDS = {1082, 1114, 1184} | NUMERIC_OIDS
MIN_INTERVAL = timedelta(seconds=10)  # jsonData.timeInterval of the provisioned data source
MAX_DATA_POINTS = 1000


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    panel_type: str
    ref_id: str
    fmt: str
    sql: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref_id}"


def seed_all(url: str) -> list[str]:
    """Run every package's panel seed, in the documented order (a broken one raises)."""
    from tests.grafana.core_seed import seed_core_tables

    ran = []
    for name in SEED_MODULES:
        importlib.import_module(name).seed(url)
        ran.append(name)
    seed_core_tables(url)
    return ran


def dashboards() -> list[dict[str, Any]]:
    return [d for _, d in collect()]


def _is_sql(ds: Any) -> bool:
    return isinstance(ds, dict) and ds.get("uid") == SQL_DATASOURCE["uid"]


def panel_queries() -> Iterator[PanelQuery]:
    for d in dashboards():
        for p in iter_panels(d):
            if p.get("type") == "row":
                continue
            for t in p.get("targets", []):
                if t.get("hide") or not _is_sql(t.get("datasource") or p.get("datasource")):
                    continue
                yield PanelQuery(
                    d["uid"],
                    p.get("title", ""),
                    p["type"],
                    t.get("refId", "A"),
                    t.get("format", "time_series"),
                    t["rawSql"],
                )


def time_range(d: dict[str, Any], now: datetime) -> tuple[datetime, datetime]:
    spec = d.get("time", {}).get("from", "now-6h")
    units = {"m": "minutes", "h": "hours", "d": "days"}
    assert spec.startswith("now-") and spec[-1] in units, f"unsupported time.from {spec}"
    amount = int(spec[4:-1])
    return now - timedelta(**{units[spec[-1]]: amount}), now


def run(conn: psycopg.Connection, sql: str) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Run read-only; return (column descriptions, rows)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET LOCAL statement_timeout = '20s'")
        cur = conn.execute(sql.encode())  # expanded text, not a literal
        return list(cur.description or []), cur.fetchall()


def resolve_variables(
    conn: psycopg.Connection, d: dict[str, Any], base: QueryContext
) -> dict[str, Variable]:
    """Each SQL query variable with "All" selected (or its first value), in order."""
    resolved: dict[str, Variable] = {}
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query" or not _is_sql(v.get("datasource")):
            continue
        ctx = QueryContext(base.time_from, base.time_to, base.interval, base.timescaledb, resolved)
        desc, rows = run(conn, expand(v["query"], ctx))
        names = [c.name for c in desc]
        col = names.index("__value") if "__value" in names else 0
        values = [str(r[col]) for r in rows if r[col] is not None]
        assert values, f"{d['uid']}: variable ${v['name']} has no options on the seeded data"
        include_all = bool(v.get("includeAll"))
        resolved[v["name"]] = Variable(
            values=values if include_all else values[:1],
            multi=bool(v.get("multi")),
            include_all=include_all,
            all_selected=include_all,
            all_value=v.get("allValue") or None,
        )
    return resolved


def check_shape(q: PanelQuery, desc: list[Any], rows: list[tuple[Any, ...]]) -> None:
    names = [c.name for c in desc]
    oids = {c.name: c.type_code for c in desc}
    numeric = [n for n in names if oids[n] in NUMERIC_OIDS and n not in ("time", "time_sec")]
    where = f"{q.id} ({q.panel_type}, {q.fmt})"
    if q.fmt == "time_series":
        time_col = next((n for n in ("time", "time_sec") if n in names), None)
        assert time_col, f"{where}: time_series format needs a column named time: {names}"
        assert oids[time_col] in TIME_OIDS, f"{where}: time column has type oid {oids[time_col]}"
        assert numeric, f"{where}: needs numeric value columns: {names}"
    if q.panel_type == "timeseries":
        assert rows, f"{where}: no rows on the seeded data"
        assert any(oids[n] in TIME_OIDS - NUMERIC_OIDS for n in names) or "time" in names, (
            f"{where}: timeseries panel needs a time column: {names}"
        )
        assert numeric, f"{where}: timeseries panel needs numeric columns: {names}"
    elif q.panel_type in ("stat", "gauge", "bargauge"):
        assert rows, f"{where}: no rows on the seeded data"
        assert numeric, f"{where}: {q.panel_type} needs a numeric column: {names}"
    elif q.panel_type == "geomap":
        assert rows, f"{where}: no rows on the seeded data"
        lower = {n.lower() for n in names}
        assert {"latitude", "longitude"} <= lower or {"lat", "lon"} <= lower, (
            f"{where}: geomap needs latitude/longitude columns: {names}"
        )


def check_all(url: str, timescaledb: bool, now: datetime | None = None) -> list[str]:
    """Run every panel and variable query; return the ids checked. Raises on the first bad one."""
    now = now or datetime.now(UTC)
    checked: list[str] = []
    by_uid = {d["uid"]: d for d in dashboards()}
    with psycopg.connect(url) as conn:
        contexts: dict[str, QueryContext] = {}
        for uid, d in by_uid.items():
            start, end = time_range(d, now)
            base = QueryContext(
                start, end, panel_interval(start, end, MAX_DATA_POINTS, MIN_INTERVAL), timescaledb
            )
            contexts[uid] = QueryContext(
                start, end, base.interval, timescaledb, resolve_variables(conn, d, base)
            )
            checked.extend(f"{uid}/${n}" for n in contexts[uid].variables)
        for q in panel_queries():
            sql = expand(q.sql, contexts[q.dashboard])
            try:
                desc, rows = run(conn, sql)
            except psycopg.Error as e:
                raise AssertionError(f"{q.id} failed: {e}\n{sql}") from e
            check_shape(q, desc, rows)
            checked.append(q.id)
    return checked
