"""The pure vehicle state machine against simulated ground truth on real trips of the
Gunma Chuo feed: stop arrivals/departures, delays, off-route episodes, inference of the
trip, bunching, overspeed and offline. No I/O."""

from __future__ import annotations

from datetime import date

import pytest

from mobility.gtfs.parser import read_feed
from mobility.vehicles.schedule import Schedule, TripPlan, schedule_from_feed, service_day_epoch
from mobility.vehicles.tracker import Event, Tracker, TrackerConfig
from tests.mobility.feeds import REAL_FEED
from tests.support.scenario import Detour, Scenario, drive_trip, merge

DAY = date(2025, 6, 2)  # a Monday: service 平日 runs
TRIP = "平日_06時45分_系統1072"  # 新前橋駅西口線_A, 17 stops, 7.3 km
STOP_TOL_S = 3.0  # detected vs true arrival/departure
OFF_ROUTE_TOL_S = 2.5


@pytest.fixture(scope="module")
def schedule() -> Schedule:
    return schedule_from_feed(read_feed(REAL_FEED).tables)


def _run(schedule: Schedule, fixes, config: TrackerConfig | None = None):
    tracker = Tracker(schedule, config)
    events: list[Event] = []
    states = []
    for f in fixes:
        state, evs = tracker.process(f)
        events.extend(evs)
        states.append(state)
    return tracker, events, states


def _depart(plan: TripPlan, late_s: float = 0.0) -> float:
    return service_day_epoch(DAY) + plan.start_s + late_s


def _by_stop(events: list[Event], kind: str, vehicle: str = "bus-1") -> dict[int, Event]:
    return {
        e.stop_sequence: e
        for e in events
        if e.type == kind and e.vehicle_id == vehicle and e.stop_sequence is not None
    }


def test_arrivals_and_departures_match_truth(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    sc = drive_trip(
        plan,
        "bus-1",
        _depart(plan, 90),
        dwell_s=lambda i: 10 + 7 * (i % 4),
        skip={5, 9},
        cruise_mps=lambda i: 6.0 + (i % 3) * 2.0,
        seed=1,
    )
    _, events, _ = _run(schedule, sc.fixes)
    arrivals, departures = _by_stop(events, "arrival"), _by_stop(events, "departure")
    assert set(arrivals) == {s.sequence for s in sc.stops}
    assert set(departures) == {s.sequence for s in sc.stops[:-1]}  # none at the terminus
    for true, st in zip(sc.stops, plan.stops, strict=True):
        got = arrivals[true.sequence]
        assert got.ts == pytest.approx(true.arrival, abs=STOP_TOL_S), true
        assert got.delay_s == pytest.approx(
            true.arrival - (service_day_epoch(DAY) + st.arrival_s), abs=STOP_TOL_S
        )
        if true.sequence in departures:
            dep = departures[true.sequence]
            assert dep.ts == pytest.approx(true.departure, abs=STOP_TOL_S), true
            assert dep.dwell_s == pytest.approx(true.departure - true.arrival, abs=2 * STOP_TOL_S)
    # The first departure was 90 s late.
    assert departures[plan.stops[0].sequence].delay_s == pytest.approx(90, abs=STOP_TOL_S)
    assert not [e for e in events if e.type in ("off_route", "overspeed", "bunching")]


def test_sparse_fixes_still_time_stops_by_extrapolation(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    sc = drive_trip(plan, "bus-1", _depart(plan), fix_every_s=5.0, dwell_s=25, seed=2)
    _, events, _ = _run(schedule, sc.fixes)
    arrivals = _by_stop(events, "arrival")
    errors = [abs(arrivals[t.sequence].ts - t.arrival) for t in sc.stops[1:]]
    # A fix every 5 s; extrapolating from speed keeps the error well under the interval.
    assert max(errors) < 5.0
    assert sum(errors) / len(errors) < 2.5


def test_states_along_the_trip(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    sc = drive_trip(plan, "bus-1", _depart(plan, 60), dwell_s=30, seed=3)
    tracker, _, states = _run(schedule, sc.fixes)
    by_ts = {s.ts: s for s in states}
    mid = sc.stops[8]
    during_dwell = by_ts[min(by_ts, key=lambda t: abs(t - (mid.arrival + mid.departure) / 2))]
    assert during_dwell.status == "stopped_at"
    assert during_dwell.next_stop_id == mid.stop_id
    assert states[0].status == "layover"  # waiting at the first stop
    assert states[-1].status == "layover"  # trip done
    moving = [s for s in states if s.speed_mps and s.speed_mps > 3]
    assert {s.status for s in moving} == {"in_transit"}
    assert all(s.trip_id == TRIP and s.route_id == plan.route_id for s in states)
    # Distance along the shape follows the truth (noise 2 m); delay ends near the truth.
    assert states[-1].dist_along_m == pytest.approx(plan.stops[-1].dist_m, abs=10)
    # Schedule deviation while driving: now minus the timetable's time for this distance.
    stop9 = sc.stops[9]
    arriving = by_ts[min(by_ts, key=lambda t: abs(t - (stop9.arrival - 1)))]
    true_delay = stop9.arrival - (service_day_epoch(DAY) + plan.stops[9].arrival_s)
    assert arriving.delay_s == pytest.approx(true_delay, abs=5)
    assert tracker.state("bus-1") == states[-1]


def test_off_route_episode_detected_with_its_times(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    a, b = plan.stops[9].dist_m, plan.stops[10].dist_m  # 1.4 km apart
    sc = drive_trip(
        plan,
        "bus-1",
        _depart(plan),
        seed=4,
        detours=[Detour(a + 0.2 * (b - a), a + 0.8 * (b - a), 150.0)],
    )
    assert len(sc.off_route) == 1
    (start, end) = sc.off_route[0]
    assert end - start > 35  # longer than the confirmation time
    _tracker, events, states = _run(schedule, sc.fixes, TrackerConfig(off_route_after_s=20))
    off = [e for e in events if e.type == "off_route"]
    back = [e for e in events if e.type == "on_route"]
    assert len(off) == 1 and len(back) == 1
    assert off[0].detail["episode_start"] == pytest.approx(start, abs=OFF_ROUTE_TOL_S)
    assert off[0].ts == pytest.approx(start + 20, abs=OFF_ROUTE_TOL_S)
    assert back[0].ts == pytest.approx(end, abs=OFF_ROUTE_TOL_S)
    statuses = {s.status for s in states if start + 22 < s.ts < end - 2}
    assert statuses == {"off_route"}
    # Stops outside the detour are still timed.
    arrivals = _by_stop(events, "arrival")
    assert arrivals[plan.stops[11].sequence].ts == pytest.approx(sc.stops[11].arrival, abs=3)


def test_short_excursion_is_not_off_route(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    a = plan.stops[10].dist_m
    sc = drive_trip(plan, "bus-1", _depart(plan), seed=5, detours=[Detour(a + 50, a + 120)])
    _, events, _ = _run(schedule, sc.fixes, TrackerConfig(off_route_after_s=30))
    assert not [e for e in events if e.type == "off_route"]


def test_trip_is_inferred_without_trip_id(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    sc = drive_trip(plan, "bus-9", _depart(plan, 120), send_trip_id=False, seed=6)
    _, events, states = _run(schedule, sc.fixes)
    matched = [s.trip_id for s in states if s.trip_id]
    assert matched and set(matched) == {TRIP}
    assert len(_by_stop(events, "arrival", "bus-9")) >= len(plan.stops) - 1


def _pair(schedule: Schedule) -> tuple[TripPlan, TripPlan]:
    """Two consecutive trips of one route, direction and shape."""
    plan = schedule.trips[TRIP]
    same = sorted(
        (
            p
            for p in schedule.trips.values()
            if (p.route_id, p.direction_id, p.shape_id, p.service_id)
            == (plan.route_id, plan.direction_id, plan.shape_id, plan.service_id)
        ),
        key=lambda p: p.start_s,
    )
    return same[0], same[1]


@pytest.mark.parametrize(("leader_late_share", "bunched"), [(0.75, True), (0.2, False)])
def test_bunching_when_headway_collapses(
    schedule: Schedule, leader_late_share: float, bunched: bool
) -> None:
    lead, follow = _pair(schedule)
    headway = follow.start_s - lead.start_s
    a = drive_trip(lead, "bus-1", _depart(lead, leader_late_share * headway), seed=7)
    b = drive_trip(follow, "bus-2", _depart(follow), seed=8)
    _, events, _ = _run(schedule, merge(a, b))
    bunching = [e for e in events if e.type == "bunching"]
    if not bunched:
        assert bunching == []
        return
    assert bunching and all(e.vehicle_id == "bus-2" for e in bunching)
    for e in bunching:
        assert e.detail["leader_vehicle_id"] == "bus-1"
        assert e.detail["headway_s"] < 0.5 * e.detail["scheduled_headway_s"]
        assert e.detail["headway_s"] == pytest.approx((1 - leader_late_share) * headway, abs=60)


def test_overspeed_offline_and_out_of_order(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    sc = drive_trip(plan, "bus-1", _depart(plan), cruise_mps=15.0, seed=9)
    tracker, events, _ = _run(schedule, sc.fixes, TrackerConfig(overspeed_mps=40 / 3.6))
    over = [e for e in events if e.type == "overspeed"]
    # One report per driving leg where it reached 54 km/h, not one per fix.
    legs_over = sum(
        1
        for i in range(len(plan.stops) - 1)
        if plan.stops[i + 1].dist_m - plan.stops[i].dist_m > (40 / 3.6) ** 2
    )
    assert 0 < len(over) <= legs_over
    last = sc.fixes[-1]
    assert tracker.tick(last.ts + 60) == []
    offline = tracker.tick(last.ts + 121)
    assert [e.type for e in offline] == ["offline"]
    assert tracker.state("bus-1").status == "offline"
    assert tracker.tick(last.ts + 500) == []  # reported once
    # A repeated or older fix changes nothing.
    state, evs = tracker.process(sc.fixes[10])
    assert evs == [] and state.status == "offline"


def test_no_events_for_unknown_trip(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    sc: Scenario = drive_trip(plan, "bus-1", _depart(plan), seed=10)
    fixes = [f.__class__(**{**f.__dict__, "trip_id": "nope", "route_id": None}) for f in sc.fixes]
    _, events, states = _run(schedule, fixes)
    assert [e for e in events if e.type in ("arrival", "departure")] == []
    assert all(s.trip_id is None for s in states)


def test_claimed_trip_far_from_its_timetable_is_not_reported_hours_late(
    schedule: Schedule,
) -> None:
    """The demo's old failure: a bus naming the 06:45 trip at 19:45 was '13 hours late'."""
    plan = schedule.trips[TRIP]
    sc = drive_trip(plan, "bus-1", _depart(plan, 13 * 3600), seed=12)
    _, events, states = _run(schedule, sc.fixes)
    assert all(s.trip_id != TRIP for s in states)
    assert all(abs(s.delay_s or 0.0) <= TrackerConfig().assign_margin_s for s in states)
    assert not [e for e in events if e.trip_id == TRIP]


def test_claimed_trip_within_the_margin_is_kept(schedule: Schedule) -> None:
    plan = schedule.trips[TRIP]
    sc = drive_trip(plan, "bus-1", _depart(plan, 20 * 60), seed=13)
    _, _, states = _run(schedule, sc.fixes)
    late = [s for s in states if s.trip_id == TRIP and s.delay_s is not None]
    assert late and all(600 <= s.delay_s <= 1500 for s in late)
    narrow = TrackerConfig(assign_margin_s=600)
    _, _, narrowed = _run(schedule, sc.fixes, narrow)
    assert all(s.trip_id != TRIP for s in narrowed)
