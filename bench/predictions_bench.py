"""Benchmark: arrival prediction accuracy (MBTA bins) and engine throughput.

Simulates all bundled-feed routes that serve Maebashi with realistic variability
(mobility/predictions/sim.py), trains the engine on --train-days, scores the timetable,
today's carry-forward and the engine on --test-days held-out days (other seeds), and
times the engine on telemetry-rate updates. Pure and in memory: no database.

    .venv/bin/python bench/predictions_bench.py [--train-days 14] [--test-days 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time

from mobility.predictions.evaluate import EvalConfig, evaluate
from mobility.predictions.report import evaluation_report
from mobility.predictions.sim import bundled_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-days", type=int, default=14)
    ap.add_argument("--test-days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lang", choices=("ja", "en"), default="en")
    a = ap.parse_args()
    began = time.perf_counter()
    cfg = EvalConfig(train_days=a.train_days, test_days=a.test_days, seed=a.seed)
    res = evaluate(bundled_network(), cfg, lambda m: print(f"... {m}", file=sys.stderr))
    for line in evaluation_report(res, a.lang):
        print(line)
    print(f"\n(seed {a.seed}; {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
