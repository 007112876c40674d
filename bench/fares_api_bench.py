"""Benchmark: GET /v1/me/subsidy and POST /v1/fares/quote at 500 requests/s (p99 < 50 ms).

Starts its own PostgreSQL (or uses MEBUKU_BENCH_ADMIN_URL), migrates, imports the Gunma Chuo
GTFS-JP feed (bus fares), seeds residents with eligibility facts, linked cards and a
fiscal year of ledger entries, then serves the real API as ``mebuku api --workers N``
does (``api.cli.serving_app`` under uvicorn with ``api.cli.UVICORN_OPTIONS``: mebuku's
logging with the masked access log at INFO, its lines discarded) in its own process on
loopback. An open-loop async load generator (raw keep-alive
HTTP/1.1 over asyncio streams) sends requests on a fixed schedule; latency is measured
from each request's scheduled time, so a stalled server cannot hide queueing (no
coordinated omission). Bounded: --seconds per
endpoint at --rate, with a hard time limit. Prints a table.

    .venv/bin/python bench/fares_api_bench.py [--rate 500] [--seconds 10] [--residents 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from core import migrator
from core.embedded import ScratchDatabase, free_port
from core.resources import default_gtfs
from core.sessions import _digest
from core.settings import Settings
from mobility.fares import cards
from mobility.gtfs.importer import import_feed

KEY = "bench-pseudonym-key-not-secret-0123456789"
FEED = default_gtfs()
BUS = {
    "kind": "bus",
    "operator_id": "gunmachuo",
    "route_id": "伊勢崎　女子大線_A",
    "origin_stop_id": "g063_01",
    "destination_stop_id": "g133_01",
}
SERVER = (
    "import uvicorn; from api.cli import UVICORN_OPTIONS;"
    " uvicorn.run('fares_api_bench:make_app', factory=True, app_dir={app_dir!r},"
    " host='127.0.0.1', port={port}, workers={workers}, **UVICORN_OPTIONS)"
)  # as `mebuku api --workers N` runs it


def make_app() -> object:
    """The API as ``mebuku api`` serves it: settings from the environment, mebuku's logging
    with the masked access log (``MEBUKU_LOG_LEVEL=INFO``: one line per request, to the
    server's stderr, which the benchmark discards)."""
    from api.cli import serving_app

    return serving_app(Settings(_env_file=None))


def seed(url: str, residents: int) -> list[str]:
    """Residents (half eligible for MyTaku), cards, 20 ledger entries each; session tokens."""
    import secrets

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
        cur.executemany(
            "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, %s, %s)",
            [(cards.idm_hash(KEY.encode(), f"0E0E{r:012X}"), f"{r % 65536:04X}", r) for r in rids],
        )
        cur.executemany(
            "INSERT INTO auth_sessions (token_hash, resident_id, expires_at) VALUES (%s, %s, %s)",
            [(_digest(t), r, now + timedelta(hours=2)) for t, r in zip(tokens, rids, strict=True)],
        )
        cur.execute(
            "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,"
            " amount_yen, ride_at, service_day, fiscal_year, policy_version)"
            " SELECT date_trunc('month', d)::date, 'taxi-' || (r %% 7), 'taxi',"
            " 'b-' || r || '-' || k,"
            " r, 'mytaku', 500 + k, d, d::date, 2026, 'mytaku-2022-04'"
            " FROM generate_series(1, %s) r, generate_series(1, 20) k,"
            " LATERAL (SELECT timestamptz '2026-04-02 10:00+09'"
            " + make_interval(days => k * 7) d) x",
            [residents],
        )
        cur.execute("ANALYZE")
    return tokens


class Conn:
    """A keep-alive HTTP/1.1 connection over asyncio streams (lighter than an HTTP library,
    so the load generator does not eat the CPU the server needs)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


PAIRS: list[dict[str, str]] = []


def build(kind: str, i: int, token: str, port: int) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n"
    if kind == "subsidy":
        return f"GET /v1/me/subsidy HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode()
    if i % 2:
        body = json.dumps(
            PAIRS[(i // 2) % len(PAIRS)] if PAIRS else BUS, ensure_ascii=False
        ).encode()
    else:
        body = json.dumps(
            {"kind": "taxi", "meter_fare_yen": 1200 + i % 3000, "registrants": 1 + i % 3}
        ).encode()
    head = (
        f"POST /v1/fares/quote HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(
    port: int,
    tokens: list[str],
    kind: str,
    rate: float,
    seconds: float,
    conns: int,
    warmup: float,
) -> tuple[list[float], int, int]:
    """Open loop: request i is due at t0 + i/rate; its latency counts from then. The first
    ``warmup`` seconds at the same rate are not counted (server pools and caches fill)."""
    skip = int(rate * warmup)
    n = int(rate * seconds) + skip
    lat: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    pool = [Conn(*await asyncio.open_connection("127.0.0.1", port)) for _ in range(conns)]

    async def worker(c: Conn) -> None:
        nonlocal errors
        while (job := await queue.get()) is not None:
            i, due = job
            status = await c.request(build(kind, i, tokens[i % len(tokens)], port))
            if i < skip:
                continue
            if status != 200:
                errors += 1
            lat.append((time.perf_counter() - due) * 1000)

    for i in range(50):  # warm-up: pool connections, caches
        await pool[i % conns].request(build(kind, i, tokens[i], port))
    workers = [asyncio.create_task(worker(c)) for c in pool]
    t0 = time.perf_counter() + 0.1
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in pool:
        queue.put_nowait(None)
    _done, pending = await asyncio.wait(workers, timeout=30)
    for t in pending:
        t.cancel()
    for c in pool:
        c.writer.close()
    return lat, errors, n - skip - len(lat)


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used by a process and its live descendants (/proc)."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(d.name)
        children.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--residents", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--warmup", type=float, default=3, help="seconds at rate, not counted")
    ap.add_argument("--pairs", type=int, default=300, help="distinct stop pairs for bus quotes")
    ap.add_argument("--only", choices=["subsidy", "quote"], help="run one endpoint only")
    ap.add_argument(
        "--log-level",
        default="INFO",
        help="the server's MEBUKU_LOG_LEVEL (INFO as in production: access log on)",
    )
    ap.add_argument(
        "--profile",
        metavar="PATH",
        help="sample the API (one worker) with py-spy into PATH (collapsed stacks)",
    )
    args = ap.parse_args()
    db = ScratchDatabase(os.environ.get("MEBUKU_BENCH_ADMIN_URL"))
    stack = contextlib.ExitStack()
    url, pg = db.url, db.server
    server = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        migrator.migrate(url, Settings(database_url=url, pseudonym_key=KEY, _env_file=None))
        import_feed(url, FEED)
        tokens = seed(url, args.residents)
        with psycopg.connect(url) as conn:  # real stop pairs with a fare rule, for bus quotes
            PAIRS.extend(
                dict(BUS, route_id=r, origin_stop_id=o, destination_stop_id=d)
                for r, o, d in conn.execute(
                    "SELECT route_id, origin_id, destination_id FROM gtfs_fare_rules"
                    " WHERE feed_version = gtfs_current_version() AND origin_id IS NOT NULL"
                    " ORDER BY md5(fare_id || origin_id || destination_id) LIMIT %s",
                    [args.pairs],
                )
            )
        port = free_port()
        env = dict(
            os.environ,
            MEBUKU_DATABASE_URL=url,
            MEBUKU_PSEUDONYM_KEY=KEY,
            MEBUKU_LOG_LEVEL=args.log_level,
        )
        if args.profile:
            args.workers = 1  # uvicorn then serves in the process py-spy samples
            if not Path(sys.executable).with_name("py-spy").exists():
                sys.exit("--profile needs py-spy in this environment: pip install py-spy")
        code = SERVER.format(port=port, workers=args.workers, app_dir=str(Path(__file__).parent))
        # the server's stderr carries the access log: kept in a file, shown if it fails to start
        server_log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "server.log"
        fd = os.open(server_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        server = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=fd)
        os.close(fd)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    sys.stderr.write(server_log.read_text(errors="replace")[-4000:])
                    raise RuntimeError("API server did not start") from None
                time.sleep(0.2)
        if args.profile:
            spy = subprocess.Popen(
                [
                    *(str(Path(sys.executable).with_name("py-spy")), "record"),
                    *("--pid", str(server.pid), "--format", "raw", "--rate", "250"),
                    *("--nonblocking", "-o", args.profile),
                ],
                stdout=subprocess.DEVNULL,
            )
        print(
            f"\n{args.rate:.0f} req/s for {args.seconds:.0f} s per endpoint,"
            f" {args.residents} residents, loopback, {args.workers} uvicorn worker(s)"
        )
        print(
            f"{'endpoint':<24}{'sent':>7}{'errors':>7}{'lost':>6}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'p99 ms':>9}{'max ms':>9}"
        )
        ok = True
        cpu_rows: list[tuple[str, float, float, float]] = []
        endpoints = [("subsidy", "GET /v1/me/subsidy"), ("quote", "POST /v1/fares/quote")]
        for kind, label in [e for e in endpoints if args.only in (None, e[0])]:
            api0 = tree_cpu_s(server.pid)
            db0 = tree_cpu_s(pg.proc.pid) if pg and pg.proc else 0.0
            gen0 = time.process_time()
            lat, errors, lost = asyncio.run(
                load(port, tokens, kind, args.rate, args.seconds, args.connections, args.warmup)
            )
            total = len(lat) + lost + int(args.rate * args.warmup)
            api_ms = (tree_cpu_s(server.pid) - api0) * 1000 / total
            db_ms = ((tree_cpu_s(pg.proc.pid) if pg and pg.proc else 0.0) - db0) * 1000 / total
            gen_ms = (time.process_time() - gen0) * 1000 / total
            cpu_rows.append((label, api_ms, db_ms, gen_ms))
            p99 = pct(lat, 0.99)
            ok = ok and p99 < 50 and errors == 0 and lost == 0
            print(
                f"{label:<24}{len(lat) + lost:>7}{errors:>7}{lost:>6}{pct(lat, 0.5):>9.1f}"
                f"{pct(lat, 0.95):>9.1f}{p99:>9.1f}{max(lat):>9.1f}"
            )
        print(f"\nCPU ms per request{'':<6}{'API':>9}{'PostgreSQL':>12}{'load gen':>10}")
        for row in cpu_rows:
            print(f"{row[0]:<24}{row[1]:>9.2f}{row[2]:>12.2f}{row[3]:>10.2f}")
        print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"target: p99 < 50 ms, no errors -> {'PASS' if ok else 'FAIL'}")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        if server is not None:
            server.terminate()
            server.wait(10)
        db.close()
        stack.close()


if __name__ == "__main__":
    main()
