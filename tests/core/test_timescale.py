"""The TimescaleDB path. Runs when MEBUKU_TEST_TIMESCALE_URL names a TimescaleDB 2.x server
(a superuser URL; each test makes and drops its own database); skipped otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core import migrator, timeseries
from tests.conftest import make_settings
from tests.core.test_timeseries import BUCKET_CASES

pytestmark = pytest.mark.timescale

HYPERTABLES = {"bus_telemetry", "bus_events", "fiveg_radio", "fiveg_sensor"}


def test_migrate_makes_hypertables_with_compression_and_retention(timescale_url: str) -> None:
    s = make_settings(timescale_url, retention_days=90, compress_after_days=3)
    assert migrator.migrate(timescale_url, s)
    assert migrator.migrate(timescale_url, s) == []
    with psycopg.connect(timescale_url) as conn:
        rows = conn.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
        ).fetchall()
        assert {r[0] for r in rows} >= HYPERTABLES
        assert all(r[1] for r in rows if r[0] in HYPERTABLES)
        jobs = conn.execute(
            "SELECT hypertable_name, proc_name, config FROM timescaledb_information.jobs "
            "WHERE hypertable_name IS NOT NULL"
        ).fetchall()
        for table in HYPERTABLES:
            procs = {j[1] for j in jobs if j[0] == table}
            assert "policy_retention" in procs, table
            # 2.18+ calls compression "columnstore" (job application_name "Columnstore
            # Policy"); the job's proc_name has stayed policy_compression so far.
            assert procs & {"policy_compression", "policy_columnstore"}, table
        retention = [j[2] for j in jobs if j[0] == "bus_telemetry" and j[1] == "policy_retention"]
        assert retention[0]["drop_after"] in ("90 days", "3 mons")
        # No plain-PostgreSQL time_bucket shadows TimescaleDB's own.
        own = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname = 'time_bucket' AND n.nspname = 'public'"
        ).fetchone()
        ext = conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension "
            "WHERE extname = 'timescaledb'"
        ).fetchone()
        assert ext is not None
        if ext[0] != "public":
            assert own == (0,)


def test_policies_follow_settings_on_rerun(timescale_url: str) -> None:
    migrator.migrate(timescale_url, make_settings(timescale_url, retention_days=90))
    migrator.migrate(timescale_url, make_settings(timescale_url, retention_days=0))
    with psycopg.connect(timescale_url) as conn:
        jobs = conn.execute(
            "SELECT count(*) FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_name = 'bus_telemetry'"
        ).fetchone()
    assert jobs == (0,)


@pytest.mark.parametrize(("width", "ts", "expected"), BUCKET_CASES)
def test_plain_time_bucket_cases_hold_on_timescale(
    timescale_url: str, width: str, ts: str, expected: str
) -> None:
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        row = conn.execute(
            "SELECT time_bucket(%s::interval, %s::timestamptz) = %s::timestamptz",
            [width, ts, expected],
        ).fetchone()
    assert row == (True,)


def test_continuous_aggregate_answers_like_the_raw_query(timescale_url: str) -> None:
    s = make_settings(timescale_url)
    migrator.migrate(timescale_url, s)
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE rr (device text NOT NULL, ts timestamptz NOT NULL, v float8)")
        conn.execute("SELECT mebuku.make_timeseries('rr', 'ts', 'device', interval '1 day')")
        conn.execute(
            "SELECT mebuku.create_rollup('rr_5m', 'rr', 'ts', interval '5 minutes', "
            "'count(*) AS n, avg(v) AS mean, max(v) AS peak', 'device', "
            "start_offset => interval '30 days')"
        )
        kind = conn.execute(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = 'rr_5m' AND NOT materialized_only"
        ).fetchone()
        assert kind == (1,)
        rows = [("a" if i % 2 else "b", now - timedelta(minutes=i), float(i)) for i in range(120)]
        # One transaction: the refresh policy may run at any moment, and a refresh between
        # single-row commits would materialize buckets that later rows still go into.
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany("INSERT INTO rr VALUES (%s, %s, %s)", rows)
        direct = (
            "SELECT time_bucket('5 minutes', ts) AS bucket, device, count(*), avg(v), max(v) "
            "FROM rr GROUP BY 1, 2 ORDER BY 1, 2"
        )
        rollup = "SELECT bucket, device, n, mean, peak FROM rr_5m ORDER BY 1, 2"
        expected = conn.execute(direct).fetchall()
        assert conn.execute(rollup).fetchall() == expected
        timeseries.maintain(timescale_url, s)
        assert conn.execute(rollup).fetchall() == expected
        # In the bucket still filling up (or a later one), never in a materialized one.
        conn.execute("INSERT INTO rr VALUES ('a', now() + interval '1 second', 1000)")
        assert conn.execute(rollup).fetchall() == conn.execute(direct).fetchall()
