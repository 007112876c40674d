"""The arrival prediction engine: plain values in, plain values out, no I/O.

For a vehicle on a trip it walks the stops ahead: the rest of the current segment (the
learned running time times the share of the segment still to drive), then for each stop
the learned dwell and each following segment's learned running time for the hour the bus
will be there. Live corrections come from the residuals (log of observed / learned time)
of the vehicles that drove the same segments in the last half hour (headway-aware: the bus
behind a slow bus meets the same traffic) and from this vehicle's own recent segments; both
fade with the time ahead. Buses do not leave a stop before its timetable departure
(Japanese operators avoid early departures), and a vehicle in layover leaves at its next
trip's departure or when it is ready, whichever is later.

The output is consistent the way the GTFS-Realtime validator demands and riders expect:
no time in the past, departure never before arrival, times strictly increasing along the
trip, and an uncertainty (seconds, one standard deviation) from the learned spreads.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from mobility.predictions.model import (
    JST_OFFSET_S,
    DwellKey,
    Estimate,
    Model,
    SegKey,
    Traversal,
    day_type,
    direction_key,
    hour_band,
)


@dataclass(frozen=True, slots=True)
class PlannedStop:
    """A stop of a trip with its scheduled epochs and its distance along the shape."""

    stop_id: str
    sequence: int
    arrival: float
    departure: float
    dist_m: float


@dataclass(frozen=True, slots=True)
class PlannedTrip:
    """A trip on a service day: its route, direction and stops in order."""

    trip_id: str
    route_id: str
    direction_id: int | None
    stops: tuple[PlannedStop, ...]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where the vehicle is on ``trip`` at ``ts``.

    ``next_index``: the first stop not yet departed. ``at_stop``: dwelling there since
    ``arrived_at``. ``started`` False: in layover before the first departure, able to leave
    from ``ready_at`` on (None: now).
    """

    ts: float
    next_index: int
    dist_m: float
    at_stop: bool = False
    arrived_at: float | None = None
    started: bool = True
    ready_at: float | None = None


class Prediction(NamedTuple):
    """Predicted arrival/departure (epoch seconds) at one stop, with the uncertainty (a
    named tuple: made for every stop on every telemetry update, so cheap to build)."""

    trip_id: str
    stop_id: str
    sequence: int
    arrival: int
    departure: int
    uncertainty: int
    scheduled_arrival: float
    scheduled_departure: float

    @property
    def arrival_delay(self) -> int:
        """Predicted arrival minus the timetable (positive = late)."""
        return self.arrival - round(self.scheduled_arrival)

    @property
    def departure_delay(self) -> int:
        """Predicted departure minus the timetable (positive = late)."""
        return self.departure - round(self.scheduled_departure)


@dataclass(frozen=True)
class EngineConfig:
    """Tuning of the live corrections (defaults validated by bench/predictions_bench.py)."""

    hold_early: bool = True
    min_layover_s: float = 120.0
    recent_window_s: float = 1800.0
    recent_tau_s: float = 600.0
    shrink_weight: float = 0.6
    own_tau_s: float = 900.0
    horizon_tau_s: float = 1500.0
    max_residual: float = 1.5


@dataclass
class _TripKeys:
    segs: list[SegKey]
    dwells: list[DwellKey]
    sched_run: list[float]
    lengths: list[float]


@dataclass
class Predictor:
    """The engine with its short memory of recent traversals (for live corrections)."""

    model: Model
    config: EngineConfig = field(default_factory=EngineConfig)
    _recent: dict[SegKey, deque[tuple[float, float]]] = field(default_factory=dict)
    _own: dict[str, tuple[float, float]] = field(default_factory=dict)
    _keys: dict[str, _TripKeys] = field(default_factory=dict)
    _travel: dict[tuple[SegKey, int], Estimate] = field(default_factory=dict)
    _dwell: dict[tuple[DwellKey, int], Estimate] = field(default_factory=dict)
    _residual: dict[SegKey, tuple[float, float, float]] = field(default_factory=dict)

    # -- learning from what just happened -------------------------------------------------

    def observe(self, t: Traversal, vehicle_id: str | None = None) -> None:
        """A vehicle finished a segment: remember how it compared with the learned time."""
        seg: SegKey = (t.route_id, direction_key(t.direction_id), t.from_stop_id, t.to_stop_id)
        est = self._travel_est(seg, t.start, t.scheduled_s or 0.0, 0.0)
        if est.seconds <= 0 or t.seconds <= 0:
            return
        cap = self.config.max_residual
        r = max(-cap, min(cap, math.log(t.seconds / est.seconds)))
        end = t.start + t.seconds
        q = self._recent.setdefault(seg, deque())
        q.append((end, r))
        self._residual.pop(seg, None)
        while q and q[0][0] < end - self.config.recent_window_s:
            q.popleft()
        if vehicle_id is not None:
            prev = self._own.get(vehicle_id)
            if prev is None or end - prev[0] > self.config.own_tau_s:
                self._own[vehicle_id] = (end, r)
            else:
                self._own[vehicle_id] = (end, 0.5 * prev[1] + 0.5 * r)

    def forget_vehicle(self, vehicle_id: str) -> None:
        """Drop a vehicle's own residual (new trip after a long break, or gone)."""
        self._own.pop(vehicle_id, None)

    def _segment_residual(self, seg: SegKey, now: float) -> tuple[float, float]:
        """Recency-weighted mean residual of the segment and its total weight (cached for
        ten seconds: telemetry of many vehicles asks for the same segments)."""
        cached = self._residual.get(seg)
        if cached is not None and 0.0 <= now - cached[0] < 10.0:
            return cached[1], cached[2]
        q = self._recent.get(seg)
        if not q:
            return 0.0, 0.0
        tau, window = self.config.recent_tau_s, self.config.recent_window_s
        wsum = rsum = 0.0
        for end, r in q:
            age = now - end
            if 0.0 <= age <= window:
                w = math.exp(-age / tau)
                wsum += w
                rsum += w * r
        out = (rsum / wsum, wsum) if wsum > 0 else (0.0, 0.0)
        self._residual[seg] = (now, *out)
        return out

    def _own_residual(self, vehicle_id: str | None, now: float) -> float:
        if vehicle_id is None:
            return 0.0
        own = self._own.get(vehicle_id)
        if own is None:
            return 0.0
        age = now - own[0]
        return own[1] * math.exp(-age / self.config.own_tau_s) if age >= 0 else own[1]

    # -- lookups (cached: the same cells are asked for on every telemetry update) --------

    def _trip_keys(self, trip: PlannedTrip) -> _TripKeys:
        k = self._keys.get(trip.trip_id)
        if k is None or len(k.dwells) != len(trip.stops):
            d = direction_key(trip.direction_id)
            st = trip.stops
            k = _TripKeys(
                [(trip.route_id, d, a.stop_id, b.stop_id) for a, b in itertools.pairwise(st)],
                [(trip.route_id, d, s.stop_id) for s in st],
                [b.arrival - a.departure for a, b in itertools.pairwise(st)],
                [b.dist_m - a.dist_m for a, b in itertools.pairwise(st)],
            )
            self._keys[trip.trip_id] = k
        return k

    def _travel_est(self, seg: SegKey, at: float, sched: float, length: float) -> Estimate:
        key = (seg, int((at + JST_OFFSET_S) // 3600))  # the absolute local hour
        e = self._travel.get(key)
        if e is None:
            e = self.model.travel_estimate(seg, day_type(at), hour_band(at), sched, length)
            self._travel[key] = e
        return e

    def _dwell_est(self, dk: DwellKey, at: float) -> Estimate:
        key = (dk, int((at + JST_OFFSET_S) // 3600))
        e = self._dwell.get(key)
        if e is None:
            e = self.model.dwell_estimate(dk, day_type(at), hour_band(at))
            self._dwell[key] = e
        return e

    # -- prediction ----------------------------------------------------------------------

    def predict(
        self,
        trip: PlannedTrip,
        progress: Progress,
        now: float,
        *,
        vehicle_id: str | None = None,
        next_trip: PlannedTrip | None = None,
    ) -> list[Prediction]:
        """Predictions for the stops of ``trip`` from ``progress.next_index`` on (and of
        ``next_trip`` when given: the vehicle's next trip after a layover)."""
        out = self._predict_trip(trip, progress, now, vehicle_id)
        if next_trip is not None and next_trip.stops and out:
            end = out[-1]
            ready = end.arrival + self.config.min_layover_s
            more = self._predict_trip(
                next_trip,
                Progress(now, 0, 0.0, started=False, ready_at=ready),
                now,
                vehicle_id,
                carried_var=float(end.uncertainty) ** 2,
                floor=end.arrival + 1,
            )
            out.extend(more)
        return out

    def _predict_trip(
        self,
        trip: PlannedTrip,
        p: Progress,
        now: float,
        vehicle_id: str | None,
        carried_var: float = 0.0,
        floor: float | None = None,
    ) -> list[Prediction]:
        stops = trip.stops
        i = p.next_index
        if not stops or i >= len(stops):
            return []
        keys = self._trip_keys(trip)
        own = self._own_residual(vehicle_id, now)
        first_arr, first_dep, var = self._first_stop(trip, keys, p, now, own)
        var += carried_var if first_dep > stops[i].departure + 30 else 0.0
        out: list[Prediction] = []
        lo = math.ceil(max(now, floor if floor is not None else now))
        arr, dep = first_arr, first_dep
        last = len(stops) - 1
        for j in range(i, len(stops)):
            s = stops[j]
            if j > i:
                arr, var = self._next_arrival(keys, j, dep, now, own, var)
                if j < last:
                    dw = self._dwell_est(keys.dwells[j], arr)
                    dep = arr + dw.seconds
                    var += dw.sigma * dw.sigma
                    if self.config.hold_early and dep < s.departure:
                        dep = s.departure
                else:
                    dep = arr
            a = max(round(arr), lo)
            d = max(round(dep), a)
            out.append(
                Prediction(
                    trip.trip_id,
                    s.stop_id,
                    s.sequence,
                    a,
                    d,
                    round(math.sqrt(var)),
                    s.arrival,
                    s.departure,
                )
            )
            lo = d + 1
        return out

    def _multiplier(self, seg: SegKey, start: float, now: float, own: float) -> float:
        if own == 0.0 and seg not in self._recent:
            return 1.0
        r_seg, w = self._segment_residual(seg, now)
        shrink = w / (w + self.config.shrink_weight)
        r = shrink * r_seg + (1.0 - shrink) * own
        ahead = max(start - now, 0.0)
        return math.exp(r * math.exp(-ahead / self.config.horizon_tau_s))

    def _next_arrival(
        self, keys: _TripKeys, j: int, dep: float, now: float, own: float, var: float
    ) -> tuple[float, float]:
        seg = keys.segs[j - 1]
        est = self._travel_est(seg, dep, keys.sched_run[j - 1], keys.lengths[j - 1])
        run = est.seconds * self._multiplier(seg, dep, now, own)
        return dep + run, var + est.sigma * est.sigma

    def _first_stop(
        self, trip: PlannedTrip, keys: _TripKeys, p: Progress, now: float, own: float
    ) -> tuple[float, float, float]:
        """(arrival, departure, variance) at the first stop ahead of the vehicle."""
        stops = trip.stops
        i = p.next_index
        s = stops[i]
        hold = self.config.hold_early
        if not p.started:
            ready = max(now, p.ready_at if p.ready_at is not None else now)
            dep = max(s.departure, ready)
            return min(max(s.arrival, ready), dep), dep, 0.0
        if p.at_stop or i == 0:
            arrived = p.arrived_at if p.arrived_at is not None else p.ts
            if i == len(stops) - 1:
                return arrived, arrived, 0.0
            dw = self._dwell_est(keys.dwells[i], arrived)
            dep = max(arrived + dw.seconds, now)
            if hold or i == 0:
                dep = max(dep, s.departure)
            return arrived, dep, dw.sigma * dw.sigma / 4
        prev = stops[i - 1]
        seg = keys.segs[i - 1]
        est = self._travel_est(seg, p.ts, keys.sched_run[i - 1], keys.lengths[i - 1])
        span = s.dist_m - prev.dist_m
        left = 1.0 - (min(max((p.dist_m - prev.dist_m) / span, 0.0), 1.0) if span > 0 else 0.0)
        arr = max(p.ts + est.seconds * left * self._multiplier(seg, p.ts, now, own), now)
        var = (est.sigma * left) ** 2
        if i == len(stops) - 1:
            return arr, arr, var
        dw = self._dwell_est(keys.dwells[i], arr)
        dep = arr + dw.seconds
        if hold and dep < s.departure:
            dep = s.departure
        return arr, dep, var + dw.sigma * dw.sigma
