"""Benchmark: the API platform's own cost per request (auth, problem handling, metrics).

Starts its own PostgreSQL and Mosquitto, migrates, creates a council API key, seeds
bus telemetry (--vehicles x 1 Hz for 6 hours), runs ``mebuku api`` in its own process on
loopback and drives it with --concurrency keep-alive clients (closed loop) for
--requests per endpoint. Latency is per request, as the client sees it. Prints a table.

    .venv/bin/python bench/api_platform_bench.py [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from api.keys import create_api_key
from core import migrator
from core.db import create_database
from core.embedded import EmbeddedMosquitto, EmbeddedPostgres, free_port, server_dir
from core.settings import Settings

KEY = "bench-pseudonym-key-not-secret-0123456789"


def seed(url: str, vehicles: int) -> int:
    now = datetime.now(UTC)
    rows = 0
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy("COPY bus_telemetry (vehicle_id, ts, lat, lon, received_at) FROM STDIN") as copy,
    ):
        for v in range(vehicles):
            for s in range(6 * 3600):
                ts = now - timedelta(seconds=s)
                copy.write_row((f"bus-{v:02d}", ts, 36.39, 139.06, ts + timedelta(seconds=0.5)))
                rows += 1
    return rows


async def drive(
    client: httpx.AsyncClient,
    call: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    n: int,
    concurrency: int,
    expect: int,
) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            r = await call(client)
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == expect, (r.status_code, r.text[:200])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p * len(values)))] * 1000


async def run(base: str, key: str, n: int, concurrency: int) -> None:
    now = datetime.now(UTC)
    query = {
        "range": {"from": (now - timedelta(hours=6)).isoformat(), "to": now.isoformat()},
        "intervalMs": 60_000,
        "maxDataPoints": 500,
        "targets": [{"target": "ingest.lag_seconds", "refId": "A"}],
    }
    h = {"X-API-Key": key}
    cases: list[tuple[str, Callable[[httpx.AsyncClient], Awaitable[httpx.Response]], int, int]] = [
        ("GET /healthz (public)", lambda c: c.get("/healthz"), n, 200),
        ("GET /grafana/ (API key lookup)", lambda c: c.get("/grafana/", headers=h), n, 200),
        (
            "GET /grafana/ bad key (401 problem)",
            lambda c: c.get("/grafana/", headers={"X-API-Key": "mbk_x_y"}),
            n,
            401,
        ),
        (
            "POST /grafana/query (422 problem)",
            lambda c: c.post("/grafana/query", headers=h, json={"range": {}}),
            n,
            422,
        ),
        ("GET /readyz (DB + MQTT CONNECT)", lambda c: c.get("/readyz"), n // 4, 200),
        (
            "POST /grafana/query lag, 6 h",
            lambda c: c.post("/grafana/query", headers=h, json=query),
            max(n // 20, 20),
            200,
        ),
    ]
    print("| endpoint | requests | concurrency | req/s | p50 ms | p95 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    limits = httpx.Limits(max_keepalive_connections=concurrency, max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for name, call, count, expect in cases:
            await drive(client, call, min(count, 50), concurrency, expect)  # warm up
            lat, elapsed = await drive(client, call, count, concurrency, expect)
            print(
                f"| {name} | {count} | {concurrency} | {count / elapsed:,.0f} | "
                f"{pct(lat, 0.5):.1f} | {pct(lat, 0.95):.1f} | {pct(lat, 0.99):.1f} |"
            )
            assert statistics.mean(lat) > 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--vehicles", type=int, default=4)
    args = ap.parse_args()

    pg_root, mq_root = server_dir("mebuku-bench-pg-"), server_dir("mebuku-bench-mq-")
    pg, broker = EmbeddedPostgres(pg_root), EmbeddedMosquitto(mq_root)
    proc: subprocess.Popen[bytes] | None = None
    try:
        pg.start()
        broker.start()
        create_database(pg.url(), "bench")
        url = pg.url("bench")
        migrator.migrate(url, Settings(database_url=url, pseudonym_key=KEY, _env_file=None))
        rows = seed(url, args.vehicles)
        key = create_api_key(url, "council", label="bench")
        port = free_port()
        env = {
            **os.environ,
            "MEBUKU_DATABASE_URL": url,
            "MEBUKU_MQTT_URL": broker.url,
            "MEBUKU_PSEUDONYM_KEY": KEY,
            "MEBUKU_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("API did not start")
            time.sleep(0.2)
        print(f"seeded {rows} telemetry rows; API pid {proc.pid}; {os.cpu_count()} CPUs\n")
        asyncio.run(run(base, key, args.requests, args.concurrency))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        broker.stop()
        pg.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
        shutil.rmtree(mq_root, ignore_errors=True)


if __name__ == "__main__":
    main()
