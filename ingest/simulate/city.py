"""The whole simulated city: shuttles, city buses, phones and sensors, merged in time order."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.i18n import cli_gettext as _
from ingest.simulate.boundary import city_contains, city_routes
from ingest.simulate.bus import BusConfig, BusSimulator
from ingest.simulate.faults import Faults, inject
from ingest.simulate.feed import DEFAULT_GTFS, Feed, TripPlan, reversed_plan
from ingest.simulate.fiveg import (
    SENSOR,
    SITES,
    device_status,
    fixed_phone,
    phone_on_bus,
    senml_sensor,
)
from ingest.simulate.messages import SimMessage
from ingest.simulate.timetable import (
    JST,
    MIN_LAYOVER_S,
    build_blocks,
    busy_stops,
    in_service,
    next_departure,
    traffic_factor,
)


@dataclass
class CityConfig:
    """How big and how faulty the simulated city is, so a demo, a test and a load
    benchmark can each ask for the city they need."""

    shuttles: int = 2
    buses: int = 6
    phones_per_bus: int = 1
    fixed_phones_per_site: int = 2
    sensors_per_site: int = 1
    telemetry_period_s: float = 1.0
    radio_period_s: float = 5.0
    senml_period_s: float = 60.0
    status_period_s: float = 60.0  # heartbeats of every 5G device (issue 12)
    off_route_per_trip: float = 0.1
    faults: Faults = field(default_factory=Faults)
    seed: int = 1
    gtfs_path: Path = DEFAULT_GTFS
    # Timetable mode (what `mebuku simulate` does): city buses run the trips that are in
    # service at the start time, by the feed's calendar, on the routes that serve
    # Maebashi (all routes with all_routes). Off: each bus loops one route from `start`.
    timetable: bool = False
    all_routes: bool = False
    incident_per_trip: float = 0.03


class City:
    """Builds the simulators; ``buses`` keeps each BusSimulator for its ground truth."""

    def __init__(self, cfg: CityConfig, start: datetime) -> None:
        self.cfg = cfg
        self.start = start
        self.rng = random.Random(cfg.seed)
        feed = Feed.load(cfg.gtfs_path)
        corridor = feed.corridor()
        plans = feed.trip_plans()
        self.buses: list[BusSimulator] = []
        for i in range(cfg.shuttles):
            self.buses.append(
                BusSimulator(
                    BusConfig(
                        f"av-{i + 1:02d}",
                        [corridor, reversed_plan(corridor)]
                        if i % 2 == 0
                        else [reversed_plan(corridor), corridor],
                        autonomous=True,
                        cruise_mps=19 / 3.6,
                        period_s=cfg.telemetry_period_s,
                        layover_s=180.0,
                        takeovers_per_km=1.7,
                        obstacle_stops_per_km=0.5,
                        capacity=36,
                    ),
                    start,
                    random.Random(cfg.seed * 1000 + i),
                )
            )
        self.notes: list[str] = []
        if cfg.timetable:
            self._timetable_buses(feed)
            return
        for i in range(cfg.buses):
            plan = plans[i % len(plans)] if plans else corridor
            self.buses.append(
                BusSimulator(
                    BusConfig(
                        f"bus-{i + 1:03d}",
                        self._round_trip(plan, plans),
                        cruise_mps=self.rng.uniform(8.5, 11.5),
                        period_s=cfg.telemetry_period_s,
                        off_route_per_trip=cfg.off_route_per_trip,
                        capacity=60,
                    ),
                    start,
                    random.Random(cfg.seed * 2000 + i),
                )
            )

    def _timetable_buses(self, feed: Feed) -> None:
        """One bus per vehicle block running now or later today, placed where its
        timetable (minus a small random delay) puts it."""
        cfg, start = self.cfg, self.start
        local = start.astimezone(JST)
        feed_day, note = feed.service_day(local.date())
        if note:
            self.notes.append(note)
        routes = None
        if not cfg.all_routes:
            routes = city_routes(feed.route_share_inside(city_contains()))
        plans = feed.timetable_plans(feed.active_services(feed_day), routes)
        blocks = build_blocks(plans)
        day0 = datetime(local.year, local.month, local.day, tzinfo=JST)
        tod = (start - day0).total_seconds()
        running = in_service(blocks, tod, cfg.buses)
        later = sorted(
            (b for b in blocks if b.trips[0].start_s - MIN_LAYOVER_S > tod),
            key=lambda b: b.trips[0].start_s,
        )
        chosen = [*running, *((b, 0) for b in later)][: cfg.buses]
        if not running:
            nxt = next_departure(blocks, tod)
            when = f"{nxt // 3600:02d}:{nxt % 3600 // 60:02d}" if nxt is not None else _("tomorrow")
            self.notes.append(
                _(
                    "no bus of the simulated routes is in service at {time} JST; "
                    "the next departure is at {when}"
                ).format(time=f"{local:%H:%M}", when=when)
            )
        busy = busy_stops([s for seq in feed.stop_times.values() for _, s in seq])
        for k, (block, i) in enumerate(chosen):
            rng = random.Random(cfg.seed * 2000 + k)
            trips = block.trips[i:]
            first = trips[0]
            if i == 0 and first.start_s - MIN_LAYOVER_S > tod:
                begin = day0 + timedelta(seconds=first.start_s - MIN_LAYOVER_S)
                d0, idx = first.stops[0].distance, 0
            else:
                begin = start
                delay0 = min(420.0, max(-20.0, rng.gauss(60, 90)))
                d0, idx = first.scheduled_distance(tod - delay0)
            self.buses.append(
                BusSimulator(
                    BusConfig(
                        f"bus-{k + 1:03d}",
                        trips,
                        cruise_mps=rng.uniform(10.0, 12.5),
                        period_s=cfg.telemetry_period_s,
                        off_route_per_trip=cfg.off_route_per_trip,
                        capacity=60,
                        day0=day0,
                        cyclic=False,
                        start_stop=idx,
                        start_m=d0,
                        traffic=traffic_factor,
                        busy_stops=busy,
                        incident_per_trip=cfg.incident_per_trip,
                    ),
                    begin,
                    rng,
                )
            )

    @staticmethod
    def _round_trip(plan: TripPlan, plans: list[TripPlan]) -> list[TripPlan]:
        back = [
            p
            for p in plans
            if p.route_id == plan.route_id
            and p is not plan
            and p.stops[0].stop.stop_id == plan.stops[-1].stop.stop_id
        ]
        return [plan, back[0]] if back else [plan, reversed_plan(plan)]

    def streams(self, until: datetime | None = None) -> list[Iterator[SimMessage]]:
        """Each device's own stream in time order, kept apart so :meth:`messages` can merge
        them by time (each seeded on its own, so adding a device changes no other)."""
        cfg = self.cfg
        out: list[Iterator[SimMessage]] = []
        for b in self.buses:
            it = b.messages(until)
            for p in range(cfg.phones_per_bus):
                it = phone_on_bus(
                    it,
                    f"phone-{b.cfg.vehicle_id}-{p + 1}",
                    cfg.radio_period_s,
                    random.Random(f"{cfg.seed}{b.cfg.vehicle_id}{p}"),
                )
            out.append(it)
        for s in SITES:
            for k in range(cfg.fixed_phones_per_site):
                out.append(
                    fixed_phone(
                        s,
                        f"phone-{s.site_id}-{k + 1}",
                        self.start,
                        cfg.radio_period_s,
                        random.Random(f"{cfg.seed}{s.site_id}{k}"),
                        until,
                    )
                )
            for k in range(cfg.sensors_per_site):
                out.append(
                    senml_sensor(
                        s,
                        f"wx-{s.site_id}-{k + 1}",
                        self.start,
                        cfg.senml_period_s,
                        random.Random(f"{cfg.seed}wx{s.site_id}{k}"),
                        until,
                    )
                )
        return out

    def heartbeats(self, until: datetime | None = None) -> list[Iterator[SimMessage]]:
        """A status stream for every simulated 5G device. A phone riding a bus reports
        under maebashi-station, the transport site where the buses start and end."""
        cfg = self.cfg
        out: list[Iterator[SimMessage]] = []

        def beats(site_index: int, device: str, **kw: Any) -> None:
            rng = random.Random(f"{cfg.seed}status{device}")
            site = SITES[site_index]
            out.append(
                device_status(site, device, self.start, cfg.status_period_s, rng, until, **kw)
            )

        for b in self.buses:
            for p in range(cfg.phones_per_bus):
                beats(0, f"phone-{b.cfg.vehicle_id}-{p + 1}")
        for i, s in enumerate(SITES):
            for k in range(cfg.fixed_phones_per_site):
                beats(i, f"phone-{s.site_id}-{k + 1}")
            for k in range(cfg.sensors_per_site):
                beats(i, f"wx-{s.site_id}-{k + 1}", hardware=SENSOR)
        return out

    def messages(self, until: datetime | None = None) -> Iterator[SimMessage]:
        """Every stream merged by simulated time, with the configured faults.

        Heartbeats join after fault injection, so adding them left the faults of the other
        streams (which message is corrupted, held back or sent twice) as they were.
        """
        merged = heapq.merge(*self.streams(until), key=lambda m: m.ts)
        faulty = inject(merged, self.cfg.faults, random.Random(self.cfg.seed + 7))
        if self.cfg.status_period_s <= 0:
            return faulty
        return heapq.merge(faulty, *self.heartbeats(until), key=lambda m: m.ts)
