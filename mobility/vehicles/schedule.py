"""The timetable in the shape the tracker needs: per trip, its shape projected to metres
(EPSG:6677), each stop's distance along that shape and its scheduled times.

Built from plain rows (pure, testable from a parsed zip) or read from the current feed
version in the database (:func:`load_schedule`). Trips without a shape get a straight
line through their stops. GTFS times count from the service day's local midnight
(Japan has no daylight saving), so ``25:10:00`` is 01:10 the next morning.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import psycopg
from shapely import LineString, Point
from shapely.ops import substring

from core.geo import project, project_many

JST = timezone(timedelta(hours=9), "Asia/Tokyo")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class StopOnTrip:
    """A stop of a trip with its distance along the shape and its times."""

    stop_id: str
    sequence: int
    dist_m: float
    arrival_s: int
    departure_s: int
    lat: float
    lon: float


@dataclass
class TripPlan:
    """A trip projected onto its shape, so a fix maps to a distance and a scheduled time."""

    trip_id: str
    route_id: str
    service_id: str
    direction_id: int | None
    shape_id: str | None
    shape: LineString  # projected metres
    stops: tuple[StopOnTrip, ...]
    _dists: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._dists = [s.dist_m for s in self.stops]

    @property
    def start_s(self) -> int:
        """The departure from the first stop, in seconds of the service day."""
        return self.stops[0].departure_s

    @property
    def end_s(self) -> int:
        """The arrival at the last stop, in seconds of the service day."""
        return self.stops[-1].arrival_s

    @property
    def length_m(self) -> float:
        """The trip's length along its shape, in metres."""
        return float(self.shape.length)

    def scheduled_at(self, dist_m: float) -> float:
        """Scheduled seconds (service-day clock) for being at ``dist_m`` along the shape:
        linear between one stop's departure and the next stop's arrival."""
        stops, dists = self.stops, self._dists
        if dist_m <= dists[0]:
            return float(stops[0].departure_s)
        if dist_m >= dists[-1]:
            return float(stops[-1].arrival_s)
        i = bisect.bisect_right(dists, dist_m) - 1
        a, b = stops[i], stops[i + 1]
        span = b.dist_m - a.dist_m
        if span <= 0:
            return float(b.arrival_s)
        f = (dist_m - a.dist_m) / span
        return a.departure_s + f * (b.arrival_s - a.departure_s)


def service_day_epoch(d: date) -> float:
    """Epoch seconds of local midnight (JST) starting service day ``d``."""
    return datetime(d.year, d.month, d.day, tzinfo=JST).timestamp()


def local_date(epoch: float) -> date:
    """The service date in Japan time for an epoch."""
    return datetime.fromtimestamp(epoch, JST).date()


@dataclass
class Schedule:
    """The current feed's trips, stops and calendar in memory, so tracking does no queries."""

    version: int | None
    trips: dict[str, TripPlan]
    stops: dict[str, tuple[float, float, str | None]]  # stop_id -> (lat, lon, name)
    routes: dict[str, str]  # route_id -> agency_id
    calendar: dict[str, tuple[tuple[bool, ...], date, date]]
    exceptions: dict[tuple[str, date], int]
    _active_cache: dict[date, frozenset[str]] = field(default_factory=dict, repr=False)

    def active_services(self, d: date) -> frozenset[str]:
        """The services running on ``d`` (calendar plus exceptions), cached per day."""
        cached = self._active_cache.get(d)
        if cached is not None:
            return cached
        covered = any(start <= d <= end for _, start, end in self.calendar.values())
        # Outside every calendar range (an expired feed still in use): the weekday
        # pattern alone, so buses can still be matched to their timetable.
        active = {
            sid
            for sid, (days, start, end) in self.calendar.items()
            if (start <= d <= end or not covered) and days[d.weekday()]
        }
        for (sid, day), kind in self.exceptions.items():
            if day == d:
                if kind == 1:
                    active.add(sid)
                else:
                    active.discard(sid)
        out = frozenset(active)
        self._active_cache[d] = out
        return out

    def service_date_for(self, trip: TripPlan, epoch: float, slack_s: float = 3600) -> date | None:
        """The service day on which ``trip`` runs around ``epoch`` (today or, for trips past
        midnight, yesterday), or None when it does not run then."""
        today = local_date(epoch)
        best: tuple[float, date] | None = None
        for d in (today, today - timedelta(days=1)):
            if trip.service_id not in self.active_services(d):
                continue
            t = epoch - service_day_epoch(d)
            gap = max(trip.start_s - t, t - trip.end_s, 0.0)
            if gap <= slack_s and (best is None or gap < best[0]):
                best = (gap, d)
        return best[1] if best else None


def _stop_distances(line: LineString, points: Sequence[tuple[float, float]]) -> list[float]:
    """Distance along ``line`` of each stop, never going backwards (loops revisit roads)."""
    out: list[float] = []
    prev = 0.0
    for x, y in points:
        p = Point(x, y)
        d = float(line.project(p))
        if d < prev - 1.0:
            rest = substring(line, prev, line.length)
            d = prev + float(rest.project(p)) if rest.length > 0 else prev
        d = max(d, prev)
        out.append(d)
        prev = d
    return out


def _fill_times(times: list[int | None], dists: list[float]) -> list[int]:
    """Interpolate missing (non-timepoint) times by distance."""
    known = [i for i, t in enumerate(times) if t is not None]
    out: list[int] = []
    for i, t in enumerate(times):
        if t is not None:
            out.append(t)
            continue
        before = max((k for k in known if k < i), default=None)
        after = min((k for k in known if k > i), default=None)
        if before is None or after is None:
            raise ValueError("first and last stop of a trip need times")
        tb, ta = times[before], times[after]
        assert tb is not None and ta is not None
        span = dists[after] - dists[before]
        f = (dists[i] - dists[before]) / span if span > 0 else 0.0
        out.append(round(tb + f * (ta - tb)))
    return out


@dataclass(frozen=True)
class GtfsRows:
    """The GTFS rows a schedule is built from, whether read from the database or straight
    from a zip: dicts with GTFS column names (times in seconds: arrival_s, departure_s)."""

    trips: Iterable[Mapping[str, Any]]
    stop_times: Iterable[Mapping[str, Any]]
    shapes: Mapping[str, Sequence[tuple[float, float]]]
    stops: Mapping[str, tuple[float, float, str | None]]
    routes: Mapping[str, str]
    calendar: Iterable[Mapping[str, Any]] = ()
    calendar_dates: Iterable[Mapping[str, Any]] = ()


def build_schedule(gtfs: GtfsRows, version: int | None = None) -> Schedule:
    """The trips projected onto their shapes with every stop time filled in, so the
    tracker does pure arithmetic per fix."""
    trips, stop_times, shapes, stops = gtfs.trips, gtfs.stop_times, gtfs.shapes, gtfs.stops
    routes, calendar, calendar_dates = gtfs.routes, gtfs.calendar, gtfs.calendar_dates
    by_trip: dict[str, list[Mapping[str, Any]]] = {}
    for st in stop_times:
        by_trip.setdefault(st["trip_id"], []).append(st)
    projected: dict[str, LineString] = {}
    for shape_id, pts in shapes.items():
        if len(pts) >= 2:
            xs, ys = project_many([p[0] for p in pts], [p[1] for p in pts])
            projected[shape_id] = LineString(list(zip(xs, ys, strict=True)))
    plans: dict[str, TripPlan] = {}
    for t in trips:
        rows = sorted(by_trip.get(t["trip_id"], []), key=lambda r: r["stop_sequence"])
        if len(rows) < 2:
            continue
        coords = [stops[r["stop_id"]] for r in rows]
        pts = [project(lat, lon) for lat, lon, _ in coords]
        line = projected.get(t.get("shape_id") or "")
        if line is None:
            line = LineString(pts)
        dists = _stop_distances(line, pts)
        arr = _fill_times([r.get("arrival_s") for r in rows], dists)
        dep = _fill_times([r.get("departure_s") for r in rows], dists)
        plan_stops = tuple(
            StopOnTrip(r["stop_id"], int(r["stop_sequence"]), d, a, de, c[0], c[1])
            for r, d, a, de, c in zip(rows, dists, arr, dep, coords, strict=True)
        )
        plans[t["trip_id"]] = TripPlan(
            t["trip_id"],
            t["route_id"],
            t["service_id"],
            t.get("direction_id"),
            t.get("shape_id"),
            line,
            plan_stops,
        )
    cal = {
        c["service_id"]: (
            tuple(bool(c[d]) for d in _WEEKDAYS),
            c["start_date"],
            c["end_date"],
        )
        for c in calendar
    }
    exc = {(c["service_id"], c["date"]): int(c["exception_type"]) for c in calendar_dates}
    return Schedule(version, plans, dict(stops), dict(routes), cal, exc)


def _dicts(conn: psycopg.Connection, query: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return list(cur.execute(query))


def load_schedule(conn: psycopg.Connection) -> Schedule:
    """The current feed version's schedule (raises when no feed is imported)."""
    row = conn.execute("SELECT gtfs_current_version()").fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("no GTFS feed imported: run `mebuku gtfs import PATH.zip`")
    v = int(row[0])
    where = f"WHERE feed_version = {v}"
    shapes: dict[str, list[tuple[float, float]]] = {}
    for sid, lat, lon in conn.execute(
        f"SELECT shape_id, shape_pt_lat, shape_pt_lon FROM gtfs_shapes {where}"
        " ORDER BY shape_id, shape_pt_sequence"
    ):
        shapes.setdefault(sid, []).append((lat, lon))
    stops = {
        r[0]: (r[1], r[2], r[3])
        for r in conn.execute(
            f"SELECT stop_id, stop_lat, stop_lon, stop_name FROM gtfs_stops {where}"
            " AND stop_lat IS NOT NULL"
        )
    }
    routes = {
        r[0]: r[1] for r in conn.execute(f"SELECT route_id, agency_id FROM gtfs_routes {where}")
    }
    return build_schedule(
        GtfsRows(
            trips=_dicts(conn, f"SELECT * FROM gtfs_trips {where}"),
            stop_times=_dicts(conn, f"SELECT * FROM gtfs_stop_times {where}"),
            shapes=shapes,
            stops=stops,
            routes=routes,
            calendar=_dicts(conn, f"SELECT * FROM gtfs_calendar {where}"),
            calendar_dates=_dicts(conn, f"SELECT * FROM gtfs_calendar_dates {where}"),
        ),
        version=v,
    )


def schedule_from_feed(tables: Mapping[str, Any]) -> Schedule:
    """A schedule straight from a parsed zip (``ParsedFeed.tables``), no database."""

    def rows(name: str) -> list[dict[str, Any]]:
        t = tables.get(name)
        return [dict(zip(t.columns, r, strict=True)) for r in t.rows] if t else []

    shapes: dict[str, list[tuple[float, float]]] = {}
    for r in sorted(rows("shapes.txt"), key=lambda r: (r["shape_id"], r["shape_pt_sequence"])):
        shapes.setdefault(r["shape_id"], []).append((r["shape_pt_lat"], r["shape_pt_lon"]))
    return build_schedule(
        GtfsRows(
            trips=rows("trips.txt"),
            stop_times=rows("stop_times.txt"),
            shapes=shapes,
            stops={
                r["stop_id"]: (r["stop_lat"], r["stop_lon"], r["stop_name"])
                for r in rows("stops.txt")
            },
            routes={r["route_id"]: r["agency_id"] for r in rows("routes.txt")},
            calendar=rows("calendar.txt"),
            calendar_dates=rows("calendar_dates.txt"),
        )
    )


def utc(epoch: float) -> datetime:
    """An epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, UTC)
