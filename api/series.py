"""Series the API computes for Grafana's JSON data source, in a small registry.

A series is an async function ``(conn, from, to, interval) -> SeriesResult``. Register
more with :func:`register`; ``POST /grafana/metrics`` lists them and ``POST
/grafana/query`` runs them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from ingest.streams import TABLES


@dataclass(frozen=True)
class TimeSeries:
    """A series as (value, epoch ms) points, oldest first."""

    points: list[tuple[float | None, int]]  # (value, epoch ms), oldest first


@dataclass(frozen=True)
class Table:
    """A series that is better shown as a table."""

    columns: list[tuple[str, str]]  # (name, "time" | "number" | "string")
    rows: list[list[Any]]


SeriesResult = TimeSeries | Table
SeriesFn = Callable[[AsyncConnection, datetime, datetime, timedelta], Awaitable[SeriesResult]]


@dataclass(frozen=True)
class Series:
    """A named series the Grafana data source offers."""

    name: str
    description: str
    fn: SeriesFn


REGISTRY: dict[str, Series] = {}


def register(name: str, description: str) -> Callable[[SeriesFn], SeriesFn]:
    """Offer a function as a named series; the name is what dashboards ask for."""

    def wrap(fn: SeriesFn) -> SeriesFn:
        REGISTRY[name] = Series(name, description, fn)
        return fn

    return wrap


def bucket_width(start: datetime, end: datetime, interval: timedelta, max_points: int) -> timedelta:
    """Grafana's interval, widened so the range yields at most ``max_points`` buckets."""
    span = max((end - start).total_seconds(), 1.0)
    seconds = max(interval.total_seconds(), span / max(max_points, 1), 1.0)
    return timedelta(seconds=round(seconds))


async def _points(conn: AsyncConnection, sql: str, params: list[Any]) -> TimeSeries:
    cur = await conn.execute(sql, params)
    rows = await cur.fetchall()
    return TimeSeries([(None if v is None else float(v), int(t)) for t, v in rows])


# Time-series tables the ingestor writes (the stream catalogue), for lag and throughput.
_INGESTED = "\n    UNION ALL ".join(
    f"SELECT ts, received_at FROM {table} WHERE ts >= %(f)s AND ts < %(t)s" for table in TABLES
)


@register("ingest.lag_seconds", "Mean seconds from measurement to storage, all devices")
async def ingest_lag(
    conn: AsyncConnection, start: datetime, end: datetime, step: timedelta
) -> SeriesResult:
    """How far ingest is behind the newest message, per bucket."""
    cur = await conn.execute(
        "SELECT (extract(epoch FROM time_bucket(%(w)s, ts)) * 1000)::bigint,"
        " avg(extract(epoch FROM received_at - ts))"
        f" FROM ({_INGESTED}) m GROUP BY 1 ORDER BY 1",
        {"w": step, "f": start, "t": end},
    )
    return TimeSeries([(None if v is None else float(v), int(t)) for t, v in await cur.fetchall()])


@register("ingest.messages", "Messages stored per bucket, all devices")
async def ingest_messages(
    conn: AsyncConnection, start: datetime, end: datetime, step: timedelta
) -> SeriesResult:
    """Messages stored per bucket and stream."""
    cur = await conn.execute(
        "SELECT (extract(epoch FROM time_bucket(%(w)s, ts)) * 1000)::bigint, count(*)"
        f" FROM ({_INGESTED}) m GROUP BY 1 ORDER BY 1",
        {"w": step, "f": start, "t": end},
    )
    return TimeSeries([(float(v), int(t)) for t, v in await cur.fetchall()])


def _stream_messages(table: str) -> SeriesFn:
    query = sql.SQL(
        "SELECT (extract(epoch FROM time_bucket(%(w)s, ts)) * 1000)::bigint, count(*)"
        " FROM {} WHERE ts >= %(f)s AND ts < %(t)s GROUP BY 1 ORDER BY 1"
    ).format(sql.Identifier(table))

    async def messages(
        conn: AsyncConnection, start: datetime, end: datetime, step: timedelta
    ) -> SeriesResult:
        cur = await conn.execute(query, {"w": step, "f": start, "t": end})
        return TimeSeries([(float(v), int(t)) for t, v in await cur.fetchall()])

    return messages


# One series per table of the stream catalogue: a new stream is charted with no new code.
for _table in TABLES:
    register(f"ingest.messages.{_table}", f"Rows stored per bucket in {_table}")(
        _stream_messages(_table)
    )


@register("ingest.rejects", "Messages dead-lettered per bucket")
async def ingest_rejects(
    conn: AsyncConnection, start: datetime, end: datetime, step: timedelta
) -> SeriesResult:
    """Messages refused per bucket (dead letters)."""
    return await _points(
        conn,
        "SELECT (extract(epoch FROM time_bucket(%s, received_at)) * 1000)::bigint, count(*)"
        " FROM ingest_rejects WHERE received_at >= %s AND received_at < %s"
        " GROUP BY 1 ORDER BY 1",
        [step, start, end],
    )


@register("ingest.rejects_by_reason", "Dead-lettered messages by reason (table)")
async def rejects_by_reason(
    conn: AsyncConnection, start: datetime, end: datetime, step: timedelta
) -> SeriesResult:
    """Messages refused per reason, to see which fault dominates."""
    cur = await conn.execute(
        "SELECT reason, count(*), max(received_at) FROM ingest_rejects"
        " WHERE received_at >= %s AND received_at < %s GROUP BY reason ORDER BY 2 DESC, 1",
        [start, end],
    )
    rows = await cur.fetchall()
    return Table(
        [("reason", "string"), ("messages", "number"), ("last seen", "time")],
        [[r, int(n), int(last.timestamp() * 1000)] for r, n, last in rows],
    )
