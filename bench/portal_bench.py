"""Benchmark: the portal's signed-in pages with 100 residents at once (target p95 < 100 ms).

Starts its own PostgreSQL (or uses MEBUKU_BENCH_ADMIN_URL), migrates, imports the Gunma
Chuo GTFS-JP feed (stop and route names), seeds residents with a birth date, a card, a
session (the portal's cookie), this month's taxi rides and bus taps and a fiscal year of
ledger entries, then runs the real API (``api.app.create_app``) under uvicorn in its own
process on loopback. Each of ``--residents-online`` simulated residents keeps one
keep-alive connection and, in a loop, opens a signed-in page (my MyTaku, my rides, my
cards, notice settings, a stop's next buses, a fare, in turn), reads it all, then "reads"
for a think time drawn uniformly from 0 to 2x ``--think`` seconds. Latency is from sending
the request to the last byte. Prints a table per page.

    .venv/bin/python bench/portal_bench.py [--residents-online 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg

from core import migrator
from core.embedded import ScratchDatabase, free_port
from core.resources import default_gtfs
from core.sessions import _digest
from core.settings import Settings
from mobility.fares import cards
from mobility.gtfs.importer import import_feed

KEY = "bench-pseudonym-key-not-secret-0123456789"
PAGES = [
    ("/my/", "my MyTaku"),
    ("/my/rides", "my rides (month)"),
    ("/my/cards", "my cards"),
    ("/my/notices", "notice settings"),
    ("/stops/g033_01", "next buses at a stop"),
    ("/stops/fare?from=" + quote("表町") + "&to=" + quote("中央前橋駅前"), "fare with my discount"),
]
SERVER = (
    "import uvicorn; uvicorn.run('portal_bench:make_app', factory=True, app_dir={app_dir!r},"
    " host='127.0.0.1', port={port}, workers={workers}, access_log=False, log_level='warning')"
)


def make_app() -> object:
    """The API as ``mebuku api`` serves it (settings from the environment)."""
    from api.app import create_app

    return create_app(Settings(_env_file=None))


def seed(url: str, residents: int) -> list[str]:
    """Residents with facts, a card, 10 taxi rides and 20 bus taps this month, 20 ledger
    entries; their session tokens."""
    now = datetime.now(UTC)
    tokens = [secrets.token_urlsafe(32) for _ in range(residents)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO fare_residents SELECT FROM generate_series(1, %s) RETURNING resident_id",
            [residents],
        )
        rids = [r[0] for r in cur.fetchall()]
        cur.executemany(
            "INSERT INTO fare_eligibility_facts (resident_id, kind, value, recorded_by)"
            " VALUES (%s, 'birth_date', %s, 'bench')",
            [(r, f"{1935 + r % 80}-03-03") for r in rids],
        )
        hashes = [cards.idm_hash(KEY.encode(), f"0E0E{r:012X}") for r in rids]
        cur.executemany(
            "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, %s, %s)",
            [(h, f"{r % 65536:04X}", r) for h, r in zip(hashes, rids, strict=True)],
        )
        cur.executemany(
            "INSERT INTO auth_sessions (token_hash, resident_id, expires_at) VALUES (%s, %s, %s)",
            [(_digest(t), r, now + timedelta(hours=2)) for t, r in zip(tokens, rids, strict=True)],
        )
        start = now.replace(day=1, hour=1, minute=0, second=0, microsecond=0)
        cur.execute(
            "INSERT INTO fare_taxi_rides (operator_id, record_id, vehicle_id, pickup_at,"
            " dropoff_at, pickup_lon, pickup_lat, dropoff_lon, dropoff_lat, meter_fare_yen,"
            " riders, policy_version)"
            " SELECT 'demo-taxi', 't-' || r || '-' || k, 'taxi-1', %(s)s + make_interval("
            "days => k), %(s)s + make_interval(days => k, mins => 15), 139.07, 36.38, 139.07,"
            " 36.39, 1800, 1, 'mytaku-2022-04' FROM generate_series(1, %(n)s) r,"
            " generate_series(0, 9) k",
            {"s": start, "n": residents},
        )
        cur.execute(
            "INSERT INTO fare_taxi_riders (operator_id, record_id, position, idm_hash,"
            " resident_id, pickup_at, dropoff_at, subsidy_yen, reason)"
            " SELECT operator_id, record_id, 0, c.idm_hash, c.resident_id, pickup_at,"
            " dropoff_at, 900, 'subsidised' FROM fare_taxi_rides t JOIN fare_ic_cards c"
            " ON c.resident_id = split_part(t.record_id, '-', 2)::bigint",
        )
        cur.execute(
            "INSERT INTO fare_bus_taps (operator_id, record_id, route_id, origin_stop_id,"
            " dest_stop_id, tap_on_at, tap_off_at, idm_hash, resident_id, fare_yen,"
            " discount_yen, discount, policy_version)"
            " SELECT 'gunmachuo', 'b-' || c.resident_id || '-' || k, '新前橋駅西口線_A',"
            " 'g033_01', 'm003_02', %(s)s + make_interval(days => k %% 28, hours => 8),"
            " %(s)s + make_interval(days => k %% 28, hours => 8, mins => 20), c.idm_hash,"
            " c.resident_id, 100, 10, 'senior', 'bus-2024-12'"
            " FROM fare_ic_cards c, generate_series(0, 19) k",
            {"s": start},
        )
        cur.execute(
            "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,"
            " amount_yen, ride_at, service_day, fiscal_year, policy_version)"
            " SELECT date_trunc('month', pickup_at)::date, operator_id, 'taxi', record_id,"
            " resident_id, 'mytaku', subsidy_yen, pickup_at, pickup_at::date, %s,"
            " 'mytaku-2022-04' FROM fare_taxi_riders",
            [now.year if now.month >= 4 else now.year - 1],
        )
        cur.execute("ANALYZE")
    return tokens


async def resident(
    port: int,
    token: str,
    until: float,
    think: float,
    lat: dict[str, list[float]],
    errors: list[str],
    rnd: random.Random,
) -> None:
    """One resident's browsing: a keep-alive connection, a page, a pause, the next page."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = rnd.randrange(len(PAGES))
    await asyncio.sleep(rnd.uniform(0, 2 * think))  # residents do not all start at once
    try:
        while time.perf_counter() < until:
            path, label = PAGES[i % len(PAGES)]
            i += 1
            raw = (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Cookie: mebuku_portal={token}\r\nAccept-Language: ja\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(raw)
            first = await reader.readline()
            if not first:  # the server closed the idle keep-alive connection: reconnect
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t0 = time.perf_counter()
                writer.write(raw)
                first = await reader.readline()
            status = int(first.split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            lat[label].append((time.perf_counter() - t0) * 1000)
            if status != 200:
                errors.append(f"{path}: {status}")
            await asyncio.sleep(rnd.uniform(0, 2 * think))
    finally:
        writer.close()


async def run_load(
    port: int, tokens: list[str], online: int, seconds: float, think: float, warmup: float
) -> tuple[dict[str, list[float]], list[str], int]:
    """The measured latencies per page, the errors, and how many pages were served in all
    (warm-up included, for the CPU per page)."""
    rnd = random.Random(17)
    warm = {label: [] for _p, label in PAGES}  # type: dict[str, list[float]]
    await asyncio.gather(
        *(
            resident(port, tokens[i], time.perf_counter() + warmup, think, warm, [], rnd)
            for i in range(min(online, 20))
        )
    )
    lat = {label: [] for _p, label in PAGES}  # type: dict[str, list[float]]
    errors: list[str] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(
        *(resident(port, tokens[i], until, think, lat, errors, rnd) for i in range(online))
    )
    served = sum(len(v) for v in warm.values()) + sum(len(v) for v in lat.values())
    return lat, errors, served


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents-online", type=int, default=100)
    ap.add_argument("--residents", type=int, default=2000, help="residents in the database")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--think", type=float, default=1.0, help="mean think time (s)")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--warmup", type=float, default=3)
    args = ap.parse_args()
    db = ScratchDatabase(os.environ.get("MEBUKU_BENCH_ADMIN_URL"))
    url = db.url
    server = None
    try:
        migrator.migrate(url, Settings(database_url=url, pseudonym_key=KEY, _env_file=None))
        import_feed(url, default_gtfs())
        tokens = seed(url, max(args.residents, args.residents_online))
        port = free_port()
        env = dict(
            os.environ,
            MEBUKU_DATABASE_URL=url,
            MEBUKU_PSEUDONYM_KEY=KEY,
            MEBUKU_LOG_LEVEL="WARNING",
        )
        code = SERVER.format(port=port, workers=args.workers, app_dir=str(Path(__file__).parent))
        server = subprocess.Popen([sys.executable, "-c", code], env=env)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("API server did not start") from None
                time.sleep(0.2)
        from fares_api_bench import tree_cpu_s

        pg_pid = db.server.proc.pid if db.server and db.server.proc else None
        api0, db0 = tree_cpu_s(server.pid), tree_cpu_s(pg_pid) if pg_pid else 0.0
        lat, errors, served = asyncio.run(
            run_load(port, tokens, args.residents_online, args.seconds, args.think, args.warmup)
        )
        api_cpu = tree_cpu_s(server.pid) - api0
        db_cpu = (tree_cpu_s(pg_pid) if pg_pid else 0.0) - db0
        total = sum(len(v) for v in lat.values())
        print(
            f"\n{args.residents_online} residents online for {args.seconds:.0f} s (think"
            f" {args.think:.1f} s mean), {total / args.seconds:.0f} pages/s, loopback,"
            f" {args.workers} uvicorn worker(s)"
        )
        print(f"{'page':<26}{'pages':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        every = [x for v in lat.values() for x in v]
        for _p, label in PAGES:
            xs = lat[label]
            print(
                f"{label:<26}{len(xs):>7}{pct(xs, 0.5):>9.1f}{pct(xs, 0.95):>9.1f}"
                f"{pct(xs, 0.99):>9.1f}{max(xs, default=float('nan')):>9.1f}"
            )
        p95 = pct(every, 0.95)
        print(
            f"{'all pages':<26}{len(every):>7}{pct(every, 0.5):>9.1f}{p95:>9.1f}"
            f"{pct(every, 0.99):>9.1f}{max(every, default=float('nan')):>9.1f}"
        )
        print(
            f"CPU per page: API {api_cpu * 1000 / max(1, served):.1f} ms,"
            f" PostgreSQL {db_cpu * 1000 / max(1, served):.1f} ms ({served} pages)"
        )
        print(f"errors: {len(errors)} {errors[:3]}")
        print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        ok = p95 < 100 and not errors
        print(
            f"target: p95 < 100 ms over all signed-in pages, no errors -> "
            f"{'PASS' if ok else 'FAIL'}"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        db.close()


if __name__ == "__main__":
    main()
