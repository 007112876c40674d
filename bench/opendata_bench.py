"""Benchmark: privacy protection of open-data tables at city scale (issue 16).

MyTaku residents by town (all 275 town blocks + outside) x age band (5), one table per
month, --months months, three consecutive releases with late records in between (the
history makes suppression sticky). Times the suppression (primary + complementary) and
then runs the attacker (LP bounds over every small suppressed cell, differencing, the
town population join) on the three releases of one month. Pure: no database. Prints a table.

    .venv/bin/python bench/opendata_bench.py [--months 12] [--seed 1] [--towns N] [--attack]
"""

from __future__ import annotations

import argparse
import random
import time

from opendata.privacy import TOTAL, CountTable, Previous, protect, remember
from opendata.towns import read_towns
from tests.support.attacker import attack

BANDS = ("under65", "65to74", "75to84", "85plus", "unknown")
K = 10


def month_cells(
    towns: list[str], population: dict[str, int], rng: random.Random
) -> dict[tuple[str, str], int]:
    """A skewed month: most town/band cells are small, a few are large; a town never has
    more users than residents (the attacker may rely on that)."""
    cells = {}
    for t in towns:
        room = population.get(t, 10**6) // 3  # later releases add late records
        for b in BANDS:
            v = min(int(rng.paretovariate(1.3)) - 1, 400, room)
            if v > 0:
                cells[(t, b)] = v
                room -= v
    return cells


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--towns", type=int, default=0, help="only the first N towns (0 = all)")
    ap.add_argument("--attack", action="store_true", help="also run the attacker on month 0")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    towns_data = read_towns()[: args.towns or None]
    towns = [t.key_code for t in towns_data] + ["_outside"]
    population = {t.key_code: t.population for t in towns_data}
    months = [month_cells(towns, population, rng) for _ in range(args.months)]
    history: dict[str, Previous] = {}
    rows = []
    published_m0, truth_m0 = [], []
    for release in range(3):
        t0 = time.perf_counter()
        cells_total = suppressed = primary = 0
        for m, cells in enumerate(months):
            rows_present = tuple(sorted({r for r, _ in cells}))
            table = CountTable(f"mytaku_use/{m:02d}", rows_present, BANDS, cells)
            small = [
                (t, c) for t in rows_present if population.get(t, K) < K for c in (*BANDS, TOTAL)
            ]
            p = protect(table, K, history, small)
            remember(history, p)
            cells_total += len(p.values)
            suppressed += len(p.suppressed)
            primary += len(p.primary)
            if m == 0:
                published_m0.append({c: p.published(c) for c in p.values})
                truth_m0.append(dict(p.values))
        secs = time.perf_counter() - t0
        rows.append((release + 1, args.months, cells_total, primary, suppressed, secs))
        for cells in months:  # late records before the next release
            for cell in rng.sample(sorted(cells), max(1, len(cells) // 10)):
                used = sum(v for (t, _), v in cells.items() if t == cell[0])
                add = rng.choice((1, 2, 5, 12))
                if used + add <= population.get(cell[0], 10**6):
                    cells[cell] += add
    found: list[object] = []
    attack_s = 0.0
    if args.attack:
        t0 = time.perf_counter()
        keys = set().union(*published_m0)
        pubs = [{c: p.get(c, 0) for c in keys} for p in published_m0]
        truths = [{c: t.get(c, 0) for c in keys} for t in truth_m0]
        found = list(attack(pubs, truths, K, population))
        attack_s = time.perf_counter() - t0
    print(f"towns: {len(towns)} (with outside), bands: {len(BANDS)}, k = {K}")
    head = ("release", "months", "cells", "primary", "suppressed", "seconds")
    print("{:>7} {:>6} {:>7} {:>7} {:>10} {:>8}".format(*head))
    for r in rows:
        print(f"{r[0]:>7} {r[1]:>6} {r[2]:>7} {r[3]:>7} {r[4]:>10} {r[5]:>8.2f}")
    if args.attack:
        print(f"attacker, month 0, 3 releases: {len(found)} cells recovered, {attack_s:.1f} s")


if __name__ == "__main__":
    main()
