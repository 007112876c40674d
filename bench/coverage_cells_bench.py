"""Benchmark: the council's coverage map on 50 m EPSG:6677 cells (projection in SQL) against
the earlier degree grid, on the same raw 5G samples.

Starts its own PostgreSQL, migrates, loads --devices x 1 Hz radio samples for --hours
(positions wandering around Maebashi), then runs, --runs times each, the panel's cell
query (grafana.fiveg_radio_cells + grafana.fiveg_cell_centre, as the dashboard does) and
the old degree-grid query over grafana.fiveg_radio, both over the whole range. Prints the
sample count, the cells found and p50/max milliseconds per query.

    .venv/bin/python bench/coverage_cells_bench.py [--devices 20] [--hours 6] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

import psycopg

from core import migrator
from core.db import create_database
from core.embedded import EmbeddedPostgres, free_port, server_dir
from core.settings import Settings

KEY = "bench-pseudonym-key-not-secret-0123456789"

CELLS = """
SELECT ll[1] AS latitude, ll[2] AS longitude, c.samples, c.rsrp
FROM (
    SELECT cx, cy, count(*) AS samples,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY rsrp_dbm) AS rsrp
    FROM grafana.fiveg_radio_cells WHERE ts > now() - %s * interval '1 hour'
    GROUP BY cx, cy
) c
CROSS JOIN LATERAL grafana.fiveg_cell_centre(c.cx, c.cy) ll
"""

DEGREES = """
SELECT (floor(lat / 0.00045) + 0.5) * 0.00045 AS latitude,
       (floor(lon / 0.00056) + 0.5) * 0.00056 AS longitude,
       count(*) AS samples, percentile_cont(0.5) WITHIN GROUP (ORDER BY rsrp_dbm) AS rsrp
FROM public.fiveg_radio WHERE ts > now() - %s * interval '1 hour' AND lat IS NOT NULL
GROUP BY 1, 2
"""

SEED = """
INSERT INTO fiveg_radio (site_id, device_id, ts, rsrp_dbm, dl_mbps, ul_mbps, rtt_ms, lat, lon)
SELECT 'site-' || (d %% 3), 'dev-' || d, now() - s * interval '1 second',
       -95 + 10 * sin(s / 300.0 + d), 200 + d, 40 + d, 12,
       36.39 + 0.02 * sin(s / 900.0 + d), 139.06 + 0.02 * cos(s / 700.0 + d)
FROM generate_series(0, %s - 1) d, generate_series(0, %s * 3600 - 1) s
"""


def timed(conn: psycopg.Connection, sql: str, hours: float, runs: int) -> tuple[int, list[float]]:
    """(rows returned, milliseconds per run)."""
    times, n = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        n = len(conn.execute(sql.encode(), [hours]).fetchall())
        times.append((time.perf_counter() - start) * 1000)
    return n, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    root = server_dir("mebuku-bench-cells-")
    pg = EmbeddedPostgres(root / "pg", free_port())
    try:
        pg.start()
        create_database(pg.url(), "bench")
        url = pg.url("bench")
        migrator.migrate(url, Settings(database_url=url, pseudonym_key=KEY, _env_file=None))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEED.encode(), [a.devices, int(a.hours)])
            conn.execute("VACUUM ANALYZE fiveg_radio")
            samples = conn.execute("SELECT count(*) FROM fiveg_radio").fetchone()
            rows = [
                ("50 m EPSG:6677 cells (panel)", *timed(conn, CELLS, a.hours, a.runs)),
                ("degree grid (before)", *timed(conn, DEGREES, a.hours, a.runs)),
            ]
        print(
            f"samples: {samples[0] if samples else 0:,} ({a.devices} devices x 1 Hz x {a.hours} h)"
        )
        print(f"{'query':<32} {'cells':>7} {'p50 ms':>9} {'max ms':>9}")
        for name, n, ms in rows:
            print(f"{name:<32} {n:>7} {statistics.median(ms):>9.0f} {max(ms):>9.0f}")
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
