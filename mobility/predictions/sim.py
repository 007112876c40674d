"""A day of bus service with realistic variability, in memory and fast (stop events only).

What varies, and why it makes the evaluation honest:

- **City parameters, drawn per run** (:func:`draw_city`): each road segment's free speed and
  how hard rush hour hits it, traffic signals on it (count by length), each stop's boarding
  demand, the height and timing of the morning and evening peaks. Training and test days
  share the city (as a real network does), but a new run seed is a new city, so the engine
  cannot be tuned to one.
- **Day parameters, drawn per day seed** (:func:`draw_day`): overall traffic intensity,
  rain (slower roads, more riders), incidents (a segment blocked for 20-60 minutes).
- **Per traversal**: noise, red lights, and dwell from passengers who arrived since the
  previous bus left the stop (a late bus collects more riders and falls further behind:
  bunching), more at busy hours. No bus leaves a stop before its timetable time, and a bus
  starts its next trip after at least a short layover.

Routes and timetables come from the bundled Gunma Chuo Bus GTFS-JP feed (all routes with
at least a quarter of their stops inside Maebashi), chained into vehicle blocks the way a
scheduler would.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

from mobility.predictions.engine import PlannedStop, PlannedTrip
from mobility.predictions.model import DwellObs, SegKey, Traversal, direction_key
from mobility.vehicles.schedule import Schedule, TripPlan, service_day_epoch

MIN_LAYOVER_S = 120.0
MAX_LAYOVER_S = 90 * 60
SAME_PLACE_M = 300.0
# A route serves Maebashi when at least this share of its stops lie inside the city (the
# 前橋高崎線 runs between the two cities with 43 % of its stops in Maebashi).
SERVES_CITY_SHARE = 0.25


@dataclass(frozen=True)
class CityParams:
    """The network's persistent character (one per run seed)."""

    seg_speed: dict[SegKey, float]  # free-flow m/s
    seg_rush: dict[SegKey, float]  # sensitivity to congestion
    seg_signals: dict[SegKey, int]
    stop_demand: dict[str, float]  # riders per minute at midday
    am_peak: float
    pm_peak: float
    am_center_h: float
    pm_center_h: float
    red_share: float
    red_s: float


@dataclass(frozen=True)
class Incident:
    """A segment slowed by ``extra_s`` per traversal from ``start`` for ``duration`` s."""

    seg: SegKey
    start: float
    duration: float
    extra_s: float


@dataclass(frozen=True)
class DayParams:
    """One day's character (one per day seed)."""

    intensity: float
    rain: bool
    incidents: tuple[Incident, ...]
    # per route: traffic factor at each hour knot 0..24, linear in between (the day's own
    # ups and downs that no history predicts)
    wobble: dict[str, tuple[float, ...]]
    demand: float  # riders today relative to usual


@dataclass
class TripRun:
    """What one trip actually did: per stop arrival/departure; per segment the stretch of
    stopped time (where along it, how long) so positions in between can be told."""

    trip: PlannedTrip
    arrivals: list[float] = field(default_factory=list)
    departures: list[float] = field(default_factory=list)
    waits: list[tuple[float, float]] = field(default_factory=list)  # (share along, seconds)
    held: list[bool] = field(default_factory=list)


@dataclass
class Block:
    """One vehicle's trips on the day, in order."""

    vehicle_id: str
    runs: list[TripRun]


def _seg_keys(plan: TripPlan) -> list[SegKey]:
    d = direction_key(plan.direction_id)
    return [(plan.route_id, d, a.stop_id, b.stop_id) for a, b in itertools.pairwise(plan.stops)]


def draw_city(schedule: Schedule, routes: set[str], seed: int) -> CityParams:
    """City parameters for a run (segment speeds, rush sensitivity, signals, demand, peaks)."""
    rng = random.Random(seed)
    # Free-flow speed from the timetable's own speed on the route: the timetable's running
    # times include dwell, signals and ordinary traffic, so free flow is a good deal faster.
    lengths: dict[str, float] = {}
    runs: dict[str, float] = {}
    for plan in schedule.trips.values():
        if plan.route_id in routes and plan.end_s > plan.start_s:
            lengths[plan.route_id] = lengths.get(plan.route_id, 0.0) + plan.stops[-1].dist_m
            runs[plan.route_id] = runs.get(plan.route_id, 0.0) + plan.end_s - plan.start_s
    route_speed = {
        r: lengths.get(r, 5.5) / runs.get(r, 1.0) / rng.uniform(0.55, 0.68) for r in sorted(routes)
    }
    speed: dict[SegKey, float] = {}
    rush: dict[SegKey, float] = {}
    signals: dict[SegKey, int] = {}
    demand: dict[str, float] = {}
    for plan in sorted(schedule.trips.values(), key=lambda p: p.trip_id):
        if plan.route_id not in routes:
            continue
        for seg, (a, b) in zip(_seg_keys(plan), itertools.pairwise(plan.stops), strict=True):
            if seg in speed:
                continue
            length = max(b.dist_m - a.dist_m, 0.0)
            speed[seg] = route_speed[plan.route_id] * math.exp(rng.gauss(0, 0.18))
            rush[seg] = math.exp(rng.gauss(0, 0.5))
            signals[seg] = _poisson(rng, length / 450.0)
        for s in plan.stops:
            demand.setdefault(s.stop_id, 0.012 * math.exp(rng.gauss(0, 1.0)))
    return CityParams(
        speed,
        rush,
        signals,
        demand,
        am_peak=rng.uniform(0.35, 0.65),
        pm_peak=rng.uniform(0.3, 0.55),
        am_center_h=rng.uniform(7.4, 8.2),
        pm_center_h=rng.uniform(17.0, 18.0),
        red_share=rng.uniform(0.35, 0.5),
        red_s=rng.uniform(35.0, 60.0),
    )


def draw_day(city: CityParams, day: date, seed: int) -> DayParams:
    """The day's intensity, rain and incidents."""
    rng = random.Random(seed)
    segs = sorted(city.seg_speed)
    day0 = service_day_epoch(day)
    incidents = tuple(
        Incident(
            rng.choice(segs),
            day0 + rng.uniform(7 * 3600, 20 * 3600),
            rng.uniform(20 * 60, 60 * 60),
            rng.uniform(60.0, 300.0),
        )
        for _ in range(_poisson(rng, 4.0))
    )
    routes = sorted({seg[0] for seg in segs})
    wobble = {r: tuple(math.exp(rng.gauss(0, 0.12)) for _ in range(26)) for r in routes}
    return DayParams(
        math.exp(rng.gauss(0, 0.2)),
        rng.random() < 0.2,
        incidents,
        wobble,
        math.exp(rng.gauss(0, 0.2)),
    )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _peak(h: float, center: float, width: float) -> float:
    return math.exp(-(((h - center) / width) ** 2))


def congestion(city: CityParams, h: float, weekend: bool) -> float:
    """Share of extra travel time from traffic at local hour ``h`` (before segment
    sensitivity): two peaks on weekdays, a flatter shopping hump at weekends."""
    if weekend:
        return 0.12 + 0.25 * _peak(h, 14.0, 3.0)
    return (
        0.12
        + city.am_peak * _peak(h, city.am_center_h, 0.9)
        + city.pm_peak * _peak(h, city.pm_center_h, 1.1)
    )


def _riders(h: float, weekend: bool) -> float:
    """Rider demand by hour relative to midday."""
    if weekend:
        return 0.8 + 0.3 * _peak(h, 13.0, 3.0)
    return 0.7 + 1.3 * _peak(h, 7.8, 1.0) + 0.9 * _peak(h, 17.5, 1.2)


@dataclass
class _Day:
    city: CityParams
    params: DayParams
    weekend: bool
    day0: float
    rng: random.Random
    last_left: dict[str, float] = field(default_factory=dict)
    driver: float = 1.0  # the current bus's driver: some drive faster than others

    def hour(self, t: float) -> float:
        return (t - self.day0) / 3600.0

    def travel(self, seg: SegKey, length: float, t: float) -> tuple[float, float, float]:
        """(seconds, share along the stopped stretch, stopped seconds) for one segment."""
        c = self.city
        h = self.hour(t)
        jam = c.seg_rush.get(seg, 1.0) * congestion(c, h, self.weekend) * self.params.intensity
        rain = 1.12 if self.params.rain else 1.0
        knots = self.params.wobble.get(seg[0])
        wob = 1.0
        if knots is not None:
            k = min(max(h, 0.0), 24.99)
            i = int(k)
            wob = knots[i] + (knots[i + 1] - knots[i]) * (k - i)
        move = length / c.seg_speed.get(seg, 8.0) * (1.0 + jam) * rain * wob * self.driver
        move *= math.exp(self.rng.gauss(0, 0.15))
        wait = 0.0
        for _ in range(c.seg_signals.get(seg, 0)):
            if self.rng.random() < c.red_share:
                wait += self.rng.uniform(0, c.red_s)
        for inc in self.params.incidents:
            if inc.seg == seg and inc.start <= t < inc.start + inc.duration:
                wait += inc.extra_s * self.rng.uniform(0.6, 1.4)
        return move + wait, self.rng.random(), wait

    def dwell(self, stop_id: str, t: float, last: bool) -> float:
        """Boarding and alighting time at a stop (0 when nobody gets on or off)."""
        h = self.hour(t)
        prev = self.last_left.get(stop_id)
        headway_min = min((t - prev) / 60.0, 60.0) if prev is not None else 20.0
        rate = self.city.stop_demand.get(stop_id, 0.1) * _riders(h, self.weekend)
        rate *= (1.25 if self.params.rain else 1.0) * self.params.demand
        board = 0 if last else _poisson(self.rng, rate * max(headway_min, 0.5))
        alight = _poisson(self.rng, rate * max(headway_min, 0.5) * 0.8)
        if board + alight == 0:
            return 0.0
        crowd = 1.2 if _riders(h, self.weekend) > 1.5 else 1.0
        return (8.0 + 2.8 * board + 1.3 * alight) * crowd * math.exp(self.rng.gauss(0, 0.15))


def planned(plan: TripPlan, day: date) -> PlannedTrip:
    """A timetable trip on a service day, with epochs (the engine's input)."""
    day0 = service_day_epoch(day)
    return PlannedTrip(
        plan.trip_id,
        plan.route_id,
        plan.direction_id,
        tuple(
            PlannedStop(s.stop_id, s.sequence, day0 + s.arrival_s, day0 + s.departure_s, s.dist_m)
            for s in plan.stops
        ),
    )


def build_blocks(
    trips: Sequence[PlannedTrip], stops: dict[str, tuple[float, float]]
) -> list[list[PlannedTrip]]:
    """Chain trips into vehicle blocks: a trip follows the earliest-finishing block that
    ends where it starts (same stop or within 300 m) 2-90 minutes before it departs."""
    blocks: list[list[PlannedTrip]] = []
    for t in sorted(trips, key=lambda t: t.stops[0].departure):
        first = t.stops[0]
        fits = []
        for b in blocks:
            end = b[-1].stops[-1]
            gap = first.departure - end.arrival
            if MIN_LAYOVER_S <= gap <= MAX_LAYOVER_S and _near(end.stop_id, first.stop_id, stops):
                fits.append(b)
        if fits:
            min(fits, key=lambda b: b[-1].stops[-1].arrival).append(t)
        else:
            blocks.append([t])
    return blocks


def _near(a: str, b: str, stops: dict[str, tuple[float, float]]) -> bool:
    if a == b:
        return True
    (la, oa), (lb, ob) = stops[a], stops[b]
    dy = (la - lb) * 110_574.0
    dx = (oa - ob) * 111_320.0 * math.cos(math.radians(la))
    return math.hypot(dx, dy) <= SAME_PLACE_M


def simulate_day(
    blocks: Sequence[Sequence[PlannedTrip]], city: CityParams, day: date, seed: int
) -> list[Block]:
    """Run every block through the day in time order (riders at a stop depend on when the
    previous bus left it, so the vehicles interact)."""
    params = draw_day(city, day, seed)
    sim = _Day(city, params, day.weekday() >= 5, service_day_epoch(day), random.Random(seed + 1))
    out = [Block(f"bus-{i:03d}", [TripRun(t) for t in trips]) for i, trips in enumerate(blocks)]
    drivers = [math.exp(sim.rng.gauss(0, 0.07)) for _ in out]
    heap: list[tuple[float, int, int, int]] = []
    for b, block in enumerate(out):
        first = block.runs[0].trip.stops[0]
        heapq.heappush(heap, (first.departure - MIN_LAYOVER_S, b, 0, 0))
    while heap:
        t, b, r, j = heapq.heappop(heap)
        sim.driver = drivers[b]
        nxt = _step(sim, out[b], r, j, t)
        if nxt is not None:
            heapq.heappush(heap, (nxt[0], b, nxt[1], nxt[2]))
    return out


def _step(sim: _Day, block: Block, r: int, j: int, t: float) -> tuple[float, int, int] | None:
    """The bus of ``block`` arrives at stop ``j`` of run ``r`` at ``t``: dwell, depart,
    drive to the next stop. Returns the next (time, run, stop) or None at the end."""
    run = block.runs[r]
    stops = run.trip.stops
    s = stops[j]
    last = j == len(stops) - 1
    run.arrivals.append(t)
    natural = t + sim.dwell(s.stop_id, t, last)
    dep = natural if last else max(natural, s.departure)
    run.held.append(not last and natural < s.departure)
    run.departures.append(dep)
    if not last:
        sim.last_left[s.stop_id] = dep
        nxt = stops[j + 1]
        seg = (run.trip.route_id, direction_key(run.trip.direction_id), s.stop_id, nxt.stop_id)
        secs, share, wait = sim.travel(seg, max(nxt.dist_m - s.dist_m, 0.0), dep)
        run.waits.append((share, wait))
        return dep + secs, r, j + 1
    if r + 1 < len(block.runs):
        return t + MIN_LAYOVER_S, r + 1, 0  # at the next trip's first stop, ready
    return None


def observations(blocks: Sequence[Block]) -> tuple[list[Traversal], list[DwellObs]]:
    """What the tracker would have stored: segment traversals and dwells."""
    trav: list[Traversal] = []
    dwells: list[DwellObs] = []
    for block in blocks:
        for run in block.runs:
            tr = run.trip
            n = len(run.arrivals)
            for j in range(n):
                s = tr.stops[j]
                if 0 < j < len(tr.stops) - 1:
                    dwells.append(
                        DwellObs(
                            tr.route_id,
                            tr.direction_id,
                            s.stop_id,
                            run.arrivals[j],
                            run.departures[j] - run.arrivals[j],
                            run.held[j],
                        )
                    )
                if j + 1 < n:
                    b = tr.stops[j + 1]
                    trav.append(
                        Traversal(
                            tr.route_id,
                            tr.direction_id,
                            s.stop_id,
                            b.stop_id,
                            run.departures[j],
                            run.arrivals[j + 1] - run.departures[j],
                            b.arrival - s.departure,
                        )
                    )
    return trav, dwells


@dataclass(frozen=True)
class Network:
    """The routes to simulate: the schedule, which routes serve the city, stop positions."""

    schedule: Schedule
    routes: frozenset[str]
    stops: dict[str, tuple[float, float]]

    def trips_on(self, day: date) -> list[PlannedTrip]:
        """The city routes' trips running on ``day`` (by the feed's calendar, or its
        weekday pattern once the feed has expired)."""
        active = self.schedule.active_services(day)
        return [
            planned(p, day)
            for p in self.schedule.trips.values()
            if p.service_id in active and p.route_id in self.routes
        ]

    def seg_lengths(self) -> dict[SegKey, float]:
        """Metres per segment (for the route-average-speed fallback)."""
        out: dict[SegKey, float] = {}
        for p in self.schedule.trips.values():
            for seg, (a, b) in zip(_seg_keys(p), itertools.pairwise(p.stops), strict=True):
                out[seg] = b.dist_m - a.dist_m
        return out


@cache
def bundled_network(path: Path | None = None) -> Network:
    """The bundled GTFS-JP feed's routes that serve Maebashi (at least a quarter of their
    stops inside the city's town polygons)."""
    from shapely import Point
    from shapely.geometry import shape
    from shapely.ops import unary_union
    from shapely.prepared import prep

    from core.resources import default_gtfs, towns_geojson
    from mobility.gtfs.parser import read_feed
    from mobility.vehicles.schedule import schedule_from_feed

    schedule = schedule_from_feed(read_feed(path or default_gtfs()).tables)
    towns = json.loads(towns_geojson().read_text(encoding="utf-8"))["features"]
    city = prep(unary_union([shape(f["geometry"]) for f in towns]))
    by_route: dict[str, set[str]] = {}
    for p in schedule.trips.values():
        by_route.setdefault(p.route_id, set()).update(s.stop_id for s in p.stops)
    routes = set()
    for r, ids in by_route.items():
        inside = sum(city.contains(Point(schedule.stops[s][1], schedule.stops[s][0])) for s in ids)
        if inside / len(ids) >= SERVES_CITY_SHARE:
            routes.add(r)
    stops = {k: (v[0], v[1]) for k, v in schedule.stops.items()}
    return Network(schedule, frozenset(routes), stops)
