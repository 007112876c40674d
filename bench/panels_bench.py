"""Benchmark: every Grafana SQL panel against a realistic volume (issue 14, item 4).

Targets: p95 <= 300 ms for the dashboard's default time range, <= 1 s for 7 days.

For each storage path (plain PostgreSQL, and TimescaleDB when its binaries are found:
--ts-bindir, else MEBUKU_TEST_TIMESCALE_PGBINDIR) it starts a private server, migrates a
fresh database, runs the panel-test seeds (GTFS feed, trials, fares; tests/support/seed/),
then generates the fleet server-side (INSERT ... SELECT generate_series, one day at a time):
--buses buses at 1 Hz (bus_telemetry, a takeover / obstacle stop / remote intervention
every ~20 minutes in bus_events, an arrival and a departure every ~90 s in
vehicle_events on the feed's routes and stops) and --devices 5G devices at 1 Hz
(fiveg_radio; every 60 s a heartbeat in fiveg_device_status and, for one device in
five, two SenML records in fiveg_sensor), for --days days ending now, with commit lags of
50-500 ms and a few rejects. The devices join the registered trials round-robin. It then
refreshes the rollups (as the continuous-aggregate policy or `mebuku db maintain` would),
VACUUM ANALYZEs, and runs every panel query of the built dashboards, expanded exactly as Grafana
would (tests/support/grafana_macros.py), for the default range and for 7 days, --runs
times each. Prints p50/p95 per panel and path; FAIL marks a target missed.

    .venv/bin/python bench/panels_bench.py --days 1 --buses 10 --devices 20 --runs 5
    .venv/bin/python bench/panels_bench.py            # 60 buses, 200 devices, 7 days

A week takes one to two hours to load and refresh per path, so: --keep leaves the server
folder (its path is printed), and --reuse FOLDER --path plain|timescale starts that
server again, applies the migrations that are new since (as an upgrade would), generates
what is missing up to now, refreshes the rollups (the policy's incremental refresh) and
times the panels again. --compress-after-days 1 (TimescaleDB) compresses the chunks older
than a day while loading, so a week on both paths fits the disk.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.grafana.build import iter_panels
from core import migrator
from core.embedded import EmbeddedPostgres, find_pg_bindir, server_dir
from core.grafana import SQL_DATASOURCE
from core.roles import role_url
from core.settings import Settings
from tests.grafana.panel_runner import (
    MAX_DATA_POINTS,
    MIN_INTERVAL,
    dashboards,
    panel_queries,
    resolve_variables,
    seed_all,
    time_range,
)
from tests.support.fleet import Volume, load, register_devices
from tests.support.grafana_macros import QueryContext, expand, panel_interval, parse_interval

SQL_UID = SQL_DATASOURCE["uid"]
ZERO = timedelta(0)
TARGET_DEFAULT_S = 0.300
TARGET_WEEK_S = 1.0
WEEK = timedelta(days=7)


@dataclass
class Timing:
    """One panel query's run times on one path and range."""

    panel: str
    times: list[float] = field(default_factory=list)
    rows: int = 0
    error: str = ""

    def pct(self, q: float) -> float:
        """The q-quantile of the run times (nearest rank), in seconds; inf when it failed."""
        if self.error or not self.times:
            return float("inf")
        s = sorted(self.times)
        return s[max(0, math.ceil(q * len(s)) - 1)]


def refresh_rollups(url: str, timescale: bool, rollups: bool = True) -> float:
    """Bring every rollup up to date, as the policy (TimescaleDB) or `mebuku db maintain`
    (plain PostgreSQL) would (unless ``rollups`` is false: the panels then read what the
    last refresh left, plus the live tail since), and the EBPM panels' trial summaries;
    then VACUUM ANALYZE. Returns seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        # Finest first: a rollup of a rollup reads the one below it (core/timeseries.py).
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM mebuku.rollups ORDER BY bucket_width, name")
            if rollups
        ]
        for name in names:
            if timescale:
                conn.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, now())")
            else:
                conn.execute("SELECT mebuku.refresh_rollup(%s)", [name])
        # The EBPM panels' per-trial summaries, as maintain and the TimescaleDB job do
        # after the refresh (core/roles/migrations/0440): the first run builds them.
        summarizing = time.perf_counter()
        conn.execute("SELECT mebuku.ebpm_fiveg_summarize()")
        print(f"    trial summaries built in {time.perf_counter() - summarizing:.1f} s", flush=True)
        # What autovacuum does after a bulk load: statistics, and BRIN ranges summarized
        # (an unsummarized range always matches, so the live tail would scan everything).
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def contexts(
    conn: psycopg.Connection, now: datetime, timescale: bool, span: timedelta | None
) -> dict[str, QueryContext]:
    """Per dashboard: the query context for its default range (span None) or the last span."""
    out = {}
    for d in dashboards():
        start, end = time_range(d, now) if span is None else (now - span, now)
        interval = panel_interval(start, end, MAX_DATA_POINTS, MIN_INTERVAL)
        base = QueryContext(start, end, interval, timescale)
        out[d["uid"]] = QueryContext(
            start, end, interval, timescale, resolve_variables(conn, d, base)
        )
    return out


@dataclass(frozen=True)
class BenchQuery:
    """A panel target or a template variable query of a built dashboard."""

    id: str
    dashboard: str
    sql: str
    min_interval: timedelta


def bench_queries() -> list[BenchQuery]:
    """Every SQL variable and panel query, with the panel's minimum interval (Grafana's
    ``interval``; ``$__interval`` is never below it)."""
    out = []
    by_id = {}
    for d in dashboards():
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query" and v.get("datasource", {}).get("uid") == SQL_UID:
                out.append(BenchQuery(f"{d['uid']}/${v['name']}", d["uid"], v["query"], ZERO))
        for p in iter_panels(d):
            by_id[(d["uid"], p.get("title", ""))] = p
    for q in panel_queries():
        p = by_id[(q.dashboard, q.panel)]
        minimum = timedelta(seconds=parse_interval(p["interval"])) if "interval" in p else ZERO
        out.append(BenchQuery(q.id, q.dashboard, q.sql, minimum))
    return out


def _context(ctx: QueryContext, minimum: timedelta) -> QueryContext:
    if ctx.interval >= minimum:
        return ctx
    return QueryContext(ctx.time_from, ctx.time_to, minimum, ctx.timescaledb, ctx.variables)


def time_panels(
    url: str, ctxs: dict[str, QueryContext], runs: int, timeout_s: float, only: str = ""
) -> list[Timing]:
    """Run each query whose id contains ``only`` ``runs`` times (one slower than 10 s runs
    once)."""
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = '{int(timeout_s * 1000)}ms'")
        conn.execute("SET default_transaction_read_only = on")
        for q in bench_queries():
            if only not in q.id:
                continue
            sql = expand(q.sql, _context(ctxs[q.dashboard], q.min_interval)).encode()
            t = Timing(q.id)
            for _ in range(runs):
                started = time.perf_counter()
                try:
                    t.rows = len(conn.execute(sql).fetchall())
                except psycopg.errors.QueryCanceled:
                    t.error = f"> {timeout_s:g} s"
                    break
                except psycopg.Error as e:
                    t.error = str(e).splitlines()[0][:60]
                    break
                t.times.append(time.perf_counter() - started)
                if t.times[-1] > 10 * TARGET_WEEK_S:
                    break  # hopeless: do not spend the machine on repeating it
            out.append(t)
    return out


def start_server(
    bindir: Path, timescale: bool, reuse: Path | None = None
) -> tuple[EmbeddedPostgres, Path]:
    """A private server with this PostgreSQL (TimescaleDB preloaded or not), in a new folder
    or in ``reuse``, a folder an earlier ``--keep`` run left (its data are kept)."""
    root = reuse or server_dir("mebuku-panels-bench-")
    server = EmbeddedPostgres(root, bindir=bindir, preload_timescale=timescale)
    server.start()
    print(f"    server folder: {root}", flush=True)
    return server, root


def compressor(days: int | None) -> Callable[[psycopg.Connection, str], None] | None:
    """On TimescaleDB with ``--compress-after-days``: after each loaded day, compress the
    chunks older than that of the two big tables (1-day chunks), as the compression policy
    would have by then (a week of raw rows on both paths does not fit this machine's disk
    otherwise)."""
    if days is None:
        return None

    def compress(conn: psycopg.Connection, table: str) -> None:
        if table not in ("bus_telemetry", "fiveg_radio"):
            return  # the small ones: the loader still updates them (off-route events)
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks(%s::regclass,"
            " older_than => now() - make_interval(days => %s)) c"
            " WHERE EXISTS (SELECT 1 FROM timescaledb_information.hypertables h"
            "  WHERE h.hypertable_name = %s AND h.compression_enabled)",
            [table, days, table],
        )

    return compress


def top_up(
    url: str, vol: Volume, after_day: Callable[[psycopg.Connection, str], None] | None = None
) -> dict[str, tuple[int, float]]:
    """Generate the fleet from the newest loaded second to now, until less than a minute is
    missing: a long load (or a reused folder) would otherwise leave the last hour(s) empty
    and the default-range panels would time an empty tail."""
    out: dict[str, tuple[int, float]] = {}
    while True:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT max(ts) FROM fiveg_radio").fetchone()
        last = row[0] if row else None
        now = datetime.now(UTC).replace(microsecond=0)
        if last is None or (now - last).total_seconds() < 60:
            return out
        start = last.replace(microsecond=0) + timedelta(seconds=1)
        gap = int((now - start).total_seconds())
        print(f"    topping up {gap:,} s", flush=True)
        for table, (rows, secs) in load(url, vol, start, gap, after_day).items():
            before = out.get(table, (0, 0.0))
            out[table] = (before[0] + rows, before[1] + secs)


def run_path(name: str, bindir: Path, timescale: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Load and time one storage path; returns its figures for the report."""
    print(f"== {name} ({bindir})", flush=True)
    reuse = Path(args.reuse) if args.reuse else None
    server, root = start_server(bindir, timescale, reuse)
    try:
        url = server.url()
        compress = compressor(args.compress_after_days) if timescale else None
        settings = Settings(
            database_url=url,
            timescale="on" if timescale else "off",
            _env_file=None,
            **(
                {"compress_after_days": args.compress_after_days}
                if timescale and args.compress_after_days is not None
                else {}
            ),
        )
        started = time.perf_counter()
        migrator.migrate(url, settings)  # on a reused folder: only what is new since
        print(f"    migrated in {time.perf_counter() - started:.1f} s", flush=True)
        vol = Volume(args.buses, args.devices, args.days)
        loaded: dict[str, tuple[int, float]] = {}
        if reuse is None:
            seed_all(url)
            now = datetime.now(UTC).replace(microsecond=0)
            seconds = int(args.days * 86400)
            start = now - timedelta(seconds=seconds)
            register_devices(url, args.devices, start, now + timedelta(days=1))
            loaded = load(url, vol, start, seconds, compress)
        for table, (rows, secs) in top_up(url, vol, compress).items():
            before = loaded.get(table, (0, 0.0))
            loaded[table] = (before[0] + rows, before[1] + secs)
        for table, (rows, secs) in loaded.items():
            print(f"    {table}: {rows:,} rows in {secs:.1f} s", flush=True)
        refresh_s = refresh_rollups(url, timescale, not args.no_refresh)
        print(f"    rollups refreshed in {refresh_s:.1f} s", flush=True)
        now = datetime.now(UTC)
        with psycopg.connect(url, autocommit=True) as conn:
            default_ctx = contexts(conn, now, timescale, None)
            week_ctx = contexts(conn, now, timescale, WEEK)
        # As Grafana's data source: logged in as mebuku_grafana, with its role settings.
        grafana = role_url(url, "grafana")
        default = time_panels(grafana, default_ctx, args.runs, args.timeout, args.only)
        week = time_panels(grafana, week_ctx, args.runs, args.timeout, args.only)
        return {
            "name": name,
            "loaded": loaded,
            "refresh_s": refresh_s,
            "default": default,
            "week": week,
        }
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _cells(t: Timing, target: float) -> tuple[str, str, bool]:
    """p50 and p95 in ms (or the error) and whether p95 meets the target."""
    if t.error:
        return t.error, "", False
    return f"{t.pct(0.5) * 1000:.0f}", f"{t.pct(0.95) * 1000:.0f}", t.pct(0.95) <= target


def report(result: dict[str, Any]) -> int:
    """Print one path's table (milliseconds); returns how many targets were missed."""
    loaded = result["loaded"]
    total = sum(r for r, _ in loaded.values())
    tables = ", ".join(f"{k} {r:,}" for k, (r, _) in loaded.items())
    load_s = sum(s for _, s in loaded.values())
    print(f"\n### {result['name']}: {total:,} rows loaded ({tables}); "
          f"load {load_s:.0f} s, rollup refresh {result['refresh_s']:.0f} s")  # fmt: skip
    print("\n| panel | default p50 ms | p95 ms | 7 days p50 ms | p95 ms | |")
    print("|---|---:|---:|---:|---:|---|")
    missed = 0
    for d, w in zip(result["default"], result["week"], strict=True):
        dp50, dp95, dok = _cells(d, TARGET_DEFAULT_S)
        wp50, wp95, wok = _cells(w, TARGET_WEEK_S)
        flag = "" if dok and wok else "FAIL"
        missed += (not dok) + (not wok)
        print(f"| {d.panel} | {dp50} | {dp95} | {wp50} | {wp95} | {flag} |")
    print(f"\n{missed} target(s) missed (p95 <= {TARGET_DEFAULT_S * 1000:.0f} ms default range, "
          f"<= {TARGET_WEEK_S * 1000:.0f} ms for 7 days)")  # fmt: skip
    return missed


def paths(args: argparse.Namespace) -> list[tuple[str, Path, bool]]:
    """The storage paths to measure: plain PostgreSQL, then TimescaleDB when found."""
    out: list[tuple[str, Path, bool]] = []
    if args.path in ("both", "plain"):
        out.append(("plain PostgreSQL", find_pg_bindir(None), False))
    ts = args.ts_bindir or os.environ.get("MEBUKU_TEST_TIMESCALE_PGBINDIR")
    if args.path in ("both", "timescale"):
        if ts and (Path(ts) / "postgres").exists():
            out.append(("TimescaleDB", Path(ts), True))
        else:
            print("TimescaleDB binaries not found (--ts-bindir): that path is skipped")
    return out


def main() -> int:
    """Run the benchmark; exit 1 when a target is missed."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--buses", type=int, default=60)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=30, help="seconds per query")
    ap.add_argument("--path", choices=("both", "plain", "timescale"), default="both")
    ap.add_argument("--ts-bindir", help="TimescaleDB-enabled PostgreSQL bin folder")
    ap.add_argument("--only", default="", help="time only the queries whose id contains this")
    ap.add_argument(
        "--compress-after-days",
        type=int,
        help="TimescaleDB: compress chunks older than this while loading, and set the policy "
        "to it (default: MEBUKU_COMPRESS_AFTER_DAYS's default, 7, and no compression)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the server folders")
    ap.add_argument(
        "--no-refresh",
        action="store_true",
        help="do not refresh the rollups first (with --reuse: time the panels as they are "
        "between two `mebuku db maintain` runs, the tail since the last one read raw)",
    )
    ap.add_argument(
        "--reuse",
        help="a server folder an earlier --keep run printed: migrate it, generate only what "
        "is missing up to now, refresh and time (one --path at a time)",
    )
    args = ap.parse_args()
    if args.reuse and args.path == "both":
        ap.error("--reuse needs --path plain or --path timescale")
    if args.reuse:
        args.keep = True  # never delete a folder this run did not create
    # Stop cleanly on SIGTERM too (background jobs ignore SIGINT): servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"{args.buses} buses and {args.devices} 5G devices at 1 Hz for {args.days:g} days, "
          f"{args.runs} runs per panel and range")  # fmt: skip
    results = [run_path(n, b, ts, args) for n, b, ts in paths(args)]
    missed = sum(report(r) for r in results)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
