"""Retention of the dead-letter table: `mebuku db maintain` deletes rejects older than
MEBUKU_REJECT_RETENTION_DAYS and keeps the recent ones; on TimescaleDB a scheduled job
does the same."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core import migrator, timeseries
from tests.conftest import make_settings

AGES_DAYS = {"ancient": 400, "old": 31, "edge": 29, "recent": 0.01}


def _fill(conn: psycopg.Connection) -> None:
    now = datetime.now(UTC)
    conn.execute("DELETE FROM ingest_rejects")
    for label, days in AGES_DAYS.items():
        payload = label.encode()
        conn.execute(
            "INSERT INTO ingest_rejects (received_at, topic, payload, payload_sha256, reason) "
            "VALUES (%s, %s, %s, %s, 'bad_json: test')",
            [now - timedelta(days=days), f"t/{label}", payload, hashlib.sha256(payload).digest()],
        )


def _left(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT topic FROM ingest_rejects")}


def test_maintain_expires_old_rejects_and_keeps_recent_ones(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _fill(conn)
        report = timeseries.maintain(db_url, make_settings(db_url))  # default: 30 days
        assert report.rows_expired["ingest_rejects"] == 2
        assert _left(conn) == {"t/edge", "t/recent"}
        report = timeseries.maintain(db_url, make_settings(db_url, reject_retention_days=1))
        assert report.rows_expired["ingest_rejects"] == 1
        assert _left(conn) == {"t/recent"}


def test_reject_retention_zero_keeps_everything(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _fill(conn)
        report = timeseries.maintain(db_url, make_settings(db_url, reject_retention_days=0))
        assert "ingest_rejects" not in report.rows_expired
        assert _left(conn) == {f"t/{label}" for label in AGES_DAYS}


@pytest.mark.timescale
def test_timescale_schedules_the_reject_retention_job(timescale_url: str) -> None:
    def jobs(conn: psycopg.Connection) -> list[tuple[int, dict[str, int]]]:
        return [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT job_id, config FROM timescaledb_information.jobs "
                "WHERE proc_schema = 'mebuku' AND proc_name = 'expire_ingest_rejects_job'"
            )
        ]

    migrator.migrate(timescale_url, make_settings(timescale_url, reject_retention_days=30))
    migrator.migrate(timescale_url, make_settings(timescale_url, reject_retention_days=30))
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        ((job_id, config),) = jobs(conn)  # re-migrating replaces, never duplicates
        assert config == {"keep_days": 30}
        _fill(conn)
        conn.execute("CALL run_job(%s)", [job_id])
        assert _left(conn) == {"t/edge", "t/recent"}
    migrator.migrate(timescale_url, make_settings(timescale_url, reject_retention_days=0))
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        assert jobs(conn) == []
