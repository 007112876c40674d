"""Benchmark: reading the MyTaku aggregate view (pickups placed in 275 town polygons) over
--rides ledger lines. Starts its own PostgreSQL, migrates, loads the towns, inserts rides
with pickups spread over Maebashi, then times `SELECT * FROM opendata.mytaku_use` as the
export reads it. Prints a table.

    .venv/bin/python bench/opendata_views_bench.py [--rides 100000]
"""

from __future__ import annotations

import argparse
import shutil
import time

import psycopg

from core import migrator
from core.db import create_database
from core.embedded import EmbeddedPostgres, server_dir
from core.settings import Settings
from opendata.towns import load_towns, read_towns

KEY = "bench-pseudonym-key-not-secret-0123456789"
SEED_SQL = """
INSERT INTO fare_residents SELECT FROM generate_series(1, {residents});
INSERT INTO fare_eligibility_facts (resident_id, kind, value, recorded_by)
SELECT resident_id, 'birth_date',
       (date '1940-01-01' + (resident_id * 37 % 12000)::int)::text, 'bench'
FROM fare_residents;
INSERT INTO fare_taxi_rides (operator_id, record_id, vehicle_id, pickup_at, dropoff_at,
    pickup_lon, pickup_lat, dropoff_lon, dropoff_lat, meter_fare_yen, riders, policy_version)
SELECT 'taxi', 'r' || i, 'v', ts, ts + interval '15 min',
       139.02 + (i::bigint * 7919 % 1000) / 5000.0, 36.33 + (i::bigint * 104729 % 1000) / 6000.0,
       139.07, 36.38, 1500, 1, 'mytaku-2022-04'
FROM (SELECT i, timestamptz '2026-04-01' + (i % 365) * interval '1 day' AS ts
      FROM generate_series(1, {rides}) i) x;
INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind, amount_yen,
    ride_at, service_day, fiscal_year, policy_version)
SELECT date_trunc('month', pickup_at)::date, 'taxi', 'taxi', record_id,
       1 + (substr(record_id, 2)::int % {residents}), 'mytaku', 700, pickup_at,
       pickup_at::date, 2026, 'mytaku-2022-04'
FROM fare_taxi_rides;
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rides", type=int, default=100_000)
    ap.add_argument("--residents", type=int, default=5_000)
    args = ap.parse_args()
    root = server_dir("mebuku-bench-od-")
    pg = EmbeddedPostgres(root)
    try:
        pg.start()
        create_database(pg.url(), "bench")
        url = pg.url("bench")
        migrator.migrate(url, Settings(database_url=url, pseudonym_key=KEY, _env_file=None))
        with psycopg.connect(url) as conn:
            load_towns(conn, read_towns())
            sql = SEED_SQL.format(rides=int(args.rides), residents=int(args.residents))
            conn.execute(sql.encode())
        with psycopg.connect(url) as conn:
            conn.execute("ANALYZE")
            t0 = time.perf_counter()
            rows = conn.execute("SELECT * FROM opendata.mytaku_use").fetchall()
            secs = time.perf_counter() - t0
            placed = sum(int(r[3]) for r in rows if r[1] != "_outside")
        print(f"{'rides':>9} {'rows':>6} {'rides in towns':>14} {'seconds':>8}")
        print(f"{args.rides:>9} {len(rows):>6} {placed:>14} {secs:>8.2f}")
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
