"""Log-spaced histogram bins shared with the SQL rollups (fiveg/migrations/0002).

``bin_of`` equals SQL ``width_bucket(log(greatest(x, 0.001)), -2, 5, 280)``: 40 bins per
decade from 0.01 to 100000, bin 0 below 0.01, bin 281 at or above 100000. A percentile
read from bins is within one bin of the exact value; see :data:`RELATIVE_ERROR`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

LOW_EXP = -2.0
HIGH_EXP = 5.0
BINS = 280
PER_DECADE = BINS / (HIGH_EXP - LOW_EXP)
# Bound on |estimate - exact| / exact for values in [0.01, 100000).
RELATIVE_ERROR = 10 ** (1 / PER_DECADE) - 1
# Below 0.01 the bound is absolute.
ABSOLUTE_ERROR_LOW = 10**LOW_EXP


def bin_of(x: float) -> int:
    """The log-scale bin of a latency, so percentiles can be merged across rollup hours."""
    e = math.log10(max(x, 0.001))
    if e < LOW_EXP:
        return 0
    if e >= HIGH_EXP:
        return BINS + 1
    return int(BINS * (e - LOW_EXP) / (HIGH_EXP - LOW_EXP)) + 1


def bin_edges(k: int) -> tuple[float, float]:
    """The [low, high) range of bin ``k``, to interpolate a percentile inside it."""
    if k <= 0:
        return 0.0, 10**LOW_EXP
    if k > BINS:
        return 10**HIGH_EXP, 10**HIGH_EXP
    return 10 ** (LOW_EXP + (k - 1) / PER_DECADE), 10 ** (LOW_EXP + k / PER_DECADE)


def _order_stat(bins: list[tuple[int, int]], i: int) -> float:
    """Estimate of the i-th (0-based) smallest value: its bin, placed by rank."""
    seen = 0
    for k, c in bins:
        if i < seen + c:
            lo, hi = bin_edges(k)
            return lo + (hi - lo) * (i - seen + 0.5) / c
        seen += c
    raise IndexError(i)


def percentile(counts: Mapping[int, int], p: float) -> float | None:
    """percentile_cont(p) estimated from bin counts (same rank rule as the exact path)."""
    return percentiles(counts, [p])[0]


def percentiles(counts: Mapping[int, int], ps: list[float]) -> list[float | None]:
    """Several percentiles of one histogram (sorted once)."""
    bins = sorted((k, c) for k, c in counts.items() if c > 0)
    n = sum(c for _, c in bins)
    if n == 0:
        return [None] * len(ps)
    out: list[float | None] = []
    for p in ps:
        rank = p * (n - 1)
        lo = math.floor(rank)
        hi = math.ceil(rank)
        a = _order_stat(bins, lo)
        b = a if hi == lo else _order_stat(bins, hi)
        out.append(a + (rank - lo) * (b - a))
    return out


def share_at_most(counts: Mapping[int, int], bound: float) -> float | None:
    """Percentage of values <= bound; the bound's own bin is split linearly."""
    n = sum(counts.values())
    if n == 0:
        return None
    kb = bin_of(bound)
    below = sum(c for k, c in counts.items() if k < kb)
    lo, hi = bin_edges(kb)
    part = counts.get(kb, 0) * (1.0 if hi <= lo else min(1.0, (bound - lo) / (hi - lo)))
    return 100.0 * (below + part) / n


def merge(into: dict[int, int], counts: Mapping[int, int]) -> None:
    """Add ``counts`` into ``into``: hourly histograms merge by summing."""
    for k, c in counts.items():
        into[k] = into.get(k, 0) + c
