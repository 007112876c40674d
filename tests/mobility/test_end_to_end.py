"""End to end with the real parts: the ingest package's BusSimulator publishes to a real
Mosquitto, the ingest worker stores the telemetry, the mobility worker turns it into
stop events, which must agree with the simulator's own ground truth (true arrival and
departure times, true off-route episodes)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import psycopg
import pytest

from core.settings import Settings
from ingest.simulate.bus import BusConfig, BusSimulator, VehicleTruth
from ingest.simulate.feed import Feed
from ingest.simulate.messages import JST, SimMessage
from ingest.simulate.publisher import Publisher
from ingest.worker import IngestWorker, WorkerConfig
from mobility.gtfs.importer import import_feed
from mobility.vehicles.schedule import load_schedule
from mobility.vehicles.tracker import TrackerConfig
from mobility.vehicles.worker import StateWorker
from mobility.vehicles.worker import WorkerConfig as StateWorkerConfig
from tests.mobility.feeds import REAL_FEED
from tests.support.wait import wait_until

DAY = date(2025, 6, 3)  # a Tuesday
CRUISE = 9.0
STOP_TOL_S = 3.0
OFF_ROUTE_AFTER_S = 10.0


def _drive(sim: BusSimulator, n_stops: int, layover_s: float) -> list[SimMessage]:
    """One trip, up to the end of the layover at its last stop (the simulator records the
    trip's off-route episode when the layover ends and the next cycle begins)."""
    out: list[SimMessage] = []
    done_at: datetime | None = None
    for m in sim.messages():
        if (
            done_at is not None
            and m.kind == "telemetry"
            and m.ts >= done_at + timedelta(seconds=layover_s)
        ):
            break  # the next cycle of the same trip: not part of this scenario
        out.append(m)
        if done_at is None and len(sim.truth.visits) == n_stops:
            done_at = m.ts
    return out


@pytest.fixture(scope="module")
def e2e(
    settings: Settings, db_url: str
) -> Iterator[tuple[str, dict[str, VehicleTruth], dict[str, int]]]:
    import_feed(db_url, REAL_FEED)
    with psycopg.connect(db_url) as conn:
        schedule = load_schedule(conn)
    by_trip = {p.trip_id: p for p in Feed.load(REAL_FEED).trip_plans()}
    chosen = [
        "平日_06時45分_系統1072",  # 新前橋駅西口線, sent off route
        "平日_07時15分_系統101",  # 前橋高崎線, 33 stops
        "平日_08時55分_系統1311",  # スマーク線
        "平日_07時15分_系統20221",  # 高崎市循環バス ぐるりん (a loop)
    ]
    truths: dict[str, VehicleTruth] = {}
    stops_of: dict[str, int] = {}
    messages: list[SimMessage] = []
    for i, trip_id in enumerate(chosen):
        plan = by_trip[trip_id]
        start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=JST) + timedelta(
            seconds=schedule.trips[trip_id].start_s + 45 * i
        )
        cfg = BusConfig(
            f"e2e-{i}",
            [plan],
            cruise_mps=CRUISE,
            obstacle_stops_per_km=0.0,
            off_route_per_trip=1.0 if i == 0 else 0.0,
            layover_s=60,
        )
        # Seed 6 sends bus 0 on a 42 s detour peaking 150 m from the shape.
        sim = BusSimulator(cfg, start, random.Random(6 if i == 0 else 100 + i))
        messages.extend(_drive(sim, len(plan.stops), cfg.layover_s))
        truths[cfg.vehicle_id] = sim.truth
        stops_of[cfg.vehicle_id] = len(plan.stops)
    telemetry = sum(1 for m in messages if m.kind == "telemetry")
    name = uuid.uuid4().hex[:8]
    ingest = IngestWorker(
        WorkerConfig(
            database_url=db_url,
            mqtt=settings.mqtt,
            client_id=f"e2e-ingest-{name}",
            group=f"e2e{name}",
            topic_filter="maebashi/bus/#",
            session_expiry=60,
        )
    )
    ingest.start()
    try:
        assert ingest.subscribed.wait(15), "ingest worker did not subscribe"
        connected = ingest.metrics.registry.get_sample_value("mebuku_ingest_mqtt_connected")
        assert connected == 1
        with Publisher(settings.mqtt) as pub:
            for m in messages:
                pub.publish(m.topic, m.payload)
        with psycopg.connect(db_url, autocommit=True) as conn:

            def stored() -> int:
                row = conn.execute(
                    "SELECT count(*) FROM bus_telemetry WHERE vehicle_id LIKE 'e2e-%'"
                ).fetchone()
                return row[0] if row else 0

            assert wait_until(lambda: stored() >= telemetry, 60, every=0.2), (
                f"{stored()} of {telemetry} telemetry rows stored"
            )
    finally:
        ingest.stop()
    worker = StateWorker(
        db_url,
        TrackerConfig(off_route_after_s=OFF_ROUTE_AFTER_S),
        StateWorkerConfig(),
        clock=lambda: 0.0,
    )
    try:
        while worker.run_once():
            pass
    finally:
        worker.close()
    yield db_url, truths, stops_of


def test_stop_times_agree_with_simulator_truth(e2e) -> None:
    url, truths, n_stops = e2e
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT vehicle_id, type, stop_sequence, ts FROM vehicle_events"
            " WHERE vehicle_id LIKE 'e2e-%' AND type IN ('arrival', 'departure')"
        ).fetchall()
    got = {(r[0], r[1], r[2]): r[3] for r in rows}
    compared = 0
    for vid, truth in truths.items():
        visits = truth.visits[: n_stops[vid]]  # a next cycle's first visit may follow
        for k, v in enumerate(visits):
            arr = got.get((vid, "arrival", v.stop_sequence))
            assert arr is not None, (vid, v)
            assert abs((arr - v.arrived).total_seconds()) <= STOP_TOL_S, (vid, v, arr)
            if k < len(visits) - 1:  # the terminus has no departure
                dep = got.get((vid, "departure", v.stop_sequence))
                assert dep is not None, (vid, v)
                assert abs((dep - v.departed).total_seconds()) <= STOP_TOL_S, (vid, v, dep)
            compared += 1
    assert compared >= 20


def test_off_route_episodes_agree_with_simulator_truth(e2e) -> None:
    url, truths, _ = e2e
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT vehicle_id, type, ts, (detail->>'episode_start')::float8 FROM vehicle_events"
            " WHERE vehicle_id LIKE 'e2e-%' AND type IN ('off_route', 'on_route') ORDER BY ts"
        ).fetchall()
    # The simulator ramps out at 45 degrees: beyond 60 m after 60 m of travel.
    ramp_s = 60.0 / CRUISE
    expected = 0
    for vid, truth in truths.items():
        mine = [r for r in rows if r[0] == vid]
        long_enough = [
            ep
            for ep in truth.off_route
            if (ep.end - ep.start).total_seconds() - 2 * ramp_s > OFF_ROUTE_AFTER_S + 3
            and ep.max_offset_m > 70
        ]
        offs = [r for r in mine if r[1] == "off_route"]
        ons = [r for r in mine if r[1] == "on_route"]
        assert len(offs) == len(long_enough) == len(ons), (vid, truth.off_route, mine)
        for ep, off, on in zip(long_enough, offs, ons, strict=True):
            expected += 1
            start = ep.start.timestamp()
            assert start <= off[3] <= start + ramp_s + 2
            assert ep.end.timestamp() - ramp_s - 2 <= on[2].timestamp() <= ep.end.timestamp() + 2
    assert expected >= 1  # bus e2e-0 was sent off route
