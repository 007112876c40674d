"""Benchmark: settle a month of 1,000,000 MyTaku rides (target < 30 s).

Creates its own database (on MEBUKU_BENCH_ADMIN_URL, else a private PostgreSQL started
here), writes 1,000,000 ledger entries for one month across 12 taxi operators with
INSERT ... SELECT generate_series (plus 1,000 reversals), then times exactly what
``mebuku settle --month`` does: every operator's statement from one REPEATABLE READ
snapshot, reconciled to the ledger, written as CSV (UTF-8 BOM, CRLF) and JSON. Also times
the real CLI in a subprocess, then closing the month (`--close`: statements stored with
their SHA-256) and re-issuing the closed month from the stored bytes, which must equal the
open month's files byte for byte. Prints a table.

    .venv/bin/python bench/fares_settle_bench.py [--rides 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg

from core import migrator
from core.embedded import ScratchDatabase
from core.settings import Settings
from mobility.fares import settlement

MONTH = date(2026, 7, 1)
OPERATORS = 12
KEY = "bench-pseudonym-key-not-secret-0123456789"

GENERATE = """
INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,
                         amount_yen, ride_at, service_day, fiscal_year, policy_version)
SELECT %(period)s, 'taxi-' || (i %% %(ops)s), 'taxi', 'bench-' || i, 1 + i %% 30000,
       'mytaku', 350 + (i::bigint * 7919) %% 651, ts, (ts AT TIME ZONE 'Asia/Tokyo')::date, 2026,
       'mytaku-2022-04'
FROM generate_series(1, %(n)s) i,
     LATERAL (SELECT timestamptz '2026-07-01 07:00+09'
              + make_interval(days => i %% 31, secs => (i::bigint * 37) %% 43200) AS ts) t
"""
REVERSE = """
INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,
                         amount_yen, ride_at, service_day, fiscal_year, policy_version, reverses)
SELECT period, operator_id, source, record_id, resident_id, 'reversal', -amount_yen, ride_at,
       service_day, fiscal_year, policy_version, entry_id
FROM fare_ledger WHERE entry_id % 1000 = 0
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rides", type=int, default=1_000_000)
    args = ap.parse_args()
    db = ScratchDatabase(os.environ.get("MEBUKU_BENCH_ADMIN_URL"))
    url = db.url
    out_dir = Path(tempfile.mkdtemp(prefix="mebuku-settle-"))
    try:
        migrator.migrate(url, Settings(database_url=url, pseudonym_key=KEY, _env_file=None))
        t = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO fare_residents SELECT FROM generate_series(1, 30000)")
            conn.execute(GENERATE, {"period": MONTH, "ops": OPERATORS, "n": args.rides})
            conn.execute(REVERSE)
            conn.execute("VACUUM ANALYZE fare_ledger")
            n, total = conn.execute(
                "SELECT count(*), sum(amount_yen) FROM fare_ledger WHERE period = %s", [MONTH]
            ).fetchone()  # type: ignore[misc]
        load_s = time.perf_counter() - t

        t = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            statements = settlement.monthly_statements(conn, MONTH)
        query_s = time.perf_counter() - t
        t = time.perf_counter()
        for st in statements:
            stem = out_dir / f"statement-{st.operator_id}-2026-07"
            stem.with_suffix(".csv").write_bytes(settlement.to_csv(st))
            stem.with_suffix(".json").write_text(
                json.dumps(settlement.to_json(st), ensure_ascii=False, separators=(",", ":")),
                "utf-8",
            )
        write_s = time.perf_counter() - t
        lines = sum(s.totals.lines for s in statements)
        yen = sum(s.totals.total_yen for s in statements)
        assert (lines, yen) == (n, total), "statements do not reconcile with the ledger"

        env = dict(os.environ, MEBUKU_DATABASE_URL=url, MEBUKU_PSEUDONYM_KEY=KEY)
        cli = Path(sys.executable).parent / "mebuku"
        t = time.perf_counter()
        subprocess.run(
            [str(cli), "settle", "--month", "2026-07", "--out", str(out_dir / "cli")],
            env=env,
            check=True,
            capture_output=True,
        )
        cli_s = time.perf_counter() - t

        def timed_cli(*extra: str, folder: str) -> float:
            t = time.perf_counter()
            subprocess.run(
                [str(cli), "settle", "--month", "2026-07", "--out", str(out_dir / folder), *extra],
                env=env,
                check=True,
                capture_output=True,
            )
            return time.perf_counter() - t

        close_s = timed_cli("--close", "--by", "bench", folder="closed")
        reissue_s = timed_cli(folder="reissued")
        for f in (out_dir / "cli").iterdir():
            for folder in ("closed", "reissued"):
                assert (out_dir / folder / f.name).read_bytes() == f.read_bytes(), f.name

        print(
            f"\nsettlement of {lines:,} ledger lines ({args.rides:,} rides + reversals),"
            f" {len(statements)} operators, {yen:,} yen"
        )
        print(f"{'step':<44}{'seconds':>10}")
        for label, s in (
            ("generate ledger (not part of settlement)", load_s),
            ("read + reconcile (REPEATABLE READ)", query_s),
            ("write CSV (BOM, CRLF) + JSON", write_s),
            ("settle total in-process", query_s + write_s),
            ("`mebuku settle --month 2026-07` (process)", cli_s),
            ("`... --close` (process, stores with SHA-256)", close_s),
            ("re-issue of the closed month (process)", reissue_s),
        ):
            print(f"{label:<44}{s:>10.2f}")
        print(f"target: < 30 s -> {'PASS' if cli_s < 30 else 'FAIL'}")
        print("closed and re-issued statements are byte-identical to the open month's")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        db.close()


if __name__ == "__main__":
    main()
