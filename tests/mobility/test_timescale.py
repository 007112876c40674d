"""The TimescaleDB path: migrations make vehicle_events a hypertable, the worker writes to
it and the mobility_route_daily continuous aggregate answers like the raw events."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest

from core import migrator
from mobility.analytics.adherence import route_performance
from mobility.gtfs.importer import import_feed
from mobility.vehicles.schedule import load_schedule, service_day_epoch
from mobility.vehicles.worker import StateWorker
from tests.conftest import make_settings
from tests.mobility.feeds import REAL_FEED
from tests.mobility.test_worker import insert_telemetry
from tests.support.scenario import drive_trip

pytestmark = pytest.mark.timescale
DAY = date(2025, 6, 2)
TRIP = "平日_06時45分_系統1072"


def test_worker_and_rollup_on_timescaledb(timescale_url: str) -> None:
    migrator.migrate(timescale_url, make_settings(timescale_url))
    import_feed(timescale_url, REAL_FEED)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        hyper = conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'vehicle_events'"
        ).fetchone()
        assert hyper == (1,)
        plan = load_schedule(conn).trips[TRIP]
        sc = drive_trip(plan, "ts-bus", service_day_epoch(DAY) + plan.start_s + 100, seed=3)
        insert_telemetry(conn, sc, datetime(2025, 6, 2, tzinfo=UTC))
    worker = StateWorker(timescale_url, clock=lambda: 0.0)
    try:
        while worker.run_once():
            pass
    finally:
        worker.close()
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        conn.execute("CALL refresh_continuous_aggregate('mobility_route_daily', NULL, NULL)")
        row = conn.execute(
            "SELECT sum(departures), sum(on_time) FROM mobility_route_daily WHERE route_id = %s",
            [plan.route_id],
        ).fetchone()
        perf = {p.route_id: p for p in route_performance(conn, DAY)}[plan.route_id]
    assert row is not None and int(row[0]) == perf.departures == len(plan.stops) - 1
    assert int(row[1]) == perf.on_time
