"""Compression and retention policies from settings, and plain-PostgreSQL maintenance.

On TimescaleDB, policies run inside the database's job scheduler; here they are (re)set
from settings after each migrate, so changing ``MEBUKU_RETENTION_DAYS`` takes effect on
the next ``mebuku db migrate``. On plain PostgreSQL, :func:`maintain` does the same work
on demand (``mebuku db maintain``, run periodically by ``mebuku demo``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from core.db import timescale_in_use
from core.settings import Settings

log = logging.getLogger(__name__)


def _tables(conn: psycopg.Connection) -> list[tuple[str, str, str | None]]:
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT table_name, time_column, segment_by FROM mebuku.timeseries ORDER BY 1"
        )
    ]


def apply_policies(conn: psycopg.Connection, settings: Settings, *, timescale: bool) -> None:
    """Set compression and retention policies (TimescaleDB only; idempotent)."""
    if not timescale:
        return
    for table, _time_col, segment_by in _tables(conn):
        with conn.transaction():
            conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", [table])
            if settings.retention_days > 0:
                conn.execute(
                    "SELECT add_retention_policy(%s, make_interval(days => %s))",
                    [table, settings.retention_days],
                )
            if segment_by is None:
                continue
            conn.execute("SELECT remove_compression_policy(%s, if_exists => true)", [table])
            if settings.compress_after_days > 0:
                conn.execute(
                    "SELECT add_compression_policy(%s, make_interval(days => %s))",
                    [table, settings.compress_after_days],
                )


@dataclass(frozen=True)
class MaintenanceReport:
    rollups_refreshed: list[str]
    rows_expired: dict[str, int]


def maintain(url: str, settings: Settings) -> MaintenanceReport:
    """Refresh rollups and expire old rows.

    Plain PostgreSQL: rematerialize every rollup and move its watermark; delete raw rows
    older than the retention. TimescaleDB: refresh every continuous aggregate now (the
    policies would do it on their schedule) and leave retention to its policy.

    The TimescaleDB refresh window ends at ``now() - end_offset``, like the refresh policy
    and the plain path's watermark: TimescaleDB only materializes buckets wholly inside the
    window, so the bucket still filling up stays live. A NULL end would materialize it too
    (up to the newest row), and real-time aggregation would then serve it stale until the
    next refresh.
    """
    refreshed: list[str] = []
    expired: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True, application_name="mebuku-maintain") as conn:
        timescale = timescale_in_use(conn)
        rollups = [
            (r[0], r[1])
            for r in conn.execute("SELECT name, end_offset::text FROM mebuku.rollups ORDER BY name")
        ]
        for name, end_offset in rollups:
            if timescale:
                conn.execute(
                    sql.SQL(
                        "CALL refresh_continuous_aggregate({}, NULL, now() - {}::interval)"
                    ).format(sql.Literal(name), sql.Literal(end_offset))
                )
            else:
                conn.execute("SELECT mebuku.refresh_rollup(%s)", [name])
            refreshed.append(name)
        if not timescale and settings.retention_days > 0:
            for table, time_col, _ in _tables(conn):
                cur = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} < now() - make_interval(days => %s)").format(
                        sql.Identifier(table), sql.Identifier(time_col)
                    ),
                    [settings.retention_days],
                )
                expired[table] = cur.rowcount
    log.info("maintenance: refreshed %d rollups, expired %s", len(refreshed), expired)
    return MaintenanceReport(refreshed, expired)
