"""KPI math on plain values: samples in, numbers out (no I/O).

Percentiles follow PostgreSQL's ``percentile_cont`` (linear interpolation between the
order statistics at rank ``p * (n - 1)``), so the SQL raw path and this module give the
same answer on the same samples. Definitions: docs/fiveg-kpis.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from fiveg.targets import Target

# time_bucket's origin for sub-month widths (TimescaleDB and core's plain-PostgreSQL twin).
BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)

# Radio quality bands (domain.md section 8): lower bound of each band, best first.
BANDS: dict[str, tuple[tuple[str, float], ...]] = {
    "rsrp_dbm": (("excellent", -80.0), ("good", -90.0), ("fair", -100.0), ("poor", -math.inf)),
    "rsrq_db": (("excellent", -10.0), ("good", -15.0), ("fair", -20.0), ("poor", -math.inf)),
    "sinr_db": (("excellent", 20.0), ("good", 13.0), ("fair", 0.0), ("poor", -math.inf)),
}
BAND_NAMES = ("excellent", "good", "fair", "poor")


@dataclass(frozen=True)
class Sample:
    """One fiveg_radio row (only the columns KPIs use)."""

    device_id: str
    ts: datetime
    dl_mbps: float | None = None
    ul_mbps: float | None = None
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    cell_id: str | None = None


@dataclass
class Stats:
    """KPI values (by catalogue name) and band counts of one set of samples."""

    n: int
    values: dict[str, float | None] = field(default_factory=dict)
    bands: dict[str, dict[str, int]] = field(default_factory=dict)


def percentile_cont(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation at rank p * (n - 1), exactly as PostgreSQL's percentile_cont,
    so a KPI computed here and one computed in SQL agree."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"percentile must be in [0, 1], got {p}")
    if not values:
        return None
    xs = sorted(values)
    rank = p * (len(xs) - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return xs[lo] + (rank - lo) * (xs[hi] - xs[lo])


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None without values (not zero, which would read as a measurement)."""
    return math.fsum(values) / len(values) if values else None


def band_of(metric: str, value: float) -> str:
    """The named quality band a value falls in (e.g. RSRP good/fair/poor)."""
    for name, lower in BANDS[metric]:
        if value >= lower:
            return name
    return "poor"


def band_counts(metric: str, values: Iterable[float]) -> dict[str, int]:
    """How many values fall in each band, every band present even when empty."""
    counts = dict.fromkeys(BAND_NAMES, 0)
    for v in values:
        counts[band_of(metric, v)] += 1
    return counts


def bucket_start(ts: datetime, width: timedelta) -> datetime:
    """time_bucket(width, ts) for widths under a month."""
    steps = (ts - BUCKET_ORIGIN) // width
    return BUCKET_ORIGIN + steps * width


def bucket_range(start: datetime, end: datetime, width: timedelta) -> list[datetime]:
    """Bucket starts covering [start, end)."""
    out: list[datetime] = []
    b = bucket_start(start, width)
    while b < end:
        out.append(b)
        b += width
    return out


@dataclass(frozen=True)
class Gap:
    """A stretch of the period without data, shown so a verdict is not read as covering it."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """The gap's length in seconds."""
        return (self.end - self.start).total_seconds()


def find_gaps(
    buckets_with_data: Iterable[datetime], start: datetime, end: datetime, width: timedelta
) -> list[Gap]:
    """Runs of buckets in [start, end) without a sample, merged into intervals."""
    have = set(buckets_with_data)
    gaps: list[Gap] = []
    run: datetime | None = None
    for b in bucket_range(start, end, width):
        if b in have:
            if run is not None:
                gaps.append(Gap(max(run, start), b))
                run = None
        elif run is None:
            run = b
    if run is not None:
        gaps.append(Gap(max(run, start), end))
    return gaps


def handovers(samples: Iterable[Sample]) -> int:
    """Cell changes: consecutive samples of one device (by time) with different cell ids."""
    by_device: dict[str, list[Sample]] = {}
    for s in samples:
        if s.cell_id is not None:
            by_device.setdefault(s.device_id, []).append(s)
    changes = 0
    for rows in by_device.values():
        rows.sort(key=lambda s: s.ts)
        changes += sum(1 for a, b in itertools.pairwise(rows) if a.cell_id != b.cell_id)
    return changes


def device_hours(active_device_buckets: int, width: timedelta) -> float:
    """Observed device time: (device, bucket) pairs with samples times the bucket width."""
    return active_device_buckets * width.total_seconds() / 3600.0


@dataclass(frozen=True)
class TargetResult:
    """One target's measured value, verdict and per-bucket availability."""

    target: Target
    measured: float | None
    passed: bool
    availability_pct: float | None


# Below this share of the measured period with data, a verdict would describe a few
# lucky (or unlucky) minutes, not the trial: the council sees "insufficient data".
DEFAULT_MIN_COVERAGE_PCT = 80.0
Verdict = Literal["pass", "fail", "insufficient-data"]


@dataclass(frozen=True)
class Scorecard:
    """The trial's verdict, with the data coverage that decides whether it may be given."""

    results: list[TargetResult]
    passed: bool
    buckets_total: int
    buckets_with_data: int
    gaps: list[Gap]
    min_coverage_pct: float = DEFAULT_MIN_COVERAGE_PCT

    @property
    def data_coverage_pct(self) -> float:
        """The share of buckets with data, in percent."""
        return 100.0 * self.buckets_with_data / self.buckets_total if self.buckets_total else 0.0

    @property
    def verdict(self) -> Verdict:
        """Pass or fail only when enough of the period has data to decide."""
        if self.data_coverage_pct < self.min_coverage_pct:
            return "insufficient-data"
        return "pass" if self.passed else "fail"


def availability(target: Target, per_bucket: Mapping[datetime, Stats], total: int) -> float | None:
    """Share of the period's buckets in which this target was met; empty buckets fail."""
    if total == 0:
        return None
    met = sum(1 for st in per_bucket.values() if target.met(st.values.get(target.kpi)))
    return 100.0 * met / total


@dataclass(frozen=True)
class DataCoverage:
    """Where the data are, when that is known more finely than the KPI buckets (raw
    samples under hourly rollups): ``buckets`` of ``width`` that hold data, and the
    coverage a trial needs for its verdict to count."""

    buckets: Iterable[datetime] | None = None
    width: timedelta | None = None
    min_coverage_pct: float = DEFAULT_MIN_COVERAGE_PCT


def scorecard(
    targets: Sequence[Target],
    overall: Stats,
    per_bucket: Mapping[datetime, Stats],
    start: datetime,
    end: datetime,
    width: timedelta,
    coverage: DataCoverage = DataCoverage(),
) -> Scorecard:
    """Pass/fail per target on the whole period, availability per ``width`` bucket, and
    data coverage and gaps per ``coverage.width`` bucket (default: the same buckets)."""
    data_buckets, data_width = coverage.buckets, coverage.width
    buckets = bucket_range(start, end, width)
    inside = {b: st for b, st in per_bucket.items() if b + width > start and b < end and st.n}
    results = [
        TargetResult(
            t,
            overall.values.get(t.kpi),
            t.met(overall.values.get(t.kpi)),
            availability(t, inside, len(buckets)),
        )
        for t in targets
    ]
    passed = all(r.passed for r in results if not r.target.reference)
    dw = data_width or width
    grid = bucket_range(start, end, dw)
    have = set(grid).intersection(inside if data_buckets is None else data_buckets)
    gaps = find_gaps(have, start, end, dw)
    return Scorecard(results, passed, len(grid), len(have), gaps, coverage.min_coverage_pct)
