"""The plain-PostgreSQL time-series path: time_bucket and rollups answer like TimescaleDB."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core import timeseries
from core.settings import Settings
from tests.conftest import make_settings

BUCKET_CASES = [
    # Sub-day buckets align to midnight UTC.
    ("5 minutes", "2026-11-26 10:07:30+00", "2026-11-26 10:05:00+00"),
    ("300.000s", "2026-11-26 10:07:30+00", "2026-11-26 10:05:00+00"),  # Grafana's form
    ("1 hour", "2026-11-26 10:59:59+00", "2026-11-26 10:00:00+00"),
    ("1 day", "2026-11-26 23:59:59+00", "2026-11-26 00:00:00+00"),
    # Weeks start on Monday (TimescaleDB's origin 2000-01-03).
    ("7 days", "2026-11-26 12:00:00+00", "2026-11-23 00:00:00+00"),
    ("1 month", "2026-11-26 12:00:00+00", "2026-11-01 00:00:00+00"),
    ("3 months", "2026-11-26 12:00:00+00", "2026-10-01 00:00:00+00"),
]


@pytest.mark.parametrize(("width", "ts", "expected"), BUCKET_CASES)
def test_time_bucket_matches_timescale(
    db: psycopg.Connection, width: str, ts: str, expected: str
) -> None:
    row = db.execute(
        "SELECT time_bucket(%s::interval, %s::timestamptz) = %s::timestamptz",
        [width, ts, expected],
    ).fetchone()
    assert row == (True,)


def test_time_bucket_with_timezone_gives_local_days(db: psycopg.Connection) -> None:
    # 2026-11-26 16:30 UTC is 2026-11-27 01:30 in Tokyo: its JST day starts 2026-11-26 15:00 UTC.
    row = db.execute(
        "SELECT time_bucket('1 day', timestamptz '2026-11-26 16:30+00', 'Asia/Tokyo')"
    ).fetchone()
    assert row is not None
    assert row[0] == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def assert_rollup_matches_raw(
    url: str,
    settings: Settings,
    *,
    create_extra: str = "",
    after_create: Callable[[psycopg.Connection], None] | None = None,
    after_refresh: Callable[[psycopg.Connection], None] | None = None,
) -> None:
    """A 5-minute rollup answers like the raw aggregate before a refresh, after it, and
    for rows added after it (real-time aggregation). Shared by both storage paths."""
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE rr (device text NOT NULL, ts timestamptz NOT NULL, v float8)")
        conn.execute("SELECT mebuku.make_timeseries('rr', 'ts', 'device', interval '1 day')")
        conn.execute(
            "SELECT mebuku.create_rollup('rr_5m', 'rr', 'ts', interval '5 minutes', "
            f"'count(*) AS n, avg(v) AS mean, max(v) AS peak', 'device'{create_extra})"
        )
        if after_create:
            after_create(conn)
        rows = [("a" if i % 2 else "b", now - timedelta(minutes=i), float(i)) for i in range(120)]
        # One transaction: on TimescaleDB the refresh policy may run at any moment, and a
        # refresh between single-row commits would materialize buckets later rows go into.
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany("INSERT INTO rr VALUES (%s, %s, %s)", rows)
        direct = (
            "SELECT time_bucket('5 minutes', ts) AS bucket, device, count(*), avg(v), max(v) "
            "FROM rr GROUP BY 1, 2 ORDER BY 1, 2"
        )
        rollup = "SELECT bucket, device, n, mean, peak FROM rr_5m ORDER BY 1, 2"
        expected = conn.execute(direct).fetchall()
        assert conn.execute(rollup).fetchall() == expected  # nothing materialized yet
        timeseries.maintain(url, settings)
        if after_refresh:
            after_refresh(conn)
        assert conn.execute(rollup).fetchall() == expected
        # In the bucket still filling up (or a later one), never in a materialized one.
        conn.execute("INSERT INTO rr VALUES ('a', now() + interval '1 second', 1000)")
        assert conn.execute(rollup).fetchall() == conn.execute(direct).fetchall()


def test_rollup_serves_the_same_answer_before_and_after_refresh(db_url: str) -> None:
    def materialized(conn: psycopg.Connection) -> None:
        mat = conn.execute("SELECT count(*) FROM rr_5m_mat").fetchone()
        assert mat is not None and mat[0] > 0

    assert_rollup_matches_raw(db_url, make_settings(db_url), after_refresh=materialized)


def test_retention_deletes_only_old_rows_on_plain_postgres(db_url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM bus_events")
        conn.execute(
            "INSERT INTO bus_events (vehicle_id, ts, type) VALUES "
            "('v1', %s, 'door'), ('v1', %s, 'door')",
            [now - timedelta(days=40), now - timedelta(days=1)],
        )
        report = timeseries.maintain(db_url, make_settings(db_url, retention_days=30))
        assert report.rows_expired["bus_events"] == 1
        row = conn.execute("SELECT count(*) FROM bus_events").fetchone()
        assert row == (1,)
