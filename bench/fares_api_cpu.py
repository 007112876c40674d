"""Benchmark: API CPU per request for GET /v1/me/subsidy and POST /v1/fares/quote, in process.

The same database, seed and requests as ``fares_api_bench.py``, but the app
(``api.app.create_app``, every middleware included) is called as an ASGI app from this
process: no HTTP server and no sockets between client and app, so the number is the app's
own cost (routing, dependencies, screen, credentials, queries, serialisation) and moves
less with other work on the machine than the open-loop run does. Each endpoint runs
``--repeat`` rounds of ``--requests`` requests on ``--concurrency`` tasks; the table gives
the lowest and the median CPU time per request over the rounds. Uvicorn's HTTP layer
adds about 0.15-0.2 ms per request on top (compare with ``fares_api_bench.py``).

    .venv/bin/python bench/fares_api_cpu.py [--requests 600] [--repeat 7] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import fares_api_bench as fab
import psycopg

from core import migrator
from core.embedded import ScratchDatabase
from core.settings import Settings
from mobility.gtfs.importer import import_feed


def scope_of(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """An ASGI HTTP scope and body from a raw HTTP/1.1 request."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ")
    headers = [(k.strip().lower(), v.strip()) for k, v in (h.split(b":", 1) for h in lines[1:])]
    path, _, query = target.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.decode(),
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    return scope, body


async def call(app: Any, raw: bytes) -> int:
    """One request through the whole app; its status."""
    scope, body = scope_of(raw)
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the app works
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


async def measure(
    app: Any, tokens: list[str], kind: str, n: int, repeat: int, conc: int
) -> tuple[list[float], int]:
    """CPU ms per request of each round, and the count of non-200 answers."""
    bad = 0
    rounds: list[float] = []
    async with app.router.lifespan_context(app):
        for i in range(100):  # warm-up: pool, prepared statements, caches
            await call(app, fab.build(kind, i, tokens[i % len(tokens)], 8000))
        for _ in range(repeat):
            todo = list(range(n))

            async def worker(todo: list[int] = todo) -> None:
                nonlocal bad
                while todo:
                    i = todo.pop()
                    raw = fab.build(kind, i, tokens[i % len(tokens)], 8000)
                    bad += await call(app, raw) != 200

            cpu0 = time.process_time()
            await asyncio.gather(*(worker() for _ in range(conc)))
            rounds.append((time.process_time() - cpu0) * 1000 / n)
    return rounds, bad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=600, help="requests per round")
    ap.add_argument("--repeat", type=int, default=7, help="rounds per endpoint")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--residents", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=300)
    args = ap.parse_args()
    db = ScratchDatabase(os.environ.get("MEBUKU_BENCH_ADMIN_URL"))
    try:
        migrator.migrate(
            db.url, Settings(database_url=db.url, pseudonym_key=fab.KEY, _env_file=None)
        )
        import_feed(db.url, fab.FEED)
        tokens = fab.seed(db.url, args.residents)
        with psycopg.connect(db.url) as conn:
            fab.PAIRS.extend(
                dict(fab.BUS, route_id=r, origin_stop_id=o, destination_stop_id=d)
                for r, o, d in conn.execute(
                    "SELECT route_id, origin_id, destination_id FROM gtfs_fare_rules"
                    " WHERE feed_version = gtfs_current_version() AND origin_id IS NOT NULL"
                    " ORDER BY md5(fare_id || origin_id || destination_id) LIMIT %s",
                    [args.pairs],
                )
            )
        os.environ.update(
            MEBUKU_DATABASE_URL=db.url, MEBUKU_PSEUDONYM_KEY=fab.KEY, MEBUKU_LOG_LEVEL="WARNING"
        )
        print(
            f"\nin process, {args.repeat} rounds of {args.requests} requests,"
            f" {args.concurrency} at a time, {args.residents} residents"
        )
        print(f"{'endpoint':<24}{'min ms':>9}{'median ms':>11}{'non-200':>9}")
        for kind, label in (("subsidy", "GET /v1/me/subsidy"), ("quote", "POST /v1/fares/quote")):
            app = fab.make_app()
            rounds, bad = asyncio.run(
                measure(app, tokens, kind, args.requests, args.repeat, args.concurrency)
            )
            print(f"{label:<24}{min(rounds):>9.3f}{statistics.median(rounds):>11.3f}{bad:>9}")
        print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        db.close()


if __name__ == "__main__":
    main()
