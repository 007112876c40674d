"""The TimescaleDB path. Runs when MEBUKU_TEST_TIMESCALE_URL names a TimescaleDB 2.x server
(a superuser URL; each test makes and drops its own database); skipped otherwise."""

from __future__ import annotations

import psycopg
import pytest

from core import migrator
from tests.conftest import make_settings
from tests.core.test_timeseries import BUCKET_CASES, assert_rollup_matches_raw

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


def _policy_jobs(url: str) -> dict[tuple[str, str], tuple[int, str]]:
    """(table, proc) -> (job id, age) of every policy job on a hypertable."""
    with psycopg.connect(url) as conn:
        return {
            (r[0], r[1]): (r[2], r[3])
            for r in conn.execute(
                "SELECT hypertable_name, proc_name, job_id,"
                " coalesce(config->>'drop_after', config->>'compress_after')"
                " FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
                " AND proc_name IN ('policy_retention', 'policy_compression')"
            )
        }


def test_policies_follow_settings_on_rerun(timescale_url: str) -> None:
    migrator.migrate(timescale_url, make_settings(timescale_url, retention_days=90))
    first = _policy_jobs(timescale_url)
    # Same settings: the jobs (which start running right away) are left alone.
    migrator.migrate(timescale_url, make_settings(timescale_url, retention_days=90))
    assert _policy_jobs(timescale_url) == first
    migrator.migrate(
        timescale_url, make_settings(timescale_url, retention_days=0, compress_after_days=10)
    )
    jobs = _policy_jobs(timescale_url)
    assert ("bus_telemetry", "policy_retention") not in jobs
    assert jobs[("bus_telemetry", "policy_compression")][1] == "10 days"
    assert jobs[("fiveg_radio", "policy_compression")][1] == "10 days"


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

    def is_realtime_cagg(conn: psycopg.Connection) -> None:
        kind = conn.execute(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = 'rr_5m' AND NOT materialized_only"
        ).fetchone()
        assert kind == (1,)

    assert_rollup_matches_raw(
        timescale_url,
        s,
        create_extra=", start_offset => interval '30 days'",
        after_create=is_realtime_cagg,
    )
