"""Compression and retention policies from settings, and plain-PostgreSQL maintenance.

On TimescaleDB, policies run inside the database's job scheduler; here they are (re)set
from settings after each migrate, so changing ``MEBUKU_RETENTION_DAYS`` takes effect on
the next ``mebuku db migrate``. On plain PostgreSQL, :func:`maintain` does the same work
on demand (``mebuku db maintain``, run periodically by ``mebuku demo``).

The dead-letter table ``ingest_rejects`` is a plain table on both paths, so its retention
(``MEBUKU_REJECT_RETENTION_DAYS``) is a delete: :func:`maintain` runs it everywhere, and on
TimescaleDB a scheduled job runs it too (migration 0005).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg
from psycopg import sql

from core.db import timescale_in_use
from core.i18n import L_
from core.settings import Settings

log = logging.getLogger(__name__)


def _tables(conn: psycopg.Connection) -> list[tuple[str, str, str | None]]:
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT table_name, time_column, segment_by FROM mebuku.timeseries ORDER BY 1"
        )
    ]


REJECT_JOB = "expire_ingest_rejects_job"


def _has_reject_retention(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT to_regprocedure('mebuku.expire_ingest_rejects(integer)') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


def _schedule_reject_retention(conn: psycopg.Connection, settings: Settings) -> None:
    """(Re)create the TimescaleDB job that expires old ``ingest_rejects`` rows hourly."""
    if not _has_reject_retention(conn):
        return
    with conn.transaction():
        jobs = conn.execute(
            "SELECT job_id, (config->>'keep_days')::integer FROM timescaledb_information.jobs "
            "WHERE proc_schema = 'mebuku' AND proc_name = %s",
            [REJECT_JOB],
        ).fetchall()
        wanted = settings.reject_retention_days
        if [k for _, k in jobs] == ([wanted] if wanted > 0 else []):
            return  # unchanged: leave the job alone (it may be running right now)
        for job_id, _ in jobs:
            conn.execute("SELECT delete_job(%s)", [job_id])
        if settings.reject_retention_days > 0:
            conn.execute(
                "SELECT add_job(%s::regproc, interval '1 hour', "
                "config => jsonb_build_object('keep_days', %s::integer))",
                [f"mebuku.{REJECT_JOB}", settings.reject_retention_days],
            )


_RETENTION = ("policy_retention",)
# 2.18+ calls compression "columnstore"; the job's proc_name has stayed policy_compression.
_COMPRESSION = ("policy_compression", "policy_columnstore")


def _policy_after(conn: psycopg.Connection, table: str, procs: tuple[str, ...]) -> int | None:
    """Whole days of the table's current policy of that kind (None: no policy); a policy
    whose age is not whole days counts as -1, so it is always replaced."""
    row = conn.execute(
        "SELECT coalesce(config->>'drop_after', config->>'compress_after')::interval"
        " FROM timescaledb_information.jobs"
        " WHERE format('%%I.%%I', hypertable_schema, hypertable_name)::regclass = %s::regclass"
        "   AND proc_name = ANY(%s)"
        " ORDER BY job_id LIMIT 1",
        [table, list(procs)],
    ).fetchone()
    if row is None:
        return None
    age = row[0]
    return age.days if age is not None and age.seconds == age.microseconds == 0 else -1


def _retrying(conn: psycopg.Connection, query: str, params: list[object]) -> None:
    """Run one policy change in its own transaction, again when it deadlocks with the
    policy's own background job (which locks the table, then waits for the job lock that
    removing the policy takes)."""
    for attempt in range(1, 6):
        try:
            with conn.transaction():
                conn.execute(query, params)
            return
        except (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
            if attempt == 5:
                raise
            log.info(L_("policy change on a busy table, again (%d): %s"), attempt, query)
            time.sleep(0.2 * attempt)


def _set_policy(
    conn: psycopg.Connection, table: str, kind: Literal["retention", "compression"], days: int
) -> None:
    """Make the table's policy of that kind ``days`` (0: none); no change when it is."""
    current = _policy_after(conn, table, _RETENTION if kind == "retention" else _COMPRESSION)
    wanted = days if days > 0 else None
    if current == wanted:
        return
    if current is not None:
        _retrying(conn, f"SELECT remove_{kind}_policy(%s, if_exists => true)", [table])
    if wanted is not None:
        _retrying(conn, f"SELECT add_{kind}_policy(%s, make_interval(days => %s))", [table, wanted])


def apply_policies(conn: psycopg.Connection, settings: Settings, *, timescale: bool) -> None:
    """Set compression and retention policies (TimescaleDB only; idempotent).

    Only policies that differ from the settings are replaced, so a migrate that changes
    nothing does not touch the jobs (which may be running right then).
    """
    if not timescale:
        return
    _schedule_reject_retention(conn, settings)
    for table, _time_col, segment_by in _tables(conn):
        _set_policy(conn, table, "retention", settings.retention_days)
        if segment_by is not None:
            _set_policy(conn, table, "compression", settings.compress_after_days)


def _trial_rollups(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """The rollups that join 5G samples to their trials' devices, and those rolled up
    from them, finest first: (name, bucket width)."""
    rows = conn.execute(
        "SELECT name, source, bucket_width::text FROM mebuku.rollups ORDER BY bucket_width, name"
    ).fetchall()
    names: set[str] = set()
    out = []
    for name, source, width in rows:
        if "fiveg_trial_devices" in source or source.strip() in names:
            names.add(name)
            out.append((name, width))
    return out


def _trial_device_changes(conn: psycopg.Connection, timescale: bool) -> datetime | None:
    """Re-materialize what a change of a trial's devices changed; returns the time up to
    which the noted changes are handled (None: none noted).

    The trial rollups (fiveg/migrations/0003, core/roles/migrations/0420) key samples by
    trial. A device added to or removed from a trial moves its samples between trials;
    fiveg_trial_devices' trigger notes the device. Plain PostgreSQL re-materializes every
    rollup below anyway; on TimescaleDB a refresh only redoes what new rows invalidated,
    so the buckets holding the changed devices' samples are refreshed with ``force``.
    """
    exists = conn.execute("SELECT to_regclass('mebuku.trial_device_changes')").fetchone()
    if exists is None or exists[0] is None:
        return None
    row = conn.execute(
        "SELECT max(changed_at), array_agg(DISTINCT device_id) FROM mebuku.trial_device_changes"
    ).fetchone()
    if row is None or row[0] is None:
        return None
    upto: datetime = row[0]
    devices: list[str] = row[1]
    if timescale:
        span = conn.execute(
            "SELECT min(ts), max(ts) FROM fiveg_radio WHERE device_id = ANY(%s)", [devices]
        ).fetchone()
        if span is not None and span[0] is not None:
            for name, width in _trial_rollups(conn):
                # Whole buckets, up to the one still filling up (which stays live).
                window = conn.execute(
                    "SELECT time_bucket(%(w)s::interval, %(lo)s::timestamptz),"
                    " least(time_bucket(%(w)s::interval, %(hi)s::timestamptz) + %(w)s::interval,"
                    "       time_bucket(%(w)s::interval, now()))",
                    {"w": width, "lo": span[0], "hi": span[1]},
                ).fetchone()
                if window is None or window[0] >= window[1]:
                    continue
                conn.execute(
                    sql.SQL(
                        "CALL refresh_continuous_aggregate({}, {}::timestamptz, {}::timestamptz,"
                        " force => true)"
                    ).format(sql.Literal(name), sql.Literal(window[0]), sql.Literal(window[1]))
                )
    return upto


def _summarize_trials(conn: psycopg.Connection, *, rebuild: bool) -> None:
    """Move the EBPM panels' per-trial summaries on (core/roles/migrations/0440), from the
    rollups just refreshed; ``rebuild`` (a trial's devices changed) starts them again."""
    row = conn.execute(
        "SELECT to_regprocedure('mebuku.ebpm_fiveg_summarize(boolean, interval)') IS NOT NULL"
    ).fetchone()
    if row and row[0]:
        conn.execute("SELECT mebuku.ebpm_fiveg_summarize(%s)", [rebuild])


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance run did, for the log and ``mebuku db maintain``."""

    rollups_refreshed: list[str]
    rows_expired: dict[str, int]


def maintain(url: str, settings: Settings) -> MaintenanceReport:
    """Refresh rollups and expire old rows.

    Plain PostgreSQL: rematerialize every rollup and move its watermark; delete raw rows
    older than the retention. TimescaleDB: refresh every continuous aggregate now (the
    policies would do it on their schedule) and leave retention to its policy. Both: move
    the EBPM panels' per-trial summaries on (on TimescaleDB a job does it too), and delete
    dead letters older than ``reject_retention_days``.

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
        # Finest first: a rollup of a rollup (hierarchical) reads the one below it.
        rollups = [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT name, end_offset::text FROM mebuku.rollups ORDER BY bucket_width, name"
            )
        ]
        changed = _trial_device_changes(conn, timescale)
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
        _summarize_trials(conn, rebuild=changed is not None)
        if changed is not None:
            conn.execute(
                "DELETE FROM mebuku.trial_device_changes WHERE changed_at <= %s", [changed]
            )
        if not timescale and settings.retention_days > 0:
            for table, time_col, _ in _tables(conn):
                cur = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} < now() - make_interval(days => %s)").format(
                        sql.Identifier(table), sql.Identifier(time_col)
                    ),
                    [settings.retention_days],
                )
                expired[table] = cur.rowcount
        if settings.reject_retention_days > 0 and _has_reject_retention(conn):
            row = conn.execute(
                "SELECT mebuku.expire_ingest_rejects(%s)", [settings.reject_retention_days]
            ).fetchone()
            expired["ingest_rejects"] = int(row[0]) if row else 0
    log.info(L_("maintenance: refreshed %d rollups, expired %s"), len(refreshed), expired)
    return MaintenanceReport(refreshed, expired)
