"""Benchmark: GTFS import of the real feed, tracker throughput on one core, and the state
worker end to end (telemetry rows in bus_telemetry -> vehicle_state/vehicle_events),
including message-to-state latency at a steady rate. Prints a table.

Creates its own database (on MEBUKU_BENCH_ADMIN_URL, else a private PostgreSQL started
here). Targets: import "in seconds"; >= 5,000 telemetry messages/s on one core; state
latency < 2 s at a steady rate.

    .venv/bin/python bench/mobility_bench.py [--buses 60] [--rate 2000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from core import migrator
from core.embedded import EmbeddedMosquitto, ScratchDatabase, server_dir
from core.resources import default_gtfs
from core.settings import Settings, parse_mqtt_url
from mobility.gtfs.importer import import_feed
from mobility.gtfs.parser import read_feed
from mobility.vehicles.schedule import Schedule, load_schedule, service_day_epoch
from mobility.vehicles.tracker import Fix, Tracker
from mobility.vehicles.worker import StateWorker, WorkerConfig
from tests.support.replay import copy_fixes
from tests.support.scenario import drive_trip, merge

FEED = default_gtfs()
DAY = date(2025, 6, 2)


def fleet(schedule: Schedule, buses: int, send_trip_id: bool = True) -> list[Fix]:
    """``buses`` buses on the feed's weekday trips, 1 fix/s each, merged in time order."""
    plans = sorted(
        (p for p in schedule.trips.values() if p.service_id == "平日"), key=lambda p: p.start_s
    )
    day0 = service_day_epoch(DAY)
    scenarios = []
    for i in range(buses):
        plan = plans[(i * 7) % len(plans)]
        scenarios.append(
            drive_trip(
                plan,
                f"bench-{i:03d}",
                day0 + plan.start_s + 60 * (i % 5),
                seed=i,
                send_trip_id=send_trip_id,
                layover_s=30,
                after_s=10,
            )
        )
    return merge(*scenarios)


def bench_import(url: str) -> list[tuple[str, str]]:
    t = time.perf_counter()
    read_feed(FEED)
    parse = time.perf_counter() - t
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        import_feed(url, FEED, force=True)
        runs.append(time.perf_counter() - t)
    return [
        ("GTFS parse + validate (real feed, 24k rows)", f"{parse:.2f} s"),
        ("GTFS import incl. COPY, median of 3", f"{statistics.median(runs):.2f} s"),
    ]


def bench_tracker(schedule: Schedule, fixes: list[Fix], label: str) -> tuple[str, str]:
    tracker = Tracker(schedule)
    t = time.perf_counter()
    for f in fixes:
        tracker.process(f)
    took = time.perf_counter() - t
    return (f"tracker only, {label} ({len(fixes):,} fixes)", f"{len(fixes) / took:,.0f} fixes/s")


def bench_worker_backlog(url: str, fixes: list[Fix]) -> tuple[str, str]:
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE bus_telemetry, vehicle_state, vehicle_events, mobility_worker_cursor"
        )
        with conn.cursor() as cur:
            copy_fixes(cur, fixes, lambda _f: now)
    worker = StateWorker(url, config=WorkerConfig(batch=20_000), clock=lambda: 0.0)
    t = time.perf_counter()
    n = 0
    while True:
        got = worker.run_once()
        n += got
        if got == 0:
            break
    took = time.perf_counter() - t
    worker.close()
    return (f"worker end to end, backlog of {n:,} rows", f"{n / took:,.0f} msgs/s")


def bench_latency(url: str, fixes: list[Fix], rate: int, seconds: int) -> list[tuple[str, str]]:
    """A writer inserts rows at ``rate``/s (received_at = commit clock, as ingest does)
    every 100 ms while the worker runs; latency = state write time - received_at."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE bus_telemetry, vehicle_state, vehicle_events, mobility_worker_cursor"
        )
    worker = StateWorker(url, config=WorkerConfig(poll_s=0.1), clock=lambda: 0.0)
    latencies = _capture(worker.metrics.latency)
    thread = threading.Thread(target=worker.run)
    thread.start()
    per_tick = rate // 10
    sent = 0
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < seconds and sent < len(fixes):
            chunk = fixes[sent : sent + per_tick]
            with conn.transaction(), conn.cursor() as cur:
                now = datetime.now(UTC)
                copy_fixes(cur, chunk, lambda _f: now)  # noqa: B023 - used at once
            sent += len(chunk)
            tick += 1
            time.sleep(max(0.0, start + tick * 0.1 - time.monotonic()))
    time.sleep(1.0)
    worker.stop()
    thread.join()
    worker.close()
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) > 2 else [0.0] * 99
    return [
        (f"steady {rate:,} msgs/s for {seconds} s: rows sent", f"{sent:,}"),
        (
            "  state latency p50 / p99 / max",
            f"{q[49]:.3f} / {q[98]:.3f} / {lat[-1] if lat else 0:.3f} s",
        ),
    ]


def _capture(hist: Any) -> list[float]:
    """Record every observation of a prometheus Histogram (bench only)."""
    seen: list[float] = []
    orig = hist.observe

    def observe(v: float, exemplar: dict[str, str] | None = None) -> None:
        seen.append(v)
        orig(v, exemplar)

    hist.observe = observe
    return seen


def bench_pipeline(
    url: str, mqtt_url: str, fixes: list[Fix], rate: int, seconds: int
) -> list[tuple[str, str]]:
    """The whole path, each part in its own process as deployed: JSON telemetry published
    to Mosquitto (QoS 1) at ``rate``/s stamped with the wall clock, ``mebuku ingest``
    storing it, ``mebuku mobility worker`` tracking it. Latency = vehicle_state.updated_at
    - the message's own ``ts``, sampled every 100 ms for every vehicle."""
    from ingest.simulate.publisher import Publisher

    mqtt = parse_mqtt_url(mqtt_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE bus_telemetry, vehicle_state, vehicle_events, mobility_worker_cursor"
        )
    env = {
        **os.environ,
        "MEBUKU_DATABASE_URL": url,
        "MEBUKU_MQTT_URL": mqtt_url,
        "MEBUKU_METRICS_PORT": "0",
        "MEBUKU_LOG_LEVEL": "WARNING",
    }
    exe = os.path.join(os.path.dirname(sys.executable), "mebuku")
    procs = [
        subprocess.Popen(
            [
                exe,
                "ingest",
                "--group",
                "benchmobility",
                "--topic",
                "maebashi/bus/#",
                "--metrics-port",
                "0",
            ],
            env=env,
        ),
        subprocess.Popen([exe, "mobility", "worker", "--metrics-port", "0"], env=env),
    ]
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        seen: dict[str, datetime] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                for vid, ts, lag in conn.execute(
                    "SELECT vehicle_id, ts, extract(epoch FROM updated_at - ts)::float8"
                    " FROM vehicle_state WHERE status <> 'offline'"
                ):
                    if seen.get(vid) != ts:
                        seen[vid] = ts
                        samples.append(lag)
                stop.wait(0.02)

    sent = 0
    try:
        time.sleep(3.0)  # both workers connected and subscribed
        sampler = threading.Thread(target=sample)
        sampler.start()
        # ``rate`` buses reporting at 1 Hz each: bus j replays base bus j % n of the fleet
        # (its own copy), one fix per second, spread over the second.
        base: dict[str, list[Fix]] = {}
        for f in fixes:
            base.setdefault(f.vehicle_id, []).append(f)
        tracks = list(base.values())
        ticks_per_s = 20
        per_tick = max(1, rate // ticks_per_s)
        with Publisher(mqtt) as pub:
            start = time.time()
            tick = 0
            while time.time() - start < seconds:
                second, part = divmod(tick, ticks_per_s)
                now = time.time()
                for j in range(part * per_tick, (part + 1) * per_tick):
                    track = tracks[j % len(tracks)]
                    f = track[min(second, len(track) - 1)]
                    body = {
                        "ts": datetime.fromtimestamp(now, UTC).isoformat(),
                        "lat": f.lat,
                        "lon": f.lon,
                        "speed_mps": f.speed_mps,
                        "heading_deg": f.heading_deg,
                        "odometer_m": f.odometer_m,
                        "mode": f.mode,
                        "trip_id": f.trip_id,
                        "route_id": f.route_id,
                    }
                    topic = f"maebashi/bus/{f.vehicle_id}-{j:05d}/telemetry"
                    pub.publish(topic, json.dumps(body).encode())
                    sent += 1
                tick += 1
                time.sleep(max(0.0, start + tick / ticks_per_s - time.time()))
            achieved = sent / (time.time() - start)
        time.sleep(3.0)
        stop.set()
        sampler.join()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM received_at - ts)) FROM bus_telemetry"
        ).fetchone()
    ingest_q = row[0] if row and row[0] else [0.0, 0.0]
    lat = sorted(samples)
    q = statistics.quantiles(lat, n=100) if len(lat) > 2 else [0.0] * 99
    return [
        (
            f"MQTT -> ingest -> state, {seconds} s: published (rate achieved)",
            f"{sent:,} ({achieved:,.0f}/s)",
        ),
        (
            "  message ts -> vehicle state p50 / p99 / max",
            f"{q[49]:.3f} / {q[98]:.3f} / {lat[-1] if lat else 0:.3f} s ({len(lat):,} samples)",
        ),
        (
            "  of which message ts -> ingest transaction start p50 / p99",
            f"{ingest_q[0]:.3f} / {ingest_q[1]:.3f} s",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--buses", type=int, default=60)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--no-mqtt", action="store_true", help="skip the MQTT pipeline run")
    args = ap.parse_args()
    db = ScratchDatabase(os.environ.get("MEBUKU_BENCH_ADMIN_URL"))
    url = db.url
    try:
        migrator.migrate(url, Settings(database_url=url, _env_file=None))
        results = bench_import(url)
        with psycopg.connect(url) as conn:
            schedule = load_schedule(conn)
        fixes = fleet(schedule, args.buses)
        results.append(bench_tracker(schedule, fixes, "trip_id given"))
        results.append(
            bench_tracker(schedule, fleet(schedule, 10, False)[:20000], "trip inferred, 10 buses")
        )
        results.append(bench_worker_backlog(url, fixes))
        results.extend(bench_latency(url, fixes, args.rate, args.seconds))
        if not args.no_mqtt:
            mqtt_url = os.environ.get("MEBUKU_BENCH_MQTT_URL")
            broker = None
            if not mqtt_url:
                broker = EmbeddedMosquitto(server_dir("mebuku-bench-mqtt-"))
                broker.start()
                mqtt_url = broker.url
            try:
                results.extend(bench_pipeline(url, mqtt_url, fixes, args.rate, args.seconds))
            finally:
                if broker:
                    broker.stop()
    finally:
        db.close()
    width = max(len(k) for k, _ in results)
    print(f"{'measure':<{width}}  result")
    print("-" * (width + 24))
    for k, v in results:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
