"""A simulated day of several buses through the worker: per-route adherence figures agree
with the simulator's truth; autonomy KPIs agree with the telemetry and events sent."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from mobility.analytics.adherence import dwell_by_stop, route_performance
from mobility.analytics.autonomy import autonomy_kpis
from mobility.gtfs.importer import import_feed
from mobility.vehicles.schedule import Schedule, TripPlan, load_schedule, service_day_epoch
from mobility.vehicles.worker import StateWorker, WorkerConfig
from tests.mobility.feeds import REAL_FEED
from tests.mobility.test_worker import insert_telemetry
from tests.support.scenario import Scenario, drive_trip

DAY = date(2025, 6, 2)
ROUTE = "新前橋駅西口線_A"
# Late departures from the first stop, one per bus: on time, slightly late, very late...
LATENESS = [0, 150, 420, -30, 900, 60]


def _trips(schedule: Schedule) -> list[TripPlan]:
    plans = sorted(
        (p for p in schedule.trips.values() if p.route_id == ROUTE and p.service_id == "平日"),
        key=lambda p: p.start_s,
    )
    return plans[: len(LATENESS)]


def _dwell(bus: int) -> Callable[[int], float]:
    return lambda k: 8 + (k * 7 + bus * 3) % 25


def _mode(manual_s: int) -> Callable[[float], str]:
    return lambda t: "manual" if int(t) % 600 < manual_s else "autonomous"


@pytest.fixture(scope="module")
def day_run(db_url: str) -> tuple[str, list[tuple[TripPlan, Scenario]]]:
    import_feed(db_url, REAL_FEED)
    runs = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        schedule = load_schedule(conn)
        for i, (plan, late) in enumerate(zip(_trips(schedule), LATENESS, strict=False)):
            sc = drive_trip(
                plan,
                f"bus-{i}",
                service_day_epoch(DAY) + plan.start_s + late,
                dwell_s=_dwell(i),
                cruise_mps=7.0 + i * 0.5,
                seed=100 + i,
                mode=_mode(60 * (i % 3)),
            )
            insert_telemetry(conn, sc, datetime(2025, 6, 2, tzinfo=UTC) + timedelta(hours=i))
            runs.append((plan, sc))
        conn.execute(
            "INSERT INTO bus_events (vehicle_id, ts, type, cause) VALUES"
            " ('bus-1', '2025-06-02 00:10+00', 'takeover', 'parked_vehicle'),"
            " ('bus-1', '2025-06-02 00:11+00', 'takeover', 'pedestrian'),"
            " ('bus-1', '2025-06-02 00:12+00', 'takeover', 'parked_vehicle'),"
            " ('bus-1', '2025-06-02 00:13+00', 'obstacle_stop', 'obstacle'),"
            " ('bus-1', '2025-06-02 00:14+00', 'remote_intervention', NULL)"
        )
    worker = StateWorker(db_url, config=WorkerConfig(batch=5000), clock=lambda: 0.0)
    try:
        while worker.run_once():
            pass
    finally:
        worker.close()
    return db_url, runs


def _true_departure_delays(runs) -> list[float]:
    delays = []
    day0 = service_day_epoch(DAY)
    for plan, sc in runs:
        for st, true in zip(plan.stops[:-1], sc.stops[:-1], strict=True):
            delays.append(true.departure - (day0 + st.departure_s))
    return delays


def test_route_performance_matches_truth(day_run) -> None:
    url, runs = day_run
    truth = _true_departure_delays(runs)
    with psycopg.connect(url) as conn:
        perf = {p.route_id: p for p in route_performance(conn, DAY)}
        strict = {p.route_id: p for p in route_performance(conn, DAY, early_s=0, late_s=120)}
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM gtfs_trips t WHERE feed_version = gtfs_current_version()"
                " AND route_id = %s AND service_id = '平日'",
                [ROUTE],
            )
            row = cur.fetchone()
            assert row is not None
            scheduled = row[0]
    p = perf[ROUTE]
    assert p.departures == len(truth)
    assert p.trips_run == len(runs)
    assert p.trips_scheduled == scheduled

    # Delays near a window edge may fall either side within the 3 s detection tolerance.
    def count_in(lo: float, hi: float, slack: float) -> tuple[int, int]:
        sure = sum(1 for d in truth if lo + slack <= d <= hi - slack)
        maybe = sum(1 for d in truth if lo - slack <= d <= hi + slack)
        return sure, maybe

    sure, maybe = count_in(-60, 300, 3)
    assert sure <= p.on_time <= maybe
    sure, maybe = count_in(0, 120, 3)
    assert sure <= strict[ROUTE].on_time <= maybe
    assert p.mean_delay_s == pytest.approx(statistics.fmean(truth), abs=3)
    p90 = statistics.quantiles(truth, n=10, method="inclusive")[-1]
    assert p.p90_delay_s == pytest.approx(p90, abs=5)
    assert p.operator_id == "7070001000969"
    assert p.headway_cv is not None and p.headway_cv > 0


def test_dwell_by_stop_matches_truth(day_run) -> None:
    url, runs = day_run
    true_dwell: dict[str, list[float]] = {}
    for plan, sc in runs:
        for st, true in zip(plan.stops[1:-1], sc.stops[1:-1], strict=True):
            true_dwell.setdefault(st.stop_id, []).append(true.departure - true.arrival)
    with psycopg.connect(url) as conn:
        rows = {r[1]: r for r in dwell_by_stop(conn, DAY, ROUTE)}
    for stop_id, dwells in true_dwell.items():
        assert rows[stop_id][2]  # stop name joined from the feed
        assert rows[stop_id][4] == pytest.approx(statistics.fmean(dwells), abs=4)


def test_rollup_agrees_with_raw_events(day_run) -> None:
    url, _ = day_run
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT mebuku.refresh_rollup('mobility_route_daily')")
        row = conn.execute(
            "SELECT sum(departures), sum(on_time) FROM mobility_route_daily WHERE route_id = %s",
            [ROUTE],
        ).fetchone()
        assert row is not None
        perf = {p.route_id: p for p in route_performance(conn, DAY)}[ROUTE]
    assert (int(row[0]), int(row[1])) == (perf.departures, perf.on_time)


def test_autonomy_kpis(day_run) -> None:
    url, runs = day_run
    with psycopg.connect(url) as conn:
        kpis = {k.vehicle_id: k for k in autonomy_kpis(conn, DAY)}
    for i, (_, sc) in enumerate(runs):
        k = kpis[f"bus-{i}"]
        fixes = sc.fixes
        auto_m = sum(
            b.odometer_m - a.odometer_m
            for a, b in itertools.pairwise(fixes)
            if a.mode == "autonomous"
        )
        auto_s = sum(b.ts - a.ts for a, b in itertools.pairwise(fixes) if a.mode == "autonomous")
        assert k.distance_m == pytest.approx(fixes[-1].odometer_m, abs=1)
        assert k.autonomous_m == pytest.approx(auto_m, abs=1)
        assert k.autonomous_time_share == pytest.approx(auto_s / (fixes[-1].ts - fixes[0].ts))
    assert kpis["bus-0"].autonomous_distance_share == pytest.approx(1.0)
    b1 = kpis["bus-1"]
    assert b1.takeovers_by_cause == {"parked_vehicle": 2, "pedestrian": 1}
    assert b1.takeovers_per_100km() == pytest.approx(3 / (b1.distance_m / 100_000))
    assert (b1.obstacle_stops, b1.remote_interventions) == (1, 1)
