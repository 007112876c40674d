"""Routes to drive, read straight from the GTFS-JP zip (csv + utf-8-sig).

Deliberately independent of the mobility package's tables: the simulator must run
before (or without) a GTFS import.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from core.geo import distance_m
from core.i18n import N_
from core.i18n import cli_gettext as _
from core.resources import default_gtfs
from ingest.simulate.geo import Polyline

DEFAULT_GTFS = default_gtfs()
MAEBASHI_STATION = "g035_01"
CHUO_MAEBASHI = "m003_01"

# The weekday of a simulated day, as the simulator's note names it (same for both dates).
WEEKDAYS = (
    N_("Monday"),
    N_("Tuesday"),
    N_("Wednesday"),
    N_("Thursday"),
    N_("Friday"),
    N_("Saturday"),
    N_("Sunday"),
)


@dataclass(frozen=True)
class Stop:
    """A bus stop with its name, so simulated buses stop where the real ones do."""

    stop_id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class StopOnPath:
    """A stop placed along a path, so a bus knows where to brake for it."""

    stop: Stop
    sequence: int
    distance: float  # metres along the path


@dataclass(frozen=True)
class TripPlan:
    """A path to drive and the stops on it (GTFS trip, or the shuttle corridor).

    ``times`` (timetable mode) are each stop's scheduled (arrival, departure) in seconds
    from the service day's local midnight, aligned with ``stops``.
    """

    trip_id: str | None
    route_id: str | None
    path: Polyline
    stops: tuple[StopOnPath, ...]
    times: tuple[tuple[int, int], ...] | None = None
    direction_id: int | None = None

    @property
    def start_s(self) -> int:
        """When the trip leaves its first stop (timetable mode), to know when to start it."""
        assert self.times is not None
        return self.times[0][1]

    @property
    def end_s(self) -> int:
        """When the trip reaches its last stop (timetable mode), to know when it is over."""
        assert self.times is not None
        return self.times[-1][0]

    def scheduled_distance(self, tod: float) -> tuple[float, int]:
        """(metres along, index of the next stop not yet left) where the timetable puts
        the bus at ``tod`` seconds after midnight."""
        assert self.times is not None
        for i, (arr, dep) in enumerate(self.times):
            if tod < arr:
                if i == 0:
                    return self.stops[0].distance, 0
                prev_dep = self.times[i - 1][1]
                a, b = self.stops[i - 1].distance, self.stops[i].distance
                f = 0.0 if arr <= prev_dep else (tod - prev_dep) / (arr - prev_dep)
                return a + max(0.0, min(1.0, f)) * (b - a), i
            if tod < dep:
                return self.stops[i].distance, i
        return self.stops[-1].distance, len(self.stops) - 1


def _rows(z: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with z.open(name) as f:
        return list(csv.DictReader(io.TextIOWrapper(f, "utf-8-sig")))


def _gtfs_seconds(text: str) -> int | None:
    if not text:
        return None
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s


def _gtfs_date(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


@dataclass
class Feed:
    """The parts of a GTFS-JP zip the simulators need, read without the database so the
    simulator runs anywhere the zip is."""

    stops: dict[str, Stop]
    shapes: dict[str, list[tuple[float, float]]]
    trips: list[dict[str, str]]
    stop_times: dict[str, list[tuple[int, str]]]
    # trip -> [(arrival_s, departure_s)] aligned with stop_times[trip]
    times: dict[str, list[tuple[int | None, int | None]]] = field(default_factory=dict)
    # service_id -> (weekday flags Mon..Sun, start, end)
    calendar: dict[str, tuple[tuple[bool, ...], date, date]] = field(default_factory=dict)
    exceptions: dict[tuple[str, date], int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_GTFS) -> Feed:
        """Read the zip at ``path`` (default: the bundled Maebashi feed)."""
        with zipfile.ZipFile(path) as z:
            stops = {
                r["stop_id"]: Stop(
                    r["stop_id"], r["stop_name"], float(r["stop_lat"]), float(r["stop_lon"])
                )
                for r in _rows(z, "stops.txt")
            }
            pts: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
            for r in _rows(z, "shapes.txt"):
                pts[r["shape_id"]].append(
                    (
                        int(r["shape_pt_sequence"]),
                        float(r["shape_pt_lat"]),
                        float(r["shape_pt_lon"]),
                    )
                )
            shapes = {k: [(a, b) for _, a, b in sorted(v)] for k, v in pts.items()}
            st: dict[str, list[tuple[int, str, int | None, int | None]]] = defaultdict(list)
            for r in _rows(z, "stop_times.txt"):
                st[r["trip_id"]].append(
                    (
                        int(r["stop_sequence"]),
                        r["stop_id"],
                        _gtfs_seconds(r.get("arrival_time", "")),
                        _gtfs_seconds(r.get("departure_time", "")),
                    )
                )
            trips = _rows(z, "trips.txt")
            names = set(z.namelist())
            calendar = {
                r["service_id"]: (
                    tuple(
                        r[d] == "1"
                        for d in (
                            "monday",
                            "tuesday",
                            "wednesday",
                            "thursday",
                            "friday",
                            "saturday",
                            "sunday",
                        )
                    ),
                    _gtfs_date(r["start_date"]),
                    _gtfs_date(r["end_date"]),
                )
                for r in (_rows(z, "calendar.txt") if "calendar.txt" in names else [])
            }
            exceptions = {
                (r["service_id"], _gtfs_date(r["date"])): int(r["exception_type"])
                for r in (_rows(z, "calendar_dates.txt") if "calendar_dates.txt" in names else [])
            }
        ordered = {k: sorted(v) for k, v in st.items()}
        return cls(
            stops,
            shapes,
            trips,
            {k: [(n, sid) for n, sid, _, _ in v] for k, v in ordered.items()},
            {k: [(a, d) for _, _, a, d in v] for k, v in ordered.items()},
            calendar,
            exceptions,
        )

    def active_services(self, d: date) -> set[str]:
        """Service ids running on ``d`` by calendar and calendar_dates."""
        active = {
            sid
            for sid, (days, start, end) in self.calendar.items()
            if start <= d <= end and days[d.weekday()]
        }
        for (sid, day), kind in self.exceptions.items():
            if day == d:
                (active.add if kind == 1 else active.discard)(sid)
        return active

    def service_day(self, today: date) -> tuple[date, str | None]:
        """The feed day whose timetable runs ``today``: today itself while the feed is
        valid, else the same weekday in the feed's last (or, before it starts, first)
        valid week, with a one-line note saying so."""
        if not self.calendar:
            return today, None
        first = min(start for _, start, _ in self.calendar.values())
        last = max(end for _, _, end in self.calendar.values())
        if first <= today <= last:
            return today, None
        if today > last:
            mapped = last - timedelta(days=(last.weekday() - today.weekday()) % 7)
            why = _("the GTFS feed ended on {day}").format(day=last.isoformat())
        else:
            mapped = first + timedelta(days=(today.weekday() - first.weekday()) % 7)
            why = _("the GTFS feed starts on {day}").format(day=first.isoformat())
        note = _(
            "{why}: simulating {today} ({weekday}) with the timetable of {mapped} ({weekday})"
        ).format(
            why=why,
            today=today.isoformat(),
            mapped=mapped.isoformat(),
            weekday=_(WEEKDAYS[today.weekday()]),
        )
        return mapped, note

    def trip_plans(self, max_stop_offset_m: float = 80.0) -> list[TripPlan]:
        """One plan per distinct (shape, stop pattern); stops placed in order along the shape."""
        seen: set[tuple[str, tuple[str, ...]]] = set()
        plans = []
        for t in self.trips:
            shape = self.shapes.get(t.get("shape_id", ""))
            seq = self.stop_times.get(t["trip_id"], [])
            key = (t.get("shape_id", ""), tuple(s for _, s in seq))
            if not shape or len(seq) < 2 or key in seen:
                continue
            seen.add(key)
            path = Polyline.of(shape)
            on_path, after = [], 0.0
            for n, sid in seq:
                s = self.stops[sid]
                along, off = path.locate(s.lat, s.lon, after)
                if off > max_stop_offset_m:
                    continue
                on_path.append(StopOnPath(s, n, along))
                after = along
            if len(on_path) >= 2:
                plans.append(TripPlan(t["trip_id"], t["route_id"], path, tuple(on_path)))
        return plans

    def route_share_inside(self, inside: Callable[[float, float], bool]) -> dict[str, float]:
        """Per route, the share of its distinct stops for which ``inside(lat, lon)``."""
        by_route: dict[str, set[str]] = defaultdict(set)
        route_of = {t["trip_id"]: t["route_id"] for t in self.trips}
        for trip_id, seq in self.stop_times.items():
            if trip_id in route_of:
                by_route[route_of[trip_id]].update(s for _, s in seq)
        return {
            r: sum(inside(self.stops[s].lat, self.stops[s].lon) for s in ss) / len(ss)
            for r, ss in by_route.items()
            if ss
        }

    def timetable_plans(
        self, services: set[str], routes: set[str] | None = None, max_stop_offset_m: float = 80.0
    ) -> list[TripPlan]:
        """One plan per trip running on ``services`` (optionally only ``routes``), with its
        scheduled times, ordered by departure."""
        paths: dict[str, Polyline] = {}
        placed: dict[tuple[str, tuple[str, ...]], list[tuple[int, StopOnPath]]] = {}
        plans: list[TripPlan] = []
        for t in self.trips:
            if t["service_id"] not in services or (
                routes is not None and t["route_id"] not in routes
            ):
                continue
            shape_id = t.get("shape_id", "")
            shape = self.shapes.get(shape_id)
            seq = self.stop_times.get(t["trip_id"], [])
            times = self.times.get(t["trip_id"], [])
            if not shape or len(seq) < 2:
                continue
            path = paths.get(shape_id) or paths.setdefault(shape_id, Polyline.of(shape))
            key = (shape_id, tuple(s for _, s in seq))
            if key not in placed:
                out, after = [], 0.0
                for i, (n, sid) in enumerate(seq):
                    s = self.stops[sid]
                    along, off = path.locate(s.lat, s.lon, after)
                    if off <= max_stop_offset_m:
                        out.append((i, StopOnPath(s, n, along)))
                        after = along
                placed[key] = out
            on_path = placed[key]
            sched = _filled([times[i] for i, _ in on_path], [p.distance for _, p in on_path])
            if len(on_path) < 2 or sched is None:
                continue
            direction = t.get("direction_id", "")
            plans.append(
                TripPlan(
                    t["trip_id"],
                    t["route_id"],
                    path,
                    tuple(p for _, p in on_path),
                    tuple(sched),
                    int(direction) if direction.isdigit() else None,
                )
            )
        return sorted(plans, key=lambda p: p.start_s)

    def corridor(self, a: str = MAEBASHI_STATION, b: str = CHUO_MAEBASHI) -> TripPlan:
        """The shuttle path from stop a to stop b, cut from the shape that passes both."""
        sa, sb = self.stops[a], self.stops[b]
        best: tuple[float, list[tuple[float, float]]] | None = None
        for pts in self.shapes.values():
            ia = min(range(len(pts)), key=lambda i: distance_m(*pts[i], sa.lat, sa.lon))
            ib = min(range(len(pts)), key=lambda i: distance_m(*pts[i], sb.lat, sb.lon))
            if ia >= ib:
                continue
            err = distance_m(*pts[ia], sa.lat, sa.lon) + distance_m(*pts[ib], sb.lat, sb.lon)
            if best is None or err < best[0]:
                best = (err, pts[ia : ib + 1])
        seg = [(sa.lat, sa.lon), (sb.lat, sb.lon)]
        if best is not None and best[0] < 150:
            seg = [(sa.lat, sa.lon), *best[1], (sb.lat, sb.lon)]
        path = Polyline.of(seg)
        return TripPlan(
            None, "shuttle", path, (StopOnPath(sa, 1, 0.0), StopOnPath(sb, 2, path.length))
        )


def _filled(
    times: list[tuple[int | None, int | None]], dists: list[float]
) -> list[tuple[int, int]] | None:
    """Times for every stop: missing ones interpolated by distance; None if the first or
    last stop has no time."""
    arr = [a if a is not None else d for a, d in times]
    dep = [d if d is not None else a for a, d in times]
    known = [i for i, v in enumerate(arr) if v is not None]
    if not known or known[0] != 0 or known[-1] != len(arr) - 1:
        return None
    out: list[tuple[int, int]] = []
    for i in range(len(arr)):
        a, d = arr[i], dep[i]
        if a is None or d is None:
            lo = max(k for k in known if k < i)
            hi = min(k for k in known if k > i)
            t_lo, t_hi = dep[lo], arr[hi]
            assert t_lo is not None and t_hi is not None
            span = dists[hi] - dists[lo]
            f = (dists[i] - dists[lo]) / span if span > 0 else 0.0
            a = d = round(t_lo + f * (t_hi - t_lo))
        out.append((a, d))
    return out


def reversed_plan(plan: TripPlan) -> TripPlan:
    """The same path driven the other way, for a route whose feed has no return trip."""
    path = Polyline.of(list(reversed(plan.path.points)))
    stops = tuple(
        StopOnPath(s.stop, i, path.length - s.distance)
        for i, s in enumerate(reversed(plan.stops), start=1)
    )
    return TripPlan(plan.trip_id, plan.route_id, path, stops)
