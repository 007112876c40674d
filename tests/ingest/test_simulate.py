"""The simulators: realistic paths and stops, truthful ground truth, faults, radio model."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.embedded import EmbeddedMosquitto
from core.geo import distance_m
from ingest.parse import parse_message
from ingest.rows import Reject, Rows
from ingest.simulate.bus import BusConfig, BusSimulator
from ingest.simulate.city import City, CityConfig
from ingest.simulate.faults import Faults, inject
from ingest.simulate.feed import CHUO_MAEBASHI, MAEBASHI_STATION, Feed, reversed_plan
from ingest.simulate.fiveg import SITES, radio_sample
from tests.support.wait import wait_until

START = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)  # 08:00 JST


def test_shuttle_corridor_is_the_real_one_km_route():
    feed = Feed.load()
    c = feed.corridor()
    assert c.stops[0].stop.stop_id == MAEBASHI_STATION
    assert c.stops[-1].stop.stop_id == CHUO_MAEBASHI
    assert 900 < c.path.length < 1300
    assert len(c.path.points) > 5  # follows the street, not a straight line


def test_ground_truth_matches_the_telemetry():
    feed = Feed.load()
    plan = max(feed.trip_plans(), key=lambda p: len(p.stops))
    bus = BusSimulator(
        BusConfig("bus-x", [plan, reversed_plan(plan)], off_route_per_trip=1.0),
        START,
        random.Random(5),
    )
    msgs = list(bus.messages(START + timedelta(hours=2)))
    tele = {m.ts: json.loads(m.payload) for m in msgs if m.kind == "telemetry"}
    truth = bus.truth
    assert len(truth.visits) > len(plan.stops)
    stops = {s.stop.stop_id: s.stop for s in plan.stops}
    for i, v in enumerate(truth.visits[: len(plan.stops)]):
        assert v.departed > v.arrived
        at = tele[v.arrived]
        assert at["speed_mps"] == 0 and at["door_open"] is True
        s = stops[v.stop_id]
        assert distance_m(at["lat"], at["lon"], s.lat, s.lon) < 80
        if truth.visits[i + 1].arrived > v.departed + timedelta(seconds=1):
            leaving = tele[v.departed + timedelta(seconds=1)]
            assert leaving["door_open"] is False and leaving["speed_mps"] > 0
    arrivals = [v.arrived for v in truth.visits]
    assert arrivals == sorted(arrivals)
    speeds = [t["speed_mps"] for t in tele.values()]
    assert max(speeds) <= 9.0 + 1e-9 and sum(speeds) / len(speeds) > 2
    # the injected detours are really off the route, and only then
    assert truth.off_route
    ep = truth.off_route[0]
    mid = ep.start + (ep.end - ep.start) / 2
    t = tele[mid.replace(microsecond=0)] if mid.microsecond else tele[mid]
    _, off = plan.path.locate(t["lat"], t["lon"])
    _, off_rev = reversed_plan(plan).path.locate(t["lat"], t["lon"])
    assert min(off, off_rev) > 60
    seqs = [t["seq"] for t in tele.values()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_autonomous_shuttle_takeovers_and_modes():
    c = City(
        CityConfig(
            shuttles=1, buses=0, fixed_phones_per_site=0, sensors_per_site=0, phones_per_bus=0
        ),
        START,
    )
    msgs = list(c.messages(START + timedelta(hours=3)))
    events = [json.loads(m.payload) for m in msgs if m.kind == "event"]
    takeovers = [e for e in events if e["type"] == "takeover"]
    truth = c.buses[0].truth
    assert len(takeovers) == truth.takeovers > 0
    assert all(
        e["cause"] in {"parked_vehicle", "pedestrian", "signal", "right_turn", "obstacle", "other"}
        for e in takeovers
    )
    per_km = truth.takeovers / (truth.distance_m / 1000)
    assert 0.5 < per_km < 4  # about 1.7 per km configured
    modes = {json.loads(m.payload)["mode"] for m in msgs if m.kind == "telemetry"}
    assert modes == {"autonomous", "manual"}
    for m in msgs:
        assert isinstance(parse_message(m.topic, m.payload, START + timedelta(days=1)), Rows)


def test_radio_quality_falls_with_distance_from_the_gnb():
    site = SITES[0]
    rng = random.Random(1)

    def mean_rsrp(metres: float) -> float:
        from core.geo import offset

        lat, lon = offset(site.lat, site.lon, 45.0, metres)
        samples = [radio_sample(site, lat, lon, rng)["rsrp_dbm"] for _ in range(200)]
        return sum(float(str(x)) for x in samples) / 200

    near, mid, far = mean_rsrp(50), mean_rsrp(400), mean_rsrp(2000)
    assert near > mid > far
    assert near > -95 and far < -100


def test_faults_are_what_was_asked_for():
    c = City(CityConfig(shuttles=1, buses=2, seed=4), START)
    clean = list(c.messages(START + timedelta(minutes=20)))
    c2 = City(CityConfig(shuttles=1, buses=2, seed=4), START)
    faulty = list(
        inject(c2.messages(START + timedelta(minutes=20)), Faults(0.1, 0.1, 0.1), random.Random(9))
    )
    dups = sum(m.duplicate for m in faulty)
    bad = [m for m in faulty if not m.valid]
    assert len(faulty) == len(clean) + dups
    assert 0.07 < dups / len(clean) < 0.13 and 0.07 < len(bad) / len(faulty) < 0.13
    for m in bad:
        assert isinstance(parse_message(m.topic, m.payload, START + timedelta(days=1)), Reject)
    ts = [m.ts for m in faulty]
    assert ts != sorted(ts)  # out of order


def test_simulate_command_publishes_to_the_broker(mqtt_broker: EmbeddedMosquitto):
    got: list[str] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    sub.on_message = lambda _c, _u, m: got.append(m.topic)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect("127.0.0.1", mqtt_broker.port)
    sub.subscribe("maebashi/#", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK"
        env = {**os.environ, "MEBUKU_MQTT_URL": mqtt_broker.url}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "core.cli",
                "simulate",
                "--shuttles",
                "1",
                "--buses",
                "1",
                "--duration",
                "120",
                "--speed",
                "0",
                "--start",
                "2026-11-25T08:00:00+09:00",
            ],
            env=env,
            check=True,
            timeout=60,
        )
        wait_until(lambda: len(got) >= 240, 10, every=0.1)  # the count is asserted below
    finally:
        sub.loop_stop()
    kinds = {t.rsplit("/", 1)[1] for t in got}
    assert {"telemetry", "radio", "senml"} <= kinds
    assert sum(t.endswith("/telemetry") for t in got) == 240  # 2 vehicles x 120 s at 1 Hz
