"""GTFS-Realtime feeds and operator endpoints through the real API app: feeds parse with
gtfs-realtime-bindings and agree with the static feed; operators see only their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from google.transit import gtfs_realtime_pb2 as rt

from api.app import create_app
from api.keys import create_api_key
from core.roles import role_url
from core.settings import Settings
from mobility.gtfs.importer import import_feed
from mobility.vehicles.schedule import (
    JST,
    Schedule,
    TripPlan,
    load_schedule,
    local_date,
    service_day_epoch,
)
from mobility.vehicles.worker import StateWorker, WorkerConfig
from tests.mobility.feeds import REAL_FEED
from tests.mobility.gtfs_rt_rules import (
    StaticFeed,
    check_pair,
    check_trip_updates,
    check_vehicle_positions,
)
from tests.mobility.test_worker import insert_telemetry
from tests.support.scenario import drive_trip

AGENCY = "7070001000969"


def _trip_running_now(conn: psycopg.Connection, schedule: Schedule, now: float) -> TripPlan:
    """A trip of a service that runs today, re-timed in this test's copy of the feed so
    that it left its first stop ten minutes ago: the real timetable has no bus at night,
    and the tracker believes a bus's trip only near that trip's timetable."""
    day = local_date(now)
    if now - 600 - service_day_epoch(day) < 0:  # just after midnight: yesterday's day
        day = day - timedelta(days=1)
    day0 = service_day_epoch(day)
    active = schedule.active_services(day)
    plans = [p for p in schedule.trips.values() if p.service_id in active and len(p.stops) > 8]
    plan = min(plans, key=lambda p: abs(p.start_s - (now - day0)))
    shift = round(now - 600 - day0) - plan.start_s
    conn.execute(
        "UPDATE gtfs_stop_times SET arrival_s = arrival_s + %s, departure_s = departure_s + %s"
        " WHERE feed_version = gtfs_current_version() AND trip_id = %s",
        [shift, shift, plan.trip_id],
    )
    return load_schedule(conn).trips[plan.trip_id]


@pytest.fixture(scope="module")
def live(db_url: str) -> dict[str, object]:
    import_feed(db_url, REAL_FEED)
    now = time.time()
    with psycopg.connect(db_url, autocommit=True) as conn:
        plan = _trip_running_now(conn, load_schedule(conn), now)
        # Left its first stop 10 minutes ago; telemetry up to now.
        sc = drive_trip(plan, "bus-rt", now - 600, seed=21, layover_s=30, after_s=0)
        sc.fixes[:] = [f for f in sc.fixes if f.ts <= now - 1]
        insert_telemetry(conn, sc, datetime.fromtimestamp(sc.fixes[0].ts, UTC))
        keys = {
            "own": create_api_key(conn, "operator", AGENCY, "test"),
            "other": create_api_key(conn, "operator", "other-operator", "test"),
            "council": create_api_key(conn, "council", None, "test"),
        }
    # Services log in as their own roles, as deployed (core/roles/grants.toml).
    worker = StateWorker(role_url(db_url, "mobility"), config=WorkerConfig(batch=5000))
    try:
        while worker.run_once():
            pass
    finally:
        worker.close()
    return {"keys": keys, "plan": plan, "fixes": sc.fixes}


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str) -> Iterator[TestClient]:
    api = settings.model_copy(update={"database_url": role_url(db_url, "api")})
    with TestClient(create_app(api), raise_server_exceptions=False) as c:
        yield c


def _static_ids(db_url: str) -> tuple[set[str], set[str], set[tuple[str, int, str]]]:
    with psycopg.connect(db_url) as conn:
        trips = {
            r[0]
            for r in conn.execute(
                "SELECT trip_id FROM gtfs_trips WHERE feed_version = gtfs_current_version()"
            )
        }
        routes = {
            r[0]
            for r in conn.execute(
                "SELECT route_id FROM gtfs_routes WHERE feed_version = gtfs_current_version()"
            )
        }
        stop_times = {
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT trip_id, stop_sequence, stop_id FROM gtfs_stop_times"
                " WHERE feed_version = gtfs_current_version()"
            )
        }
    return trips, routes, stop_times


def test_vehicle_positions_parse_and_match_static_feed(
    client: TestClient, live: dict[str, Any], db_url: str
) -> None:
    r = client.get("/gtfs-rt/vehicle-positions")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    feed = rt.FeedMessage()
    feed.ParseFromString(r.content)
    assert feed.header.gtfs_realtime_version == "2.0"
    assert feed.header.incrementality == rt.FeedHeader.FULL_DATASET
    trips, routes, stop_times = _static_ids(db_url)
    ents = {e.id: e for e in feed.entity}
    assert "bus-rt" in ents
    vp = ents["bus-rt"].vehicle
    plan: TripPlan = live["plan"]
    assert vp.trip.trip_id == plan.trip_id
    last = live["fixes"][-1]
    assert vp.timestamp == int(last.ts)
    assert vp.position.latitude == pytest.approx(last.lat, abs=1e-5)
    for e in feed.entity:
        v = e.vehicle
        if v.HasField("trip"):
            assert v.trip.trip_id in trips and v.trip.route_id in routes
            assert (v.trip.trip_id, v.current_stop_sequence, v.stop_id) in stop_times
            assert v.trip.start_date == datetime.fromtimestamp(last.ts, JST).strftime("%Y%m%d")


def test_trip_updates_parse_and_match_static_feed(
    client: TestClient, live: dict[str, Any], db_url: str
) -> None:
    r = client.get("/gtfs-rt/trip-updates")
    assert r.status_code == 200
    feed = rt.FeedMessage()
    feed.ParseFromString(r.content)
    trips, routes, stop_times = _static_ids(db_url)
    updates = [e.trip_update for e in feed.entity]
    assert updates
    plan: TripPlan = live["plan"]
    mine = next(u for u in updates if u.vehicle.id == "bus-rt")
    assert mine.trip.trip_id == plan.trip_id
    assert len(mine.stop_time_update) >= 1
    # Sequences increase, times never go backwards, and it ends at the last stop.
    seqs = [s.stop_sequence for s in mine.stop_time_update]
    assert seqs == sorted(seqs) and seqs[-1] == plan.stops[-1].sequence
    times = [s.arrival.time for s in mine.stop_time_update]
    assert times == sorted(times)
    for u in updates:
        assert u.trip.trip_id in trips and u.trip.route_id in routes
        for s in u.stop_time_update:
            assert (u.trip.trip_id, s.stop_sequence, s.stop_id) in stop_times
    j = client.get("/gtfs-rt/trip-updates", params={"format": "json"})
    assert j.status_code == 200 and j.json()["header"]["gtfsRealtimeVersion"] == "2.0"


def test_operator_sees_own_vehicles_only(client: TestClient, live: dict[str, Any]) -> None:
    keys = live["keys"]
    own = client.get(f"/v1/operators/{AGENCY}/vehicles", headers={"X-API-Key": keys["own"]})
    assert own.status_code == 200
    body = own.json()
    assert [v["vehicle_id"] for v in body] == ["bus-rt"]
    assert body[0]["trip_id"] == live["plan"].trip_id
    other = client.get(f"/v1/operators/{AGENCY}/vehicles", headers={"X-API-Key": keys["other"]})
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    council = client.get(f"/v1/operators/{AGENCY}/vehicles", headers={"X-API-Key": keys["council"]})
    assert council.status_code == 200 and len(council.json()) == 1
    assert client.get(f"/v1/operators/{AGENCY}/vehicles").status_code == 401


def test_track_events_and_performance(client: TestClient, live: dict[str, Any]) -> None:
    h = {"X-API-Key": live["keys"]["own"]}
    fixes = live["fixes"]
    start = datetime.fromtimestamp(fixes[0].ts, UTC)
    end = datetime.fromtimestamp(fixes[-1].ts + 1, UTC)
    track = client.get(
        f"/v1/operators/{AGENCY}/vehicles/bus-rt/track",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=h,
    )
    assert track.status_code == 200
    assert len(track.json()) == len(fixes)
    bad = client.get(
        f"/v1/operators/{AGENCY}/vehicles/bus-rt/track",
        params={"start": end.isoformat(), "end": start.isoformat()},
        headers=h,
    )
    assert bad.status_code == 422 and bad.json()["type"].endswith("invalid-time-range")
    missing = client.get(
        f"/v1/operators/{AGENCY}/vehicles/nobody/track",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=h,
    )
    assert missing.status_code == 404
    ev = client.get(
        f"/v1/operators/{AGENCY}/events",
        params={"start": start.isoformat(), "end": end.isoformat(), "type": ["departure"]},
        headers=h,
    )
    assert ev.status_code == 200
    deps = ev.json()
    assert deps and {e["type"] for e in deps} == {"departure"}
    plan: TripPlan = live["plan"]
    assert deps[0]["stop_id"] == plan.stops[0].stop_id
    day = datetime.fromtimestamp(fixes[-1].ts, JST).date()
    perf = client.get(
        f"/v1/operators/{AGENCY}/routes/performance", params={"day": day.isoformat()}, headers=h
    )
    assert perf.status_code == 200
    row = next(r for r in perf.json() if r["route_id"] == plan.route_id)
    assert row["departures"] == len(deps) and row["trips_run"] == 1


def _static_feed(db_url: str) -> StaticFeed:
    cur_v = "feed_version = gtfs_current_version()"
    with psycopg.connect(db_url) as conn:
        trips = {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(
                f"SELECT trip_id, route_id, direction_id, shape_id FROM gtfs_trips WHERE {cur_v}"
            )
        }
        routes = {r[0] for r in conn.execute(f"SELECT route_id FROM gtfs_routes WHERE {cur_v}")}
        stops = {
            r[0]: (r[1], r[2], r[3] or 0)
            for r in conn.execute(
                f"SELECT stop_id, stop_lat, stop_lon, location_type FROM gtfs_stops WHERE {cur_v}"
            )
        }
        stop_times: dict[str, list[tuple[int, str]]] = {}
        for t, seq, sid in conn.execute(
            f"SELECT trip_id, stop_sequence, stop_id FROM gtfs_stop_times WHERE {cur_v}"
            " ORDER BY trip_id, stop_sequence"
        ):
            stop_times.setdefault(t, []).append((seq, sid))
        shapes: dict[str, list[tuple[float, float]]] = {}
        for sid, lat, lon in conn.execute(
            f"SELECT shape_id, shape_pt_lat, shape_pt_lon FROM gtfs_shapes WHERE {cur_v}"
            " ORDER BY shape_id, shape_pt_sequence"
        ):
            shapes.setdefault(sid, []).append((lat, lon))
    return StaticFeed(trips, routes, stops, stop_times, shapes)


def test_feeds_pass_the_gtfs_realtime_validator_rules(
    client: TestClient, live: dict[str, Any], db_url: str
) -> None:
    """Zero errors and zero warnings under every validator rule that applies (E022 was
    broken on trips whose timetable gives two consecutive stops the same minute)."""
    static = _static_feed(db_url)
    vp, tu = rt.FeedMessage(), rt.FeedMessage()
    vp.ParseFromString(client.get("/gtfs-rt/vehicle-positions").content)
    tu.ParseFromString(client.get("/gtfs-rt/trip-updates").content)
    now = time.time()
    findings = [
        *check_vehicle_positions(vp, static, now),
        *check_trip_updates(tu, static, now),
        *check_pair(vp, tu),
    ]
    assert findings == []
    assert any(e.trip_update.stop_time_update for e in tu.entity)
