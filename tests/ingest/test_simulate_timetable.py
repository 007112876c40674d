"""Timetable mode of the simulator (what `mebuku simulate` and the demo run): the buses
are the trips in service at the start time, on routes that serve Maebashi, and a tracker
sees them minutes late, never hours. Pure: no broker, no database."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from ingest.simulate.boundary import city_contains, city_routes
from ingest.simulate.city import City, CityConfig
from ingest.simulate.feed import Feed
from ingest.simulate.timetable import JST, build_blocks, in_service
from mobility.gtfs.parser import read_feed
from mobility.vehicles.schedule import schedule_from_feed
from mobility.vehicles.tracker import Fix, Tracker
from tests.mobility.feeds import REAL_FEED

TUESDAY_0800 = datetime(2026, 12, 1, 8, 0, tzinfo=JST)


def _city(start: datetime, **kw: object) -> City:
    cfg = CityConfig(
        shuttles=0,
        buses=6,
        phones_per_bus=0,
        fixed_phones_per_site=0,
        sensors_per_site=0,
        timetable=True,
        **kw,  # type: ignore[arg-type]
    )
    return City(cfg, start)


def test_an_expired_feed_runs_the_same_weekday_of_its_last_week(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "ja")
    feed = Feed.load()
    day, note = feed.service_day(date(2026, 12, 1))  # a Tuesday, after 2026-03-31
    assert day == date(2026, 3, 31) and day.weekday() == 1
    assert note == (
        "GTFS フィードは 2026-03-31 に終了しています："
        "2026-12-01（火曜日）を 2026-03-31（火曜日）の時刻表で模擬します"
    )
    monkeypatch.setenv("MEBUKU_LANG", "en")
    _day, note = feed.service_day(date(2026, 12, 1))
    assert note == (
        "the GTFS feed ended on 2026-03-31: simulating 2026-12-01 (Tuesday) with the "
        "timetable of 2026-03-31 (Tuesday)"
    )
    assert feed.service_day(date(2025, 6, 2)) == (date(2025, 6, 2), None)
    sunday, _ = feed.service_day(date(2026, 12, 6))
    assert sunday.weekday() == 6 and sunday <= date(2026, 3, 31)
    assert feed.active_services(sunday) == {"土日祝"}


def test_only_routes_with_most_stops_in_maebashi() -> None:
    feed = Feed.load()
    share = feed.route_share_inside(city_contains())
    routes = city_routes(share)
    assert routes == {"新前橋駅西口線_A", "新前橋駅西口線_B"}
    assert all(share[r] < 0.1 for r in share if "高崎市循環バス" in r)  # Takasaki's own


def test_buses_are_the_trips_in_service_now() -> None:
    city = _city(TUESDAY_0800)
    assert any("2026-03-31" in n for n in city.notes)
    feed = Feed.load()
    plans = feed.timetable_plans({"平日"}, {"新前橋駅西口線_A", "新前橋駅西口線_B"})
    running = {b.trips[i].trip_id for b, i in in_service(build_blocks(plans), 8 * 3600, 6)}
    first_trip = {b.cfg.plans[0].trip_id for b in city.buses if b.start == TUESDAY_0800}
    assert running and first_trip == running
    inside = city_contains()
    for m in city.messages(TUESDAY_0800 + timedelta(minutes=5)):
        if m.kind == "telemetry":
            body = json.loads(m.payload)
            assert body["route_id"].startswith("新前橋駅西口線")
            assert inside(body["lat"], body["lon"])


@pytest.mark.parametrize("hour", [7.5, 8.0, 12.5, 17.0])
def test_a_tracker_sees_delays_of_minutes(hour: float) -> None:
    start = datetime(2026, 12, 1, tzinfo=JST) + timedelta(hours=hour)
    city = _city(start, seed=int(hour * 10))
    tracker = Tracker(schedule_from_feed(read_feed(REAL_FEED).tables))
    delays: list[float] = []
    for m in city.messages(start + timedelta(minutes=60)):
        if m.kind != "telemetry":
            continue
        b = json.loads(m.payload)
        fix = Fix(
            m.topic.split("/")[2], m.ts.timestamp(), b["lat"], b["lon"], b["speed_mps"],
            trip_id=b["trip_id"], route_id=b["route_id"],
        )  # fmt: skip
        state, _ = tracker.process(fix)
        if state.delay_s is not None:
            delays.append(state.delay_s)
    assert delays, "no bus in service"
    assert max(abs(d) for d in delays) < 15 * 60
    assert sum(delays) / len(delays) > 0  # buses run a little late, as buses do


def test_at_night_no_bus_runs_and_the_simulator_says_when_the_first_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "ja")  # the simulator's notes: the process language
    night = _city(datetime(2026, 12, 1, 23, 30, tzinfo=JST))
    assert any("運行していません。次の出発は 明日 です" in n for n in night.notes), night.notes
    monkeypatch.setenv("MEBUKU_LANG", "en")
    city = _city(datetime(2026, 12, 1, 23, 30, tzinfo=JST))
    assert not [b for b in city.buses if b.start < datetime(2026, 12, 2, tzinfo=JST)]
    assert any("no bus" in n and "tomorrow" in n for n in city.notes)
    morning = _city(datetime(2026, 12, 1, 5, 30, tzinfo=JST))
    assert any("next departure is at 06:" in n for n in morning.notes)
    starts = sorted(b.start for b in morning.buses)
    assert starts and starts[0].astimezone(JST).hour == 6
