"""Benchmark: a trial scorecard over 10,000,000 fiveg_radio samples (target < 2 s).

Creates its own database (on MEBUKU_BENCH_ADMIN_URL, else a private PostgreSQL started
here), generates the samples with INSERT ... SELECT generate_series (20 devices at 1 Hz
for 500,000 s, about 5.8 days, plus a 2-hour outage in the middle), refreshes the rollups,
then times the scorecard from the rollups (the API's ``source=rollup``: hourly
availability, 5-minute gaps) and, with --raw, the exact raw path (5-minute buckets) for
comparison. Prints a table.

    .venv/bin/python bench/fiveg_scorecard_bench.py [--samples 10000000] [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg

from core import migrator
from core.db import has_timescale
from core.embedded import ScratchDatabase
from core.settings import Settings
from fiveg import store
from fiveg.engine import trial_kpis
from fiveg.store import HIST_WIDTH, ROLLUP_WIDTH
from fiveg.trial import TrialDefinition

DEVICES = 20
T0 = datetime(2026, 10, 1, tzinfo=UTC)
ROLLUPS = ("fiveg_radio_5m", "fiveg_dl_hist_1h", "fiveg_ul_hist_1h", "fiveg_rtt_hist_1h")

GENERATE = """
INSERT INTO fiveg_radio (site_id, device_id, ts, rsrp_dbm, rsrq_db, sinr_db, dl_mbps, ul_mbps,
                         rtt_ms, jitter_ms, loss_pct, cell_id, pci, band, lat, lon)
SELECT 'bench-site', %(device)s, %(t0)s + make_interval(secs => s),
       -70 - 35 * random(), -6 - 10 * random(), 32 * random() - 2,
       exp(5.2 + 0.5 * (random() + random() + random() - 1.5)),
       exp(3.5 + 0.5 * (random() + random() + random() - 1.5)),
       exp(3.0 + 0.4 * (random() + random() + random() - 1.5)),
       0.5 + 5 * random(), random(),
       'cell-' || ((s / 600) %% 3), 100 + (s / 600) %% 3, 'n79',
       36.38 + 0.01 * random(), 139.07 + 0.01 * random()
FROM generate_series(0, %(seconds)s - 1) s
WHERE s NOT BETWEEN %(gap)s AND %(gap)s + 7199
"""


def load(url: str, samples: int) -> tuple[int, float, float]:
    per_device = samples // DEVICES
    seconds = per_device + 7200  # the 2-hour outage in the middle is skipped
    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for d in range(DEVICES):
            conn.execute(
                GENERATE,
                {"device": f"bench-{d:02d}", "t0": T0, "seconds": seconds, "gap": per_device // 2},
            )
            print(f"  loaded device {d + 1}/{DEVICES}", flush=True)
        conn.execute("ANALYZE fiveg_radio")
        n = conn.execute("SELECT count(*) FROM fiveg_radio").fetchone()[0]  # type: ignore[index]
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        ts = has_timescale(conn)
        for r in ROLLUPS:
            if ts:
                conn.execute(f"CALL refresh_continuous_aggregate('{r}', NULL, NULL)")
            else:
                conn.execute("SELECT mebuku.refresh_rollup(%s)", [r])
            conn.execute(f"ANALYZE {r}_mat" if not ts else "SELECT 1")
        return int(n), load_s, time.perf_counter() - t


def definition(seconds: int) -> TrialDefinition:
    return TrialDefinition.model_validate(
        {
            "trial_id": "bench-trial",
            "title": "benchmark",
            "theme": "transport",
            "period_start": T0.isoformat(),
            "period_end": (T0 + timedelta(seconds=seconds)).isoformat(),
            "devices": [{"device_id": f"bench-{d:02d}", "kind": "bus_modem"} for d in range(20)],
        }
    )


async def measure(url: str, source: str, runs: int) -> tuple[list[float], str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        t = await store.get_trial(conn, "bench-trial")
        assert t is not None
        times = []
        summary = ""
        for _ in range(runs):
            t0 = time.perf_counter()
            bucket = HIST_WIDTH if source == "rollup" else ROLLUP_WIDTH
            k = await trial_kpis(conn, t, bucket=bucket, source=source)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t0)
            v = k.overall.values
            summary = (
                f"n={k.overall.n:,} UL p5={v['ul_mbps_p5']:.2f} RTT p95={v['rtt_ms_p95']:.2f} "
                f"pass={k.scorecard.passed} gaps={len(k.scorecard.gaps)} "
                f"coverage={k.scorecard.data_coverage_pct:.2f}%"
            )
        return times, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--raw", action="store_true", help="also time the exact raw path once")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--profile", action="store_true", help="time each rollup query")
    args = ap.parse_args()
    db = ScratchDatabase(os.environ.get("MEBUKU_BENCH_ADMIN_URL"), "bench_fiveg")
    url = db.url
    try:
        migrator.migrate(url, Settings(database_url=url, _env_file=None))
        n, load_s, refresh_s = load(url, args.samples)
        seconds = args.samples // DEVICES + 7200
        asyncio.run(_register(url, definition(seconds)))
        rows = [("rollup", *asyncio.run(measure(url, "rollup", args.runs)))]
        if args.raw:
            rows.append(("raw", *asyncio.run(measure(url, "raw", 1))))
        if args.profile:
            profile(url, seconds)
        print()
        print(f"samples: {n:,}  load: {load_s:.1f} s  rollup refresh: {refresh_s:.1f} s")
        print(f"{'source':8} {'runs':>4} {'min s':>8} {'median s':>9} {'max s':>8}  result")
        for src, times, summary in rows:
            print(f"{src:8} {len(times):>4} {min(times):8.3f} {statistics.median(times):9.3f} "
                  f"{max(times):8.3f}  {summary}")  # fmt: skip
    finally:
        db.close(keep=args.keep)


def profile(url: str, seconds: int) -> None:
    """Time the rollup path's SQL reads one by one."""
    start, end = store.hour_span(T0, T0 + timedelta(seconds=seconds))
    p = {"devices": [f"bench-{d:02d}" for d in range(DEVICES)], "start": start, "end": end}

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            reads = [
                (f"fiveg_{m}_hist_1h", store._rollup_hist, store._tail_hist(c))
                for m, c in store._METRIC_COLUMN.items()
            ]
            reads.append(("fiveg_radio_5m", store._rollup_sums, store._TAIL_SUMS))
            for name, rollup_sql, tail_sql in reads:
                width = ROLLUP_WIDTH if name.endswith("5m") else HIST_WIDTH
                t = time.perf_counter()
                rows = await store._rollup_rows(
                    conn, name, rollup_sql, tail_sql, p | {"width": width}
                )
                print(f"  {name}: {len(rows):,} rows read in {time.perf_counter() - t:.3f} s")

    asyncio.run(go())


async def _register(url: str, d: TrialDefinition) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await store.save_trial(conn, d)


if __name__ == "__main__":
    main()
