"""Buses driving real paths: telemetry, events and the ground truth behind them.

Kinematics are deliberately simple but realistic: accelerate at 1 m/s^2 to cruise speed,
brake at 1.2 m/s^2 to stop exactly at each stop, dwell with the doors open, occasional
obstacle stops; autonomous shuttles also hand over to the safety driver (takeovers,
about 1.7 per km in a 2024 Maebashi trial) and city buses may leave their route for a
while (a detour), which is recorded as ground truth for off-route detection tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.geo import offset
from ingest.simulate.feed import TripPlan
from ingest.simulate.messages import SimMessage, dumps, rfc3339

ACCEL = 1.0
DECEL = 1.2
TAKEOVER_CAUSES = (
    ("parked_vehicle", 0.45),
    ("pedestrian", 0.15),
    ("signal", 0.1),
    ("right_turn", 0.15),
    ("obstacle", 0.1),
    ("other", 0.05),
)


@dataclass(frozen=True)
class StopVisit:
    """When a bus really stood at a stop, the truth arrival detection is tested against."""

    trip_id: str | None
    stop_id: str
    stop_sequence: int
    arrived: datetime
    departed: datetime


@dataclass(frozen=True)
class OffRouteEpisode:
    """A detour the bus really drove, the truth off-route detection is tested against."""

    start: datetime
    end: datetime
    max_offset_m: float


@dataclass
class VehicleTruth:
    """What really happened to one vehicle (for tests of arrival and off-route detection)."""

    vehicle_id: str
    visits: list[StopVisit] = field(default_factory=list)
    off_route: list[OffRouteEpisode] = field(default_factory=list)
    takeovers: int = 0
    obstacle_stops: int = 0
    distance_m: float = 0.0


@dataclass
class BusConfig:
    """How one simulated vehicle drives, so a test can make it late, detour or hand over."""

    vehicle_id: str
    plans: list[TripPlan]  # driven in turn, cyclically
    autonomous: bool = False
    cruise_mps: float = 9.0
    period_s: float = 1.0
    dwell_s: tuple[float, float] = (15.0, 40.0)
    layover_s: float = 120.0
    takeovers_per_km: float = 0.0
    obstacle_stops_per_km: float = 0.3
    off_route_per_trip: float = 0.0  # probability of one detour per trip
    off_route_m: float = 150.0
    capacity: int = 36
    # Timetable mode: plans carry scheduled times counted from ``day0`` (the service
    # day's local midnight). The bus never leaves a stop early, drives no faster than
    # traffic allows (``traffic``: a speed factor for the time of day), dwells longer at
    # ``busy_stops`` and now and then meets an incident; delays come out of that.
    day0: datetime | None = None
    cyclic: bool = True  # drive the plans in a loop (False: once, then stop reporting)
    start_stop: int = 0  # first plan: index of the next stop...
    start_m: float = 0.0  # ...and the distance along it where the bus starts
    traffic: Callable[[datetime], float] | None = None
    busy_stops: frozenset[str] = frozenset()
    incident_per_trip: float = 0.0


class BusSimulator:
    """Yields one vehicle's messages in time order from ``start``; ``truth`` fills as it runs.

    Nothing here waits for the wall clock: iterate as fast as you like (time warp).
    """

    def __init__(self, cfg: BusConfig, start: datetime, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.start = start
        self.rng = rng or random.Random(cfg.vehicle_id)
        self.truth = VehicleTruth(cfg.vehicle_id)

    def messages(self, until: datetime | None = None) -> Iterator[SimMessage]:
        """The vehicle's telemetry and events until ``until`` (None: forever), generated
        lazily so a day of traffic never has to sit in memory."""
        t = self.start
        seq = 0
        odometer = 0.0
        passengers = self.rng.randint(0, 8)
        soc = 95.0
        plan_i = 0
        vid = self.cfg.vehicle_id
        tele_topic = f"maebashi/bus/{vid}/telemetry"
        event_topic = f"maebashi/bus/{vid}/event"
        dt = timedelta(seconds=self.cfg.period_s)
        while until is None or t < until:
            if not self.cfg.cyclic and plan_i >= len(self.cfg.plans):
                return
            plan = self.cfg.plans[plan_i % len(self.cfg.plans)]
            first = plan_i == 0
            plan_i += 1
            d, v = (self.cfg.start_m, 0.0) if first else (0.0, 0.0)
            speed_noise = self.rng.uniform(0.85, 1.1) if self.cfg.day0 is not None else 1.0
            incident_at = self._incident(plan)
            detour = self._detour(plan)
            detour_seen: list[datetime] = []
            detour_max = 0.0
            mode = "autonomous" if self.cfg.autonomous else "manual"
            manual_until: datetime | None = None
            hold_until: datetime | None = None
            hold_reason = ""
            next_stop = self.cfg.start_stop if first else 0
            door_open = False
            while next_stop < len(plan.stops) and (until is None or t < until):
                stop = plan.stops[next_stop]
                remaining = stop.distance - d
                if hold_until is not None and t < hold_until:
                    v = 0.0
                elif hold_until is not None:
                    if hold_reason == "dwell":
                        self.truth.visits[-1] = _departed(self.truth.visits[-1], t)
                        door_open = False
                        next_stop += 1
                        yield self._event(event_topic, t, "door", None, {"open": False})
                    hold_until = None
                    continue
                elif remaining <= 0.5 and v < 0.5:
                    d, v = stop.distance, 0.0
                    self.truth.visits.append(
                        StopVisit(plan.trip_id, stop.stop.stop_id, stop.sequence, t, t)
                    )
                    hold = self._hold(plan, next_stop, t)
                    hold_until, hold_reason = t + timedelta(seconds=hold), "dwell"
                    door_open = True
                    passengers = max(
                        0, min(self.cfg.capacity, passengers + self.rng.randint(-4, 5))
                    )
                    yield self._event(
                        event_topic, t, "door", None, {"open": True, "stop_id": stop.stop.stop_id}
                    )
                else:
                    cruise = self._cruise(plan, next_stop, t, remaining) * speed_noise
                    v = self._speed_step(v, remaining, cruise)
                    step = min(v * self.cfg.period_s, max(remaining, 0.0))
                    d += step
                    odometer += step
                    self.truth.distance_m += step
                    soc = max(5.0, soc - step * 0.00005)
                    km = step / 1000
                    incident_at, obstacle_s = self._obstacle(incident_at, d, km, remaining)
                    if obstacle_s is not None:
                        hold_until = t + timedelta(seconds=obstacle_s)
                        hold_reason = "obstacle"
                        v = 0.0
                        self.truth.obstacle_stops += 1
                        yield self._event(event_topic, t, "obstacle_stop", "obstacle", None)
                    if (
                        self.cfg.autonomous
                        and manual_until is None
                        and self.rng.random() < km * self.cfg.takeovers_per_km
                    ):
                        cause = self.rng.choices(
                            [c for c, _ in TAKEOVER_CAUSES], [w for _, w in TAKEOVER_CAUSES]
                        )[0]
                        manual_until = t + timedelta(seconds=self.rng.uniform(10, 40))
                        mode = "manual"
                        self.truth.takeovers += 1
                        yield self._event(event_topic, t, "takeover", cause, {"speed_mps": v})
                if manual_until is not None and t >= manual_until:
                    manual_until, mode = None, "autonomous"
                    yield self._event(event_topic, t, "mode_change", None, {"mode": mode})
                lat, lon, heading = plan.path.at(d)
                off = detour(d) if detour else 0.0
                if off > 0:
                    lat, lon = offset(lat, lon, (heading + 90) % 360, off)
                    detour_seen.append(t)
                    detour_max = max(detour_max, off)
                seq += 1
                yield SimMessage(
                    t,
                    tele_topic,
                    dumps(
                        {
                            "ts": rfc3339(t),
                            "seq": seq,
                            "lat": round(lat, 7),
                            "lon": round(lon, 7),
                            "speed_mps": round(v, 2),
                            "heading_deg": round(heading, 1) % 360,
                            "odometer_m": round(odometer, 1),
                            "mode": mode,
                            "door_open": door_open,
                            "passengers": passengers,
                            "trip_id": plan.trip_id,
                            "route_id": plan.route_id,
                            "soc_pct": round(soc, 1),
                        }
                    ),
                    "telemetry",
                )
                t += dt
            if detour_seen:
                self.truth.off_route.append(
                    OffRouteEpisode(detour_seen[0], detour_seen[-1], round(detour_max, 1))
                )

    def _speed_step(self, v: float, remaining: float, cruise: float) -> float:
        """Speed after one period: accelerate towards cruise, and brake in time to come to
        rest exactly at the stop (creeping the last metres rather than stopping short)."""
        period = self.cfg.period_s
        brake = v * v / (2 * DECEL)
        target = 0.0 if remaining <= brake + v * period else cruise
        if target > v:
            return min(target, v + ACCEL * period)
        return max(0.5 if remaining > 0.5 else 0.0, v - DECEL * period)

    def _hold(self, plan: TripPlan, i: int, t: datetime) -> float:
        """Seconds at stop ``i``: layover at the end, else a dwell, longer at busy stops and
        in the rush hours; in timetable mode never before the scheduled departure."""
        cfg = self.cfg
        if i == len(plan.stops) - 1:
            return cfg.layover_s if cfg.day0 is None else min(cfg.layover_s, 30.0)
        dwell = self.rng.uniform(*cfg.dwell_s)
        if plan.stops[i].stop.stop_id in cfg.busy_stops:
            dwell *= 2.0
        if cfg.traffic is not None and cfg.traffic(t) < 0.8:  # rush hours
            dwell *= 1.4  # crowded in the rush hours
        if cfg.day0 is not None and plan.times is not None:
            scheduled = cfg.day0 + timedelta(seconds=plan.times[i][1])
            dwell = max(dwell, (scheduled - t).total_seconds())
        return dwell

    def _cruise(self, plan: TripPlan, i: int, t: datetime, remaining: float) -> float:
        """Speed to aim for on the way to stop ``i``: what traffic allows, or less when
        the bus would otherwise arrive before the timetable says."""
        cfg = self.cfg
        cap = cfg.cruise_mps * (cfg.traffic(t) if cfg.traffic is not None else 1.0)
        if cfg.day0 is None or plan.times is None:
            return cap
        due = (cfg.day0 + timedelta(seconds=plan.times[i][0]) - t).total_seconds()
        if due <= 0:
            return cap
        return max(2.5, min(cap, 1.15 * remaining / due))

    def _obstacle(
        self, incident_at: float | None, d: float, km: float, remaining: float
    ) -> tuple[float | None, float | None]:
        """Whether the bus has to stop for something in the road on this step: the trip's
        incident once it reaches it (a long hold), else now and then a short obstacle.
        Returns the incident still ahead and the seconds to hold, None to drive on."""
        if incident_at is not None and d >= incident_at:
            return None, self.rng.uniform(60, 240)
        if self.rng.random() < km * self.cfg.obstacle_stops_per_km and remaining > 30:
            return incident_at, self.rng.uniform(5, 20)
        return incident_at, None

    def _incident(self, plan: TripPlan) -> float | None:
        """Where on this trip an incident (a breakdown ahead, an accident) holds the bus."""
        if self.cfg.incident_per_trip <= 0 or len(plan.stops) < 2:
            return None
        if self.rng.random() >= self.cfg.incident_per_trip:
            return None
        return self.rng.uniform(plan.stops[0].distance, plan.stops[-1].distance)

    def _detour(self, plan: TripPlan) -> Callable[[float], float] | None:
        if self.rng.random() >= self.cfg.off_route_per_trip or len(plan.stops) < 3:
            return None
        i = self.rng.randrange(0, len(plan.stops) - 1)
        a, b = plan.stops[i].distance, plan.stops[i + 1].distance
        if b - a < 200:
            return None
        lo, hi, peak = a + 50, b - 50, self.cfg.off_route_m

        def off(d: float) -> float:
            if not lo < d < hi:
                return 0.0
            ramp = min(d - lo, hi - d)
            return min(peak, ramp)  # 45-degree ramps out and back

        return off

    def _event(
        self,
        topic: str,
        t: datetime,
        etype: str,
        cause: str | None,
        detail: dict[str, object] | None,
    ) -> SimMessage:
        body: dict[str, object] = {"ts": rfc3339(t), "type": etype}
        if cause:
            body["cause"] = cause
        if detail:
            body["detail"] = detail
        return SimMessage(t, topic, dumps(body), "event")


def _departed(v: StopVisit, t: datetime) -> StopVisit:
    return StopVisit(v.trip_id, v.stop_id, v.stop_sequence, v.arrived, t)
