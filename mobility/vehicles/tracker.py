"""The vehicle state machine: one telemetry fix in, the vehicle's new state and its events
out. Pure (no I/O, no clock: time comes from the fixes and :meth:`Tracker.tick`).

Stop arrivals and departures follow TransitClock's idea: a stop "owns" the stretch from
``stop_radius_m`` before to ``stop_radius_m`` after it along the trip shape. A bus that
comes to rest in that stretch arrived when it stopped moving, extrapolated from the last
moving fix's speed and distance (not the time of the nearest fix); one that drives
through is timed where it crossed the stop, interpolated between the fixes around it.
Departure is decided once the bus has left the stretch, timed when it started to move.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from shapely import Point
from shapely.ops import substring

from core.geo import project
from mobility.vehicles.schedule import Schedule, StopOnTrip, TripPlan, service_day_epoch

Status = Literal["in_transit", "stopped_at", "off_route", "layover", "offline"]
EventType = Literal[
    "arrival", "departure", "off_route", "on_route", "overspeed", "offline", "online", "bunching"
]


@dataclass(frozen=True)
class TrackerConfig:
    """The tracker's thresholds, kept apart so a city can tune them without touching logic."""

    stop_radius_m: float = 50.0
    off_route_m: float = 60.0
    off_route_after_s: float = 30.0
    overspeed_mps: float = 50 / 3.6
    offline_after_s: float = 120.0
    bunching_share: float = 0.5
    at_rest_mps: float = 0.5
    infer_every_s: float = 30.0
    # A trip a bus claims is believed only when the bus is within this many seconds of
    # that trip's timetable where it is; further off, the tracker re-matches the bus or
    # shows it unassigned instead of reporting it hours late.
    assign_margin_s: float = 1800.0
    layover_wait_s: float = 7200.0  # a bus may sign on to its next trip this early


@dataclass(frozen=True)
class Fix:
    """One telemetry message, with ``ts`` as epoch seconds."""

    vehicle_id: str
    ts: float
    lat: float
    lon: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    mode: str | None = None
    trip_id: str | None = None
    route_id: str | None = None
    odometer_m: float | None = None
    passengers: int | None = None


@dataclass(frozen=True)
class Event:
    """Something a vehicle did, kept because boards, delay statistics and alerts need the
    moment it happened, not just the vehicle's latest state."""

    vehicle_id: str
    ts: float
    type: EventType
    trip_id: str | None = None
    route_id: str | None = None
    stop_id: str | None = None
    stop_sequence: int | None = None
    service_date: date | None = None
    scheduled_ts: float | None = None
    delay_s: float | None = None
    dwell_s: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VehicleState:
    """What a vehicle looks like now: the row the map, the boards and GTFS-RT publish."""

    vehicle_id: str
    ts: float
    lat: float
    lon: float
    speed_mps: float | None
    heading_deg: float | None
    mode: str | None
    status: Status
    trip_id: str | None = None
    route_id: str | None = None
    direction_id: int | None = None
    service_date: date | None = None
    dist_along_m: float | None = None
    offset_m: float | None = None
    next_stop_id: str | None = None
    next_stop_sequence: int | None = None
    delay_s: float | None = None


@dataclass
class _Trip:
    plan: TripPlan
    service_date: date
    day0: float  # epoch of the service day's midnight
    next_idx: int = 0
    arrived_at: float | None = None  # arrival time at stops[next_idx]
    rest_seen: bool = False
    depart_est: float | None = None
    cross_est: float | None = None
    done: bool = False


@dataclass
class _Vehicle:
    state: VehicleState
    trip: _Trip | None = None
    prev_ts: float | None = None
    prev_dist: float | None = None
    prev_speed: float = 0.0
    prev_at_rest: bool = False
    off_since: float | None = None
    off_reported: bool = False
    overspeeding: bool = False
    offline: bool = False
    last_infer: float = float("-inf")
    rejected_claim: str | None = None


class Tracker:
    """Keeps every vehicle's state; :meth:`process` one fix at a time, in any vehicle order."""

    def __init__(self, schedule: Schedule, config: TrackerConfig | None = None) -> None:
        self.schedule = schedule
        self.config = config or TrackerConfig()
        self.vehicles: dict[str, _Vehicle] = {}
        # (route_id, direction_id, stop_id) -> (vehicle, trip, departed, scheduled)
        self._last_departure: dict[tuple[str, int | None, str], tuple[str, str, float, float]] = {}

    # -- public -----------------------------------------------------------------------

    def state(self, vehicle_id: str) -> VehicleState | None:
        """The vehicle's latest state, or None for a vehicle never heard from."""
        v = self.vehicles.get(vehicle_id)
        return v.state if v else None

    def states(self) -> list[VehicleState]:
        """Every vehicle's latest state, so a snapshot can be written or published."""
        return [v.state for v in self.vehicles.values()]

    def tick(self, now: float) -> list[Event]:
        """Mark vehicles silent for ``offline_after_s`` as offline."""
        events: list[Event] = []
        for v in self.vehicles.values():
            if not v.offline and now - v.state.ts >= self.config.offline_after_s:
                v.offline = True
                v.state = replace(v.state, status="offline")
                events.append(
                    Event(
                        v.state.vehicle_id,
                        v.state.ts + self.config.offline_after_s,
                        "offline",
                        v.state.trip_id,
                        v.state.route_id,
                        detail={"last_seen": v.state.ts},
                    )
                )
        return events

    def process(self, fix: Fix) -> tuple[VehicleState, list[Event]]:
        """Fold one fix into its vehicle's state; the events are what the fix changed, so
        each is emitted once however often the bus reports."""
        v = self.vehicles.get(fix.vehicle_id)
        events: list[Event] = []
        if v is None:
            v = _Vehicle(
                VehicleState(
                    fix.vehicle_id, fix.ts, fix.lat, fix.lon, None, None, None, "in_transit"
                )
            )
            self.vehicles[fix.vehicle_id] = v
        elif v.prev_ts is not None and fix.ts <= v.prev_ts:
            return v.state, []  # duplicate or out of order: already accounted for
        if v.offline:
            v.offline = False
            events.append(Event(fix.vehicle_id, fix.ts, "online", fix.trip_id, fix.route_id))

        speed = fix.speed_mps
        x, y = project(fix.lat, fix.lon)
        self._match_trip(v, fix, x, y)
        trip = v.trip
        dist: float | None = None
        offset: float | None = None
        if trip is not None:
            dt = fix.ts - v.prev_ts if v.prev_ts is not None else 0.0
            dist, offset = self._locate(trip.plan, x, y, v.prev_dist, dt)
            if speed is None:
                speed = self._derived_speed(v, fix.ts, dist)
        speed = speed or 0.0
        at_rest = speed < self.config.at_rest_mps

        off_route = False
        if trip is not None and offset is not None:
            events.extend(self._track_off_route(v, trip, fix.ts, offset))
            off_route = v.off_reported
        events.extend(self._track_overspeed(v, fix, speed))

        if trip is not None and dist is not None and v.off_since is None:
            events.extend(self._stops(v, trip, fix.ts, dist, speed, at_rest))

        status, delay, next_stop = self._progress(trip, dist, fix.ts, at_rest, off_route)
        v.state = VehicleState(
            vehicle_id=fix.vehicle_id,
            ts=fix.ts,
            lat=fix.lat,
            lon=fix.lon,
            speed_mps=speed,
            heading_deg=fix.heading_deg,
            mode=fix.mode,
            status=status,
            trip_id=trip.plan.trip_id if trip else None,
            route_id=trip.plan.route_id if trip else fix.route_id,
            direction_id=trip.plan.direction_id if trip else None,
            service_date=trip.service_date if trip else None,
            dist_along_m=dist,
            offset_m=offset,
            next_stop_id=next_stop.stop_id if next_stop else None,
            next_stop_sequence=next_stop.sequence if next_stop else None,
            delay_s=delay,
        )
        v.prev_ts, v.prev_dist, v.prev_speed, v.prev_at_rest = fix.ts, dist, speed, at_rest
        return v.state, events

    def _track_off_route(self, v: _Vehicle, trip: _Trip, ts: float, offset: float) -> list[Event]:
        """Off route: far from the shape for long enough, reported once per episode (a
        single stray GPS fix is not a detour); back on route closes the episode."""
        cfg = self.config
        if offset > cfg.off_route_m:
            if v.off_since is None:
                v.off_since = ts
            if not v.off_reported and ts - v.off_since >= cfg.off_route_after_s:
                v.off_reported = True
                return [
                    self._event(
                        v,
                        trip,
                        ts,
                        "off_route",
                        episode_start=v.off_since,
                        offset_m=round(offset, 1),
                    )
                ]
            return []
        events: list[Event] = []
        if v.off_reported and v.off_since is not None:
            events.append(
                self._event(
                    v,
                    trip,
                    ts,
                    "on_route",
                    episode_start=v.off_since,
                    duration_s=ts - v.off_since,
                )
            )
        v.off_since, v.off_reported = None, False
        return events

    def _track_overspeed(self, v: _Vehicle, fix: Fix, speed: float) -> list[Event]:
        """Overspeed, with 1 m/s hysteresis so a bus hovering at the limit reports once."""
        cfg = self.config
        if speed > cfg.overspeed_mps and not v.overspeeding:
            v.overspeeding = True
            return [
                Event(
                    fix.vehicle_id,
                    fix.ts,
                    "overspeed",
                    fix.trip_id,
                    fix.route_id,
                    detail={"speed_mps": round(speed, 2), "limit_mps": cfg.overspeed_mps},
                )
            ]
        if speed < cfg.overspeed_mps - 1.0:
            v.overspeeding = False
        return []

    @staticmethod
    def _progress(
        trip: _Trip | None, dist: float | None, ts: float, at_rest: bool, off_route: bool
    ) -> tuple[Status, float | None, StopOnTrip | None]:
        """Status, delay and next stop as riders should read them: a bus waiting at its
        terminus or laying over after its trip is neither late nor early."""
        status: Status = "in_transit"
        delay: float | None = None
        next_stop: StopOnTrip | None = None
        if trip is not None and dist is not None:
            plan = trip.plan
            if trip.next_idx < len(plan.stops):
                next_stop = plan.stops[trip.next_idx]
            delay = ts - (trip.day0 + plan.scheduled_at(dist))
            if trip.done:
                delay = None  # laying over after the trip: no longer late or early on it
            if off_route:
                status = "off_route"
            elif trip.done or (trip.next_idx == 0 and at_rest and trip.arrived_at is not None):
                status = "layover"
            elif at_rest and trip.arrived_at is not None:
                status = "stopped_at"
            if trip.next_idx == 0 and delay is not None and delay < 0:
                delay = 0.0  # waiting at the terminus before departure is on time
        elif at_rest:
            status = "layover"
        return status, delay, next_stop

    # -- trip matching ----------------------------------------------------------------

    def _start_trip(self, v: _Vehicle, plan: TripPlan, day: date) -> None:
        v.trip = _Trip(plan, day, service_day_epoch(day))
        v.prev_dist = None
        v.off_since, v.off_reported = None, False

    def _match_trip(self, v: _Vehicle, fix: Fix, x: float, y: float) -> None:
        if fix.trip_id is not None:
            if v.trip is not None and v.trip.plan.trip_id == fix.trip_id:
                return
            recent = fix.ts - v.last_infer < self.config.infer_every_s
            if v.rejected_claim == fix.trip_id and recent:
                return  # an implausible claim is judged again at most every infer_every_s
            if fix.trip_id not in self.schedule.trips:
                v.trip = None  # not in the timetable: unassigned
                return
            claimed = self._claimed_trip(fix, x, y)
            if claimed is not None:
                v.rejected_claim = None
                self._start_trip(v, *claimed)
                return
            # Too far from its timetable: re-match the bus by where it is and
            # when, or show it unassigned, never hours late on the trip it named.
            v.rejected_claim = fix.trip_id
            if v.trip is not None and not v.trip.done and not v.off_reported:
                v.last_infer = fix.ts
                return
        elif (
            v.trip is not None and not v.trip.done and not v.off_reported
        ) or fix.ts - v.last_infer < self.config.infer_every_s:
            return
        v.last_infer = fix.ts
        best = self._infer(fix, x, y)
        if best is None:
            v.trip = None if fix.trip_id is not None else v.trip
        elif v.trip is None or best[0].trip_id != v.trip.plan.trip_id:
            self._start_trip(v, *best)

    def _claimed_trip(self, fix: Fix, x: float, y: float) -> tuple[TripPlan, date] | None:
        """The trip the bus names, on the service day that puts the bus within
        ``assign_margin_s`` of its timetable at this position (or waiting at the first
        stop for its departure, up to ``layover_wait_s``); None when it does not."""
        plan = self.schedule.trips.get(fix.trip_id or "")
        if plan is None:
            return None
        margin = self.config.assign_margin_s
        slack = max(margin, self.config.layover_wait_s)
        day = self.schedule.service_date_for(plan, fix.ts, slack_s=slack)
        if day is None:
            return None
        dist = float(plan.shape.project(Point(x, y)))
        dev = fix.ts - service_day_epoch(day) - plan.scheduled_at(dist)
        at_start = dist <= plan.stops[0].dist_m + self.config.stop_radius_m
        if at_start and -self.config.layover_wait_s <= dev <= margin:
            return plan, day
        return (plan, day) if abs(dev) <= margin else None

    def _infer(self, fix: Fix, x: float, y: float) -> tuple[TripPlan, date] | None:
        """The trip whose shape passes within off_route_m and whose timetable puts a bus
        here now with the smallest deviation."""
        p = Point(x, y)
        best: tuple[float, TripPlan, date] | None = None
        for plan in self.schedule.trips.values():
            if fix.route_id is not None and plan.route_id != fix.route_id:
                continue
            day = self.schedule.service_date_for(plan, fix.ts, slack_s=1800)
            if day is None or plan.shape.distance(p) > self.config.off_route_m:
                continue
            dist = float(plan.shape.project(p))
            dev = abs(fix.ts - service_day_epoch(day) - plan.scheduled_at(dist))
            if best is None or dev < best[0]:
                best = (dev, plan, day)
        return (best[1], best[2]) if best else None

    # -- geometry -----------------------------------------------------------------------

    @staticmethod
    def _locate(
        plan: TripPlan, x: float, y: float, prev: float | None, dt: float
    ) -> tuple[float, float]:
        """Distance along and offset from the shape; near the previous distance when the
        shape passes the same place twice (loops, out-and-back): a bus cannot have moved
        further than 30 m/s allows since its last fix."""
        p = Point(x, y)
        if prev is None:
            # A circular route starts and ends at one place: at the first stop, it starts.
            first = plan.stops[0]
            fx, fy = project(first.lat, first.lon)
            if (fx - x) ** 2 + (fy - y) ** 2 < 50.0**2:
                prev, dt = first.dist_m, 0.0
        d = float(plan.shape.project(p))
        reach = 100.0 + 30.0 * max(dt, 0.0)
        if prev is not None and not (prev - 100.0 <= d <= prev + reach):
            lo, hi = max(0.0, prev - 100.0), min(plan.length_m, prev + reach)
            window = substring(plan.shape, lo, hi)
            if window.length > 0:
                d = lo + float(window.project(p))
                return d, float(window.distance(p))
        return d, float(plan.shape.distance(p))

    @staticmethod
    def _derived_speed(v: _Vehicle, ts: float, dist: float) -> float:
        if v.prev_ts is None or v.prev_dist is None or ts <= v.prev_ts:
            return 0.0
        return max(0.0, (dist - v.prev_dist) / (ts - v.prev_ts))

    # -- stops --------------------------------------------------------------------------

    def _event(self, v: _Vehicle, trip: _Trip, ts: float, type_: EventType, **detail: Any) -> Event:
        return Event(
            v.state.vehicle_id,
            ts,
            type_,
            trip.plan.trip_id,
            trip.plan.route_id,
            service_date=trip.service_date,
            detail=detail,
        )

    def _stops(
        self, v: _Vehicle, trip: _Trip, ts: float, dist: float, speed: float, at_rest: bool
    ) -> list[Event]:
        cfg, plan = self.config, trip.plan
        events: list[Event] = []
        pts, pd = v.prev_ts, v.prev_dist
        while trip.next_idx < len(plan.stops):
            stop = plan.stops[trip.next_idx]
            s = stop.dist_m
            last = trip.next_idx == len(plan.stops) - 1
            if trip.arrived_at is None:
                if dist < s - cfg.stop_radius_m:
                    break
                if at_rest:
                    arrived = self._rest_arrival(v, trip, ts, dist, s)
                    trip.arrived_at, trip.rest_seen, trip.depart_est = arrived, True, None
                    events.append(self._stop_event(v, trip, "arrival", arrived))
                else:
                    if dist >= s and trip.cross_est is None:
                        trip.cross_est = self._crossing(ts, dist, pts, pd, s)
                    if dist <= s + cfg.stop_radius_m and not (last and dist >= s):
                        break
                    # Drove through the whole stretch without stopping.
                    crossed = trip.cross_est if trip.cross_est is not None else ts
                    trip.arrived_at = crossed
                    events.append(self._stop_event(v, trip, "arrival", crossed))
                    if last:
                        trip.done = True
                        trip.next_idx += 1
                        break
                    events.extend(self._departure(v, trip, crossed))
                    self._next_stop(trip)
                    continue
            # Arrived and rested: note when it started to move again.
            if at_rest:
                trip.depart_est = None
            elif trip.depart_est is None:
                trip.depart_est = ts
                if pts is not None and pd is not None and speed > 0:
                    trip.depart_est = min(ts, max(pts, ts - max(0.0, dist - pd) / speed))
            if last:
                trip.done = True  # arrival at the terminus ends the trip
                trip.next_idx += 1
                break
            if dist <= s + cfg.stop_radius_m:
                break
            events.extend(self._departure(v, trip, trip.depart_est or ts))
            self._next_stop(trip)
        return events

    def _rest_arrival(self, v: _Vehicle, trip: _Trip, ts: float, dist: float, s: float) -> float:
        """Came to rest in the stop's stretch: arrived when it stopped moving, extrapolated
        from the last moving fix, bounded by the two fixes (not the time of this fix,
        which may be long after the bus pulled in)."""
        pts, pd, pv = v.prev_ts, v.prev_dist, v.prev_speed
        if pts is not None and pd is not None and pv > 0 and not v.prev_at_rest:
            return min(ts, max(pts, pts + (dist - pd) / pv))
        if pts is not None and v.prev_at_rest and trip.cross_est is None:
            return pts if pd is not None and pd >= s - self.config.stop_radius_m else ts
        return ts

    @staticmethod
    def _next_stop(trip: _Trip) -> None:
        trip.next_idx += 1
        trip.arrived_at, trip.rest_seen, trip.depart_est, trip.cross_est = None, False, None, None

    @staticmethod
    def _crossing(ts: float, dist: float, pts: float | None, pd: float | None, s: float) -> float:
        """When the bus passed distance ``s``, interpolated between the last two fixes."""
        if pts is None or pd is None or dist <= pd or pd >= s:
            return ts
        return pts + (s - pd) / (dist - pd) * (ts - pts)

    def _stop_event(self, v: _Vehicle, trip: _Trip, type_: EventType, ts: float) -> Event:
        stop = trip.plan.stops[trip.next_idx]
        sched = trip.day0 + (stop.arrival_s if type_ == "arrival" else stop.departure_s)
        return Event(
            v.state.vehicle_id,
            ts,
            type_,
            trip.plan.trip_id,
            trip.plan.route_id,
            stop.stop_id,
            stop.sequence,
            trip.service_date,
            sched,
            ts - sched,
            None if type_ == "arrival" or trip.arrived_at is None else ts - trip.arrived_at,
        )

    def _departure(self, v: _Vehicle, trip: _Trip, departed: float) -> list[Event]:
        assert trip.arrived_at is not None
        departed = max(departed, trip.arrived_at)
        ev = self._stop_event(v, trip, "departure", departed)
        out = [ev]
        plan = trip.plan
        key = (plan.route_id, plan.direction_id, ev.stop_id or "")
        prev = self._last_departure.get(key)
        assert ev.scheduled_ts is not None
        if prev is not None and prev[0] != ev.vehicle_id and prev[1] != plan.trip_id:
            actual = departed - prev[2]
            scheduled = ev.scheduled_ts - prev[3]
            if scheduled > 0 and 0 <= actual < self.config.bunching_share * scheduled:
                out.append(
                    replace(
                        ev,
                        type="bunching",
                        dwell_s=None,
                        detail={
                            "leader_vehicle_id": prev[0],
                            "leader_trip_id": prev[1],
                            "headway_s": round(actual, 1),
                            "scheduled_headway_s": round(scheduled, 1),
                        },
                    )
                )
        if prev is None or departed >= prev[2]:
            self._last_departure[key] = (ev.vehicle_id, plan.trip_id, departed, ev.scheduled_ts)
        return out
