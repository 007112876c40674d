"""Deterministic ground truth: a bus driving a real trip's shape with known speeds, dwell
times and detours, reporting fixes like the telemetry does, and the true stop arrival and
departure times and off-route episodes it produced.

Kinematics: trapezoidal speed profile between the stops it serves (constant
acceleration/deceleration, cruise speed), at rest for the dwell. Positions get seeded
Gaussian GPS noise. Used by the tests (compared with the tracker's output within explicit
tolerances), the benchmark and the panel seed.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from core.geo import unproject
from mobility.vehicles.schedule import TripPlan
from mobility.vehicles.tracker import Fix


@dataclass(frozen=True)
class Detour:
    """Drive ``offset_m`` to the side of the shape between two distances along it."""

    start_m: float
    end_m: float
    offset_m: float = 150.0


@dataclass(frozen=True)
class TrueStop:
    stop_id: str
    sequence: int
    arrival: float
    departure: float
    served: bool


@dataclass
class Scenario:
    fixes: list[Fix]
    stops: list[TrueStop]
    off_route: list[tuple[float, float]] = field(default_factory=list)
    distance_m: float = 0.0


@dataclass(frozen=True)
class _Phase:
    t0: float
    t1: float
    d0: float
    d1: float
    vmax: float
    accel: float

    def at(self, t: float) -> tuple[float, float]:
        """(distance, speed) at time t in this phase."""
        length = self.d1 - self.d0
        if length <= 0:
            return self.d0, 0.0
        a, total = self.accel, self.t1 - self.t0
        vpeak = min(self.vmax, math.sqrt(a * length))
        ta = vpeak / a
        tau = min(max(t - self.t0, 0.0), total)
        if tau < ta:
            return self.d0 + 0.5 * a * tau * tau, a * tau
        if tau <= total - ta:
            return self.d0 + 0.5 * a * ta * ta + vpeak * (tau - ta), vpeak
        rem = total - tau
        return self.d1 - 0.5 * a * rem * rem, a * rem


def _drive_time(length: float, vmax: float, a: float) -> float:
    if length <= 0:
        return 0.0
    if length >= vmax * vmax / a:
        return 2 * vmax / a + (length - vmax * vmax / a) / vmax
    return 2 * math.sqrt(length / a)


class DriveOptions(TypedDict, total=False):
    """How the bus drives (see :class:`_Drive` for the defaults)."""

    cruise_mps: float | Callable[[int], float]
    accel_mps2: float
    dwell_s: float | Callable[[int], float]
    skip: Iterable[int]
    detours: Sequence[Detour]
    layover_s: float
    after_s: float
    fix_every_s: float
    gps_noise_m: float
    seed: int
    mode: str | Callable[[float], str]
    send_trip_id: bool


@dataclass(frozen=True)
class _Drive:
    cruise_mps: float | Callable[[int], float] = 8.0
    accel_mps2: float = 1.0
    dwell_s: float | Callable[[int], float] = 20.0
    skip: Iterable[int] = ()
    detours: Sequence[Detour] = ()
    layover_s: float = 60.0
    after_s: float = 30.0
    fix_every_s: float = 1.0
    gps_noise_m: float = 2.0
    seed: int = 0
    mode: str | Callable[[float], str] = "autonomous"
    send_trip_id: bool = True


@dataclass
class _Timeline:
    """The driving phases between served stops and the true (arrival, departure) of every
    stop, driven through ones included."""

    phases: list[_Phase]
    truth: dict[int, tuple[float, float]]
    skipped: set[int]
    end: float


def _timeline(plan: TripPlan, depart_epoch: float, o: _Drive) -> _Timeline:
    n = len(plan.stops)
    skipped = set(o.skip) - {0, n - 1}
    served = [i for i in range(n) if i not in skipped]
    truth: dict[int, tuple[float, float]] = {0: (depart_epoch - o.layover_s, depart_epoch)}
    phases: list[_Phase] = []
    t = depart_epoch
    for a, b in itertools.pairwise(served):
        d0, d1 = plan.stops[a].dist_m, plan.stops[b].dist_m
        vmax = o.cruise_mps(a) if callable(o.cruise_mps) else o.cruise_mps
        dur = _drive_time(d1 - d0, vmax, o.accel_mps2)
        ph = _Phase(t, t + dur, d0, d1, vmax, o.accel_mps2)
        phases.append(ph)
        for k in range(a + 1, b):  # driven through: when it crossed the stop
            crossed = _crossing(ph, plan.stops[k].dist_m)
            truth[k] = (crossed, crossed)
        t += dur
        dwell = 0.0 if b == n - 1 else (o.dwell_s(b) if callable(o.dwell_s) else o.dwell_s)
        truth[b] = (t, t + dwell)
        t += dwell
    return _Timeline(phases, truth, skipped, t + o.after_s)


def _crossing(ph: _Phase, s: float) -> float:
    """When the phase passes distance ``s`` (bisection)."""
    lo, hi = ph.t0, ph.t1
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ph.at(mid)[0] < s else (lo, mid)
    return hi


def _position(plan: TripPlan, tl: _Timeline, depart_epoch: float, at: float) -> tuple[float, float]:
    """(distance, speed) at time ``at``: driving, or at rest where it last stopped."""
    for ph in tl.phases:
        if ph.t0 <= at < ph.t1:
            return ph.at(at)
    if at < depart_epoch:
        return plan.stops[0].dist_m, 0.0
    best = plan.stops[0].dist_m
    for ph in tl.phases:
        if ph.t1 <= at:
            best = ph.d1
    return best, 0.0


def _place(plan: TripPlan, d: float, detour: Detour | None) -> tuple[float, float, float]:
    """Projected (x, y) at distance ``d`` (a detour moves it to the side) and the heading."""
    shape = plan.shape
    p = shape.interpolate(d)
    q = shape.interpolate(min(d + 2.0, shape.length))
    r = shape.interpolate(max(d - 2.0, 0.0))
    hx, hy = q.x - r.x, q.y - r.y
    norm = math.hypot(hx, hy) or 1.0
    x, y = p.x, p.y
    if detour is not None:
        x += -hy / norm * detour.offset_m
        y += hx / norm * detour.offset_m
    return x, y, math.degrees(math.atan2(hx, hy)) % 360.0


def drive_trip(
    plan: TripPlan, vehicle_id: str, depart_epoch: float, **options: Unpack[DriveOptions]
) -> Scenario:
    """Drive ``plan`` leaving its first stop at ``depart_epoch`` (epoch seconds)."""
    o = _Drive(**options)
    rng = random.Random(o.seed)
    tl = _timeline(plan, depart_epoch, o)
    fixes: list[Fix] = []
    off_truth: list[tuple[float, float]] = []
    in_detour_since: float | None = None
    odometer = 0.0
    prev_d: float | None = None
    ts = depart_epoch - o.layover_s
    while ts <= tl.end:
        d, v = _position(plan, tl, depart_epoch, ts)
        detour = next((dt for dt in o.detours if dt.start_m <= d <= dt.end_m), None)
        x, y, heading = _place(plan, d, detour)
        if detour is not None:
            if in_detour_since is None:
                in_detour_since = ts
        elif in_detour_since is not None:
            off_truth.append((in_detour_since, ts))
            in_detour_since = None
        x += rng.gauss(0.0, o.gps_noise_m)
        y += rng.gauss(0.0, o.gps_noise_m)
        lat, lon = unproject(x, y)
        if prev_d is not None:
            odometer += max(0.0, d - prev_d)
        prev_d = d
        fixes.append(
            Fix(
                vehicle_id,
                round(ts, 3),
                lat,
                lon,
                speed_mps=round(v, 2),
                heading_deg=round(heading, 1) % 360.0,
                mode=o.mode(ts) if callable(o.mode) else o.mode,
                trip_id=plan.trip_id if o.send_trip_id else None,
                route_id=plan.route_id if o.send_trip_id else None,
                odometer_m=round(odometer, 1),
            )
        )
        ts += o.fix_every_s
    if in_detour_since is not None:
        off_truth.append((in_detour_since, ts))
    stops = [
        TrueStop(s.stop_id, s.sequence, tl.truth[i][0], tl.truth[i][1], i not in tl.skipped)
        for i, s in enumerate(plan.stops)
    ]
    return Scenario(fixes, stops, off_truth, odometer)


def merge(*scenarios: Scenario) -> list[Fix]:
    """Fixes of several buses in time order, as a broker would deliver them."""
    return sorted((f for s in scenarios for f in s.fixes), key=lambda f: (f.ts, f.vehicle_id))
