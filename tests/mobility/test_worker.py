"""The mobility worker on a real database: telemetry rows in bus_telemetry become vehicle
state and stop events that agree with the simulated truth; a restart adds no duplicates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from core.roles import role_url
from mobility.gtfs.importer import import_feed
from mobility.vehicles.schedule import load_schedule, service_day_epoch
from mobility.vehicles.tracker import TrackerConfig
from mobility.vehicles.worker import StateWorker, WorkerConfig
from tests.mobility.feeds import REAL_FEED
from tests.support.replay import copy_fixes
from tests.support.scenario import Detour, Scenario, drive_trip

DAY = date(2025, 6, 2)
TRIP = "平日_06時45分_系統1072"


def insert_telemetry(conn: psycopg.Connection, sc: Scenario, received_base: datetime) -> None:
    t0 = sc.fixes[0].ts
    with conn.cursor() as cur:
        copy_fixes(cur, sc.fixes, lambda f: received_base + timedelta(seconds=f.ts - t0 + 0.3))


@pytest.fixture(scope="module")
def loaded(db_url: str) -> tuple[str, Scenario]:
    import_feed(db_url, REAL_FEED)
    with psycopg.connect(db_url, autocommit=True) as conn:
        plan = load_schedule(conn).trips[TRIP]
        a, b = plan.stops[9].dist_m, plan.stops[10].dist_m
        sc = drive_trip(
            plan,
            "bus-7",
            service_day_epoch(DAY) + plan.start_s + 120,
            seed=11,
            detours=[Detour(a + 0.2 * (b - a), a + 0.8 * (b - a))],
        )
        insert_telemetry(conn, sc, datetime(2025, 6, 2, 0, 0, tzinfo=UTC))
    return db_url, sc


def _drain(worker: StateWorker) -> None:
    while worker.run_once() >= worker.config.batch:
        pass


def _events(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT type, stop_sequence, extract(epoch FROM ts)::float8, operator_id, delay_s"
        " FROM vehicle_events ORDER BY ts, type"
    ).fetchall()


def test_worker_writes_state_and_events_matching_truth(loaded: tuple[str, Scenario]) -> None:
    url, sc = loaded
    last_ts = sc.fixes[-1].ts
    worker = StateWorker(
        role_url(url, "mobility"),
        TrackerConfig(off_route_after_s=20),
        WorkerConfig(batch=500),
        clock=lambda: last_ts + 1,
    )
    try:
        _drain(worker)
    finally:
        worker.close()
    with psycopg.connect(url) as conn:
        st = conn.execute(
            "SELECT status, trip_id, operator_id, next_stop_id, extract(epoch FROM ts)::float8"
            " FROM vehicle_state WHERE vehicle_id = 'bus-7'"
        ).fetchone()
        assert st is not None
        assert st[0] == "layover" and st[1] == TRIP and st[2] == "7070001000969"
        assert st[4] == pytest.approx(last_ts)
        events = _events(conn)
    arrivals = {e[1]: e[2] for e in events if e[0] == "arrival"}
    departures = {e[1]: e[2] for e in events if e[0] == "departure"}
    for t in sc.stops:
        if t.sequence in arrivals:
            assert arrivals[t.sequence] == pytest.approx(t.arrival, abs=3.0)
        if t.sequence in departures:
            assert departures[t.sequence] == pytest.approx(t.departure, abs=3.0)
    assert len(arrivals) >= len(sc.stops) - 1 and len(departures) >= len(sc.stops) - 2
    assert all(e[3] == "7070001000969" for e in events)
    off = [e for e in events if e[0] == "off_route"]
    assert len(off) == 1 and off[0][2] == pytest.approx(sc.off_route[0][0] + 20, abs=2.5)


def test_restart_resumes_without_duplicate_events(loaded: tuple[str, Scenario]) -> None:
    url, sc = loaded
    with psycopg.connect(url) as conn:
        before = _events(conn)
    assert before  # the previous test ran the worker
    worker = StateWorker(
        role_url(url, "mobility"),
        TrackerConfig(off_route_after_s=20),
        WorkerConfig(batch=700),
        clock=lambda: sc.fixes[-1].ts + 1,
    )
    try:
        _drain(worker)
    finally:
        worker.close()
    with psycopg.connect(url) as conn:
        assert _events(conn) == before


def test_late_committed_rows_are_picked_up(db_url: str, loaded: tuple[str, Scenario]) -> None:
    """A row whose transaction committed after the worker read past its received_at (the
    ingest's clock is its transaction start) is found by the sweep behind the cursor."""
    _, sc = loaded
    t0 = datetime(2026, 1, 1, tzinfo=UTC)  # after the module's other rows, before now

    def rows(vehicle: str, fixes, received: datetime) -> list[tuple[Any, ...]]:
        return [
            (
                vehicle,
                datetime.fromtimestamp(f.ts, UTC),
                f.lat,
                f.lon,
                f.speed_mps,
                f.trip_id,
                f.route_id,
                received + timedelta(seconds=i),
            )
            for i, f in enumerate(fixes)
        ]

    insert = (
        "INSERT INTO bus_telemetry (vehicle_id, ts, lat, lon, speed_mps, trip_id, route_id,"
        " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.cursor().executemany(insert, rows("late-x", sc.fixes[:100], t0))
        worker = StateWorker(
            role_url(db_url, "mobility"),
            config=WorkerConfig(sweep_s=0, lookback=timedelta(seconds=2)),
            clock=lambda: sc.fixes[-1].ts,
        )
        worker.key = (t0 - timedelta(seconds=1), "", t0)
        try:
            _drain(worker)
            assert worker.tracker.state("late-y") is None
            # Committed now, stamped 1 s behind the cursor: the keyset read cannot see it.
            conn.cursor().executemany(
                insert, rows("late-y", sc.fixes[:1], t0 + timedelta(seconds=98))
            )
            conn.cursor().executemany(
                insert, rows("late-x", sc.fixes[100:110], t0 + timedelta(seconds=100))
            )
            _drain(worker)
        finally:
            worker.close()
        state = worker.tracker.state("late-y")
        assert state is not None and state.ts == sc.fixes[0].ts
        stored = conn.execute(
            "SELECT count(*) FROM vehicle_state WHERE vehicle_id = 'late-y'"
        ).fetchone()
        assert stored == (1,)


def test_worker_switches_to_a_newly_imported_feed(loaded: tuple[str, Scenario]) -> None:
    url, _ = loaded
    worker = StateWorker(role_url(url, "mobility"), config=WorkerConfig(reload_feed_s=0))
    try:
        before = worker.schedule.version
        import_feed(url, REAL_FEED, force=True)
        worker._maybe_reload_feed()
        assert worker.schedule.version is not None and before is not None
        assert worker.schedule.version > before
        reported = worker.metrics.registry.get_sample_value("mebuku_mobility_feed_version")
        assert reported == worker.schedule.version
    finally:
        worker.close()


def test_worker_starts_before_any_feed_is_imported(pg_server, migrated_template: str) -> None:
    """A worker started on an empty platform keeps running and picks the feed up later."""
    from core.db import drop_database
    from tests.conftest import new_database

    name = new_database(pg_server, migrated_template)
    url = pg_server.url(name)
    worker = StateWorker(role_url(url, "mobility"), config=WorkerConfig(reload_feed_s=0))
    try:
        assert worker.schedule.version is None and worker.run_once() == 0
        import_feed(url, REAL_FEED)
        worker._maybe_reload_feed()
        assert worker.schedule.version is not None and TRIP in worker.schedule.trips
    finally:
        worker.close()
        drop_database(pg_server.url(), name)


def test_max_fix_age_skips_fixes_stamped_long_before_they_arrived(
    db_url: str, loaded: tuple[str, Scenario]
) -> None:
    """With a bound, a fix whose ts is far behind its arrival is history, not live state;
    fresh fixes arriving with it are tracked."""
    _, sc = loaded
    arrived = datetime(2026, 2, 1, tzinfo=UTC)  # after the module's other rows, before now
    insert = (
        "INSERT INTO bus_telemetry (vehicle_id, ts, lat, lon, speed_mps, trip_id, route_id,"
        " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    fix = sc.fixes[0]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for vehicle, ts in (("stale-1", arrived - timedelta(hours=10)), ("fresh-1", arrived)):
            conn.execute(
                insert,
                [vehicle, ts, fix.lat, fix.lon, fix.speed_mps, fix.trip_id, fix.route_id, arrived],
            )
    bounded = StateWorker(
        role_url(db_url, "mobility"), config=WorkerConfig(max_fix_age=timedelta(hours=6))
    )
    unbounded = StateWorker(role_url(db_url, "mobility"), config=WorkerConfig())
    try:
        for w in (bounded, unbounded):
            w.key = (arrived - timedelta(seconds=1), "", arrived)
            _drain(w)
    finally:
        bounded.close()
        unbounded.close()
    assert bounded.tracker.state("fresh-1") is not None
    assert bounded.tracker.state("stale-1") is None
    assert unbounded.tracker.state("stale-1") is not None
