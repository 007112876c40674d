"""What the prediction engine has learned: robust travel and dwell statistics.

Segment travel times (departure from one stop to arrival at the next) and dwell times
(arrival to departure at a stop) are kept per route, direction, segment or stop,
weekday/weekend and hour of the day (Asia/Tokyo) as median and 10th/90th percentiles, so a
few wild trips (an incident, a detour) do not move the estimate. The same rows come from
:func:`learn` (plain observations, pure) and from the SQL rollup
(``mobility_prediction_stats``), so the engine never knows which one fed it.

Fallbacks, in order, when a cell has fewer than ``MIN_SAMPLES`` observations: the same
segment on the same kind of day pooled over all hours and scaled by the route's factor for
that hour; the timetable's own running time scaled the same way; the segment's length at
the route's average speed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

JST_OFFSET_S = 9 * 3600
MIN_SAMPLES = 4
# (p90 - p10) of a normal distribution is 2.563 standard deviations.
_P90_P10_SIGMAS = 2.5631
WEEKDAY, WEEKEND = 0, 1
TRAVEL, DWELL = "travel", "dwell"


def day_type(epoch: float) -> int:
    """WEEKDAY or WEEKEND (Saturday, Sunday) of the Asia/Tokyo calendar day of ``epoch``."""
    days = int((epoch + JST_OFFSET_S) // 86400)
    return WEEKEND if (days + 3) % 7 >= 5 else WEEKDAY  # 1970-01-01 was a Thursday


def hour_band(epoch: float) -> int:
    """The Asia/Tokyo hour (0-23) of ``epoch``: the time-of-day band statistics are kept in."""
    return int(((epoch + JST_OFFSET_S) % 86400) // 3600)


def direction_key(direction_id: int | None) -> int:
    """GTFS direction_id with -1 for a trip that has none (a dictionary key needs a value)."""
    return -1 if direction_id is None else int(direction_id)


@dataclass(frozen=True, slots=True)
class Stat:
    """Robust summary of one cell: sample count, median and 10th/90th percentiles (s)."""

    n: int
    median: float
    p10: float
    p90: float

    @property
    def sigma(self) -> float:
        """Spread as a standard deviation (from the 10-90 range, robust to outliers)."""
        return max(self.p90 - self.p10, 0.0) / _P90_P10_SIGMAS


@dataclass(frozen=True, slots=True)
class StatRow:
    """One learned cell, the unit of exchange with the SQL rollup.

    ``kind`` is TRAVEL (``stop_id`` is the segment's first stop, ``to_stop_id`` its
    second) or DWELL (``to_stop_id`` is empty). ``day`` is WEEKDAY/WEEKEND, ``band`` the
    hour. ``ratio`` is the median of observed / scheduled seconds (None without a
    timetable time), used for the route's hour factor.
    """

    kind: str
    route_id: str
    direction_id: int
    stop_id: str
    to_stop_id: str
    day: int
    band: int
    stat: Stat
    ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Traversal:
    """One observed run from a stop's departure to the next stop's arrival."""

    route_id: str
    direction_id: int | None
    from_stop_id: str
    to_stop_id: str
    start: float  # epoch of the departure
    seconds: float
    scheduled_s: float | None = None


@dataclass(frozen=True, slots=True)
class DwellObs:
    """One observed dwell. ``held``: the bus waited for its timetable departure, so the
    dwell says nothing about boarding time and is not learned from."""

    route_id: str
    direction_id: int | None
    stop_id: str
    arrival: float
    seconds: float
    held: bool = False


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of an ascending sequence (as PostgreSQL's
    percentile_cont), so the Python and SQL learners agree."""
    n = len(sorted_values)
    if n == 1:
        return float(sorted_values[0])
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    f = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * f)


def summarize(values: Iterable[float]) -> Stat:
    """Median and 10th/90th percentiles of ``values`` (at least one)."""
    v = sorted(values)
    return Stat(len(v), percentile(v, 0.5), percentile(v, 0.1), percentile(v, 0.9))


def learn(traversals: Iterable[Traversal], dwells: Iterable[DwellObs]) -> list[StatRow]:
    """Statistics rows from observations (the pure twin of the SQL rollup)."""
    cells: dict[tuple[str, str, int, str, str, int, int], tuple[list[float], list[float]]] = {}
    for t in traversals:
        if t.seconds <= 0:
            continue
        key = (
            TRAVEL,
            t.route_id,
            direction_key(t.direction_id),
            t.from_stop_id,
            t.to_stop_id,
            day_type(t.start),
            hour_band(t.start),
        )
        values, ratios = cells.setdefault(key, ([], []))
        values.append(t.seconds)
        if t.scheduled_s and t.scheduled_s > 0:
            ratios.append(t.seconds / t.scheduled_s)
    for d in dwells:
        if d.held or d.seconds < 0:
            continue
        key = (
            DWELL,
            d.route_id,
            direction_key(d.direction_id),
            d.stop_id,
            "",
            day_type(d.arrival),
            hour_band(d.arrival),
        )
        cells.setdefault(key, ([], []))[0].append(d.seconds)
    return [
        StatRow(*k, stat=summarize(vals), ratio=summarize(rs).median if rs else None)
        for k, (vals, rs) in cells.items()
    ]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A resolved expectation in seconds with its spread (standard deviation)."""

    seconds: float
    sigma: float


SegKey = tuple[str, int, str, str]  # route, direction, from stop, to stop
DwellKey = tuple[str, int, str]  # route, direction, stop


def _pool(stats: Sequence[Stat]) -> Stat:
    """Several cells as one: sample-weighted median and percentiles (an approximation
    good enough for a fallback)."""
    n = sum(s.n for s in stats)
    w = [s.n / n for s in stats]
    return Stat(
        n,
        sum(s.median * x for s, x in zip(stats, w, strict=True)),
        sum(s.p10 * x for s, x in zip(stats, w, strict=True)),
        sum(s.p90 * x for s, x in zip(stats, w, strict=True)),
    )


@dataclass
class Model:
    """Learned statistics with fallbacks; build with :meth:`from_rows`."""

    travel: dict[tuple[SegKey, int, int], Stat] = field(default_factory=dict)
    travel_pooled: dict[tuple[SegKey, int], Stat] = field(default_factory=dict)
    dwell: dict[tuple[DwellKey, int, int], Stat] = field(default_factory=dict)
    dwell_pooled: dict[tuple[DwellKey, int], Stat] = field(default_factory=dict)
    # route/direction/day/hour: observed / scheduled running time (median over segments)
    route_factor: dict[tuple[str, int, int, int], float] = field(default_factory=dict)
    # route/direction: factor pooled over hours, then the mean speed (m/s)
    route_factor_pooled: dict[tuple[str, int, int], float] = field(default_factory=dict)
    route_speed: dict[tuple[str, int], float] = field(default_factory=dict)
    default_speed_mps: float = 5.5  # ~20 km/h, a city bus's scheduled average
    default_dwell_s: float = 20.0
    fallback_spread: float = 0.25  # sigma as a share of a fallback estimate

    @classmethod
    def from_rows(
        cls, rows: Iterable[StatRow], seg_lengths: dict[SegKey, float] | None = None
    ) -> Model:
        """Index rows for lookup and derive the pooled and route-level fallbacks.
        ``seg_lengths`` (metres per segment) give each route's average speed."""
        m = cls()
        pooled_t: dict[tuple[SegKey, int], list[Stat]] = {}
        pooled_d: dict[tuple[DwellKey, int], list[Stat]] = {}
        factors: dict[tuple[str, int, int, int], list[tuple[float, int]]] = {}
        speeds: dict[tuple[str, int], list[float]] = {}
        for r in rows:
            if r.kind == TRAVEL:
                seg: SegKey = (r.route_id, r.direction_id, r.stop_id, r.to_stop_id)
                m.travel[(seg, r.day, r.band)] = r.stat
                pooled_t.setdefault((seg, r.day), []).append(r.stat)
                if r.ratio is not None:
                    fk = (r.route_id, r.direction_id, r.day, r.band)
                    factors.setdefault(fk, []).append((r.ratio, r.stat.n))
                length = (seg_lengths or {}).get(seg)
                if length and r.stat.median > 0:
                    speeds.setdefault((r.route_id, r.direction_id), []).append(
                        length / r.stat.median
                    )
            else:
                dk: DwellKey = (r.route_id, r.direction_id, r.stop_id)
                m.dwell[(dk, r.day, r.band)] = r.stat
                pooled_d.setdefault((dk, r.day), []).append(r.stat)
        m.travel_pooled = {k: _pool(v) for k, v in pooled_t.items()}
        m.dwell_pooled = {k: _pool(v) for k, v in pooled_d.items()}
        by_route: dict[tuple[str, int, int], list[tuple[float, int]]] = {}
        for fk, vals in factors.items():
            m.route_factor[fk] = _weighted_median(vals)
            by_route.setdefault(fk[:3], []).extend(vals)
        m.route_factor_pooled = {k: _weighted_median(v) for k, v in by_route.items()}
        m.route_speed = {k: sorted(v)[len(v) // 2] for k, v in speeds.items()}
        return m

    def factor(self, route_id: str, direction: int, day: int, band: int) -> float:
        """The route's observed / scheduled running time at this hour (1.0 unknown)."""
        f = self.route_factor.get((route_id, direction, day, band))
        if f is None:
            f = self.route_factor_pooled.get((route_id, direction, day), 1.0)
        return f

    def travel_estimate(
        self, seg: SegKey, day: int, band: int, scheduled_s: float, length_m: float
    ) -> Estimate:
        """Expected running time of one segment starting in this day type and hour."""
        s = self.travel.get((seg, day, band))
        if s is not None and s.n >= MIN_SAMPLES:
            return Estimate(s.median, s.sigma)
        pooled = self.travel_pooled.get((seg, day))
        f = self.factor(seg[0], seg[1], day, band)
        if pooled is not None and pooled.n >= MIN_SAMPLES:
            pf = self.route_factor_pooled.get((seg[0], seg[1], day), 1.0)
            scale = f / pf if pf > 0 else 1.0
            return Estimate(pooled.median * scale, pooled.sigma * scale)
        if scheduled_s > 0:
            sec = scheduled_s * f
            return Estimate(sec, sec * self.fallback_spread)
        speed = self.route_speed.get((seg[0], seg[1]), self.default_speed_mps)
        sec = max(length_m, 0.0) / speed
        return Estimate(sec, sec * self.fallback_spread)

    def dwell_estimate(self, key: DwellKey, day: int, band: int) -> Estimate:
        """Expected dwell at a stop (boarding, not waiting for the timetable)."""
        s = self.dwell.get((key, day, band))
        if s is None or s.n < MIN_SAMPLES:
            s = self.dwell_pooled.get((key, day))
        if s is not None and s.n >= 1:
            return Estimate(s.median, s.sigma)
        return Estimate(self.default_dwell_s, self.default_dwell_s * 0.5)


def _weighted_median(values: Sequence[tuple[float, int]]) -> float:
    """Median of ``(value, weight)`` pairs."""
    ordered = sorted(values)
    total = sum(w for _, w in ordered)
    acc = 0
    for v, w in ordered:
        acc += w
        if acc * 2 >= total:
            return v
    return ordered[-1][0]
