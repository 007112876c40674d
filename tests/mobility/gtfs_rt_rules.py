"""The MobilityData GTFS-Realtime validator's rules that apply to our feeds, as a checker.

Rule ids and meanings follow the validator's RULES.md (MobilityData/gtfs-realtime-validator).
Rules about frequency-based trips (E006, E013, E019, W005), alerts (E032-E034), ADDED or
CANCELED trips (E016) and feed refresh intervals (W007) do not apply: our feeds carry
only scheduled trips. Each check returns the rule ids it found broken, with a detail.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from google.transit import gtfs_realtime_pb2 as rt

from core.geo import distance_m

_DATE = re.compile(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
MIN_POSIX = 1_000_000_000  # 2001: anything smaller is not seconds since 1970
MAX_POSIX = 4_102_444_800  # 2100: anything larger is milliseconds (E001)
FUTURE_SLACK_S = 60  # E050
SHAPE_BUFFER_M = 200.0  # E029 (TRIP_BUFFER_METERS)
REGION_BUFFER_M = 1609.0  # E028 (REGION_BUFFER_METERS)
MAX_SPEED_MPS = 26.0  # W004: about 94 km/h for a bus


@dataclass
class StaticFeed:
    """What the rules need from the static GTFS."""

    trips: Mapping[str, tuple[str, int | None, str | None]]  # trip -> (route, direction, shape)
    routes: set[str]
    stops: Mapping[str, tuple[float, float, int]]  # stop -> (lat, lon, location_type)
    stop_times: Mapping[str, Sequence[tuple[int, str]]]  # trip -> [(sequence, stop_id)]
    shapes: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    rule: str
    entity: str
    detail: str


def _near_polyline(lat: float, lon: float, pts: Sequence[tuple[float, float]]) -> float:
    """Distance to the nearest vertex, with midpoints added (shapes here are dense)."""
    best = math.inf
    for i, (a, b) in enumerate(pts):
        best = min(best, distance_m(lat, lon, a, b))
        if i + 1 < len(pts):
            c, d = pts[i + 1]
            best = min(best, distance_m(lat, lon, (a + c) / 2, (b + d) / 2))
    return best


def _header(msg: rt.FeedMessage, now: float) -> list[Finding]:
    out: list[Finding] = []
    h = msg.header
    if h.gtfs_realtime_version not in ("1.0", "2.0"):
        out.append(Finding("E038", "header", f"version {h.gtfs_realtime_version!r}"))
    if not h.HasField("timestamp") or h.timestamp == 0:
        out.append(Finding("E048", "header", "timestamp not populated"))
    elif not MIN_POSIX <= h.timestamp <= MAX_POSIX:
        out.append(Finding("E001", "header", f"timestamp {h.timestamp}"))
    elif h.timestamp > now + FUTURE_SLACK_S:
        out.append(Finding("E050", "header", f"timestamp {h.timestamp} is in the future"))
    if not h.HasField("incrementality"):
        out.append(Finding("E049", "header", "incrementality not populated"))
    return out


def _trip(ent: str, trip: rt.TripDescriptor, static: StaticFeed) -> list[Finding]:
    out: list[Finding] = []
    if not trip.trip_id:
        return [Finding("W006", ent, "trip has no trip_id")]
    known = static.trips.get(trip.trip_id)
    if known is None:
        out.append(Finding("E003", ent, f"trip {trip.trip_id} not in GTFS"))
    if trip.route_id and trip.route_id not in static.routes:
        out.append(Finding("E004", ent, f"route {trip.route_id} not in GTFS"))
    if known is not None and trip.route_id and trip.route_id != known[0]:
        out.append(Finding("E004", ent, f"route {trip.route_id} is not the trip's route"))
    if trip.start_date and not _DATE.fullmatch(trip.start_date):
        out.append(Finding("E021", ent, f"start_date {trip.start_date!r}"))
    if (
        trip.HasField("direction_id")
        and known is not None
        and known[1] is not None
        and trip.direction_id != known[1]
    ):
        out.append(Finding("E024", ent, f"direction {trip.direction_id} != {known[1]}"))
    if not trip.HasField("schedule_relationship"):
        out.append(Finding("W009", ent, "trip schedule_relationship not populated"))
    return out


def check_vehicle_positions(msg: rt.FeedMessage, static: StaticFeed, now: float) -> list[Finding]:
    out = _header(msg, now)
    ids = Counter(e.vehicle.vehicle.id for e in msg.entity if e.HasField("vehicle"))
    out += [Finding("E052", v, "vehicle id not unique") for v, n in ids.items() if v and n > 1]
    for e in msg.entity:
        vp = e.vehicle
        if not vp.vehicle.id:
            out.append(Finding("W002", e.id, "vehicle_id not populated"))
        if not vp.timestamp:
            out.append(Finding("W001", e.id, "timestamp not populated"))
        elif vp.timestamp > msg.header.timestamp:
            out.append(Finding("E012", e.id, "vehicle timestamp after header timestamp"))
        p = vp.position
        if not (-90 <= p.latitude <= 90 and -180 <= p.longitude <= 180):
            out.append(Finding("E026", e.id, f"position {p.latitude},{p.longitude}"))
        if p.HasField("bearing") and not 0 <= p.bearing <= 360:
            out.append(Finding("E027", e.id, f"bearing {p.bearing}"))
        if p.HasField("speed") and p.speed > MAX_SPEED_MPS:
            out.append(Finding("W004", e.id, f"speed {p.speed} m/s"))
        all_pts = [pt for pts in static.shapes.values() for pt in pts] or [
            (la, lo) for la, lo, _ in static.stops.values()
        ]
        if all_pts and _near_polyline(p.latitude, p.longitude, all_pts) > REGION_BUFFER_M:
            out.append(Finding("E028", e.id, "outside the agency's coverage area"))
        if vp.HasField("trip"):
            out += _trip(e.id, vp.trip, static)
            known = static.trips.get(vp.trip.trip_id)
            shape = static.shapes.get(known[2] or "") if known else None
            if shape and _near_polyline(p.latitude, p.longitude, shape) > SHAPE_BUFFER_M:
                out.append(Finding("E029", e.id, "position far from the trip's shape"))
            if vp.stop_id:
                st = static.stops.get(vp.stop_id)
                if st is None:
                    out.append(Finding("E011", e.id, f"stop {vp.stop_id} not in GTFS"))
                elif st[2] != 0:
                    out.append(Finding("E015", e.id, f"stop {vp.stop_id} location_type"))
    return out


def _sequence_findings(
    ent: str, s: rt.TripUpdate.StopTimeUpdate, pattern: dict[int, str], prev_seq: int | None
) -> list[Finding]:
    """E002, E036, E051, E045: the update's stop_sequence against the last and the GTFS."""
    out: list[Finding] = []
    if prev_seq is not None and s.stop_sequence < prev_seq:
        out.append(Finding("E002", ent, "stop_sequence not sorted"))
    if prev_seq is not None and s.stop_sequence == prev_seq:
        out.append(Finding("E036", ent, f"stop_sequence {s.stop_sequence} repeated"))
    if pattern and s.stop_sequence not in pattern:
        out.append(Finding("E051", ent, f"stop_sequence {s.stop_sequence} not in GTFS"))
    elif pattern and s.stop_id and pattern[s.stop_sequence] != s.stop_id:
        out.append(Finding("E045", ent, f"stop {s.stop_id} at {s.stop_sequence}"))
    return out


def _stop_findings(
    ent: str, s: rt.TripUpdate.StopTimeUpdate, static: StaticFeed, prev_stop: str | None
) -> list[Finding]:
    """E011, E015, E037: the update's stop_id exists, is a stop and is not repeated."""
    out: list[Finding] = []
    if s.stop_id not in static.stops:
        out.append(Finding("E011", ent, f"stop {s.stop_id} not in GTFS"))
    elif static.stops[s.stop_id][2] != 0:
        out.append(Finding("E015", ent, f"stop {s.stop_id} location_type"))
    if not s.HasField("stop_sequence") and s.stop_id == prev_stop:
        out.append(Finding("E037", ent, f"stop {s.stop_id} repeated"))
    return out


def _time_findings(ent: str, s: rt.TripUpdate.StopTimeUpdate) -> tuple[list[Finding], list[int]]:
    """E042, E043, W009, E044, E001, E025 for one update, and its times in order."""
    out: list[Finding] = []
    nodata = s.schedule_relationship == rt.TripUpdate.StopTimeUpdate.NO_DATA
    has_arr, has_dep = s.HasField("arrival"), s.HasField("departure")
    if nodata and (has_arr or has_dep):
        out.append(Finding("E042", ent, "arrival/departure on a NO_DATA stop"))
    if not nodata and not (has_arr or has_dep):
        out.append(Finding("E043", ent, "stop_time_update without arrival or departure"))
    if not s.HasField("schedule_relationship"):
        out.append(Finding("W009", ent, "stop_time_update schedule_relationship missing"))
    times = []
    for name, ev in (("arrival", s.arrival), ("departure", s.departure)):
        if not s.HasField(name):
            continue
        if not ev.HasField("time") and not ev.HasField("delay"):
            out.append(Finding("E044", ent, f"{name} without time or delay"))
        if ev.HasField("time"):
            if not MIN_POSIX <= ev.time <= MAX_POSIX:
                out.append(Finding("E001", ent, f"{name} time {ev.time}"))
            times.append(ev.time)
    both = has_arr and has_dep and s.arrival.HasField("time") and s.departure.HasField("time")
    if both and s.departure.time < s.arrival.time:
        out.append(Finding("E025", ent, f"departure before arrival at {s.stop_id}"))
    return out, times


def _stop_time_updates(
    ent: str, tu: rt.TripUpdate, static: StaticFeed, header_ts: int
) -> list[Finding]:
    out: list[Finding] = []
    pattern = dict(static.stop_times.get(tu.trip.trip_id, ()))
    prev_seq: int | None = None
    prev_stop: str | None = None
    prev_time: int | None = None
    for s in tu.stop_time_update:
        if not s.HasField("stop_sequence") and not s.stop_id:
            out.append(Finding("E040", ent, "stop_time_update without stop_sequence/stop_id"))
        if s.HasField("stop_sequence"):
            out += _sequence_findings(ent, s, pattern, prev_seq)
            prev_seq = s.stop_sequence
        if s.stop_id:
            out += _stop_findings(ent, s, static, prev_stop)
            prev_stop = s.stop_id
        found, times = _time_findings(ent, s)
        out += found
        if times:
            if prev_time is not None and times[0] <= prev_time:
                out.append(Finding("E022", ent, f"times not increasing at {s.stop_id}"))
            prev_time = times[-1]
    if not tu.stop_time_update and tu.trip.schedule_relationship != rt.TripDescriptor.CANCELED:
        out.append(Finding("E041", ent, "trip update without stop_time_updates"))
    if tu.timestamp and tu.timestamp > header_ts:
        out.append(Finding("E012", ent, "trip update timestamp after header timestamp"))
    return out


def check_trip_updates(msg: rt.FeedMessage, static: StaticFeed, now: float) -> list[Finding]:
    out = _header(msg, now)
    for e in msg.entity:
        tu = e.trip_update
        out += _trip(e.id, tu.trip, static)
        if not tu.vehicle.id:
            out.append(Finding("W002", e.id, "vehicle_id not populated"))
        if not tu.timestamp:
            out.append(Finding("W001", e.id, "timestamp not populated"))
        out += _stop_time_updates(e.id, tu, static, msg.header.timestamp)
    return out


def check_pair(vehicles: rt.FeedMessage, updates: rt.FeedMessage) -> list[Finding]:
    """W003 and E047: the two feeds agree on which vehicle runs which trip."""
    out: list[Finding] = []
    vp = {
        e.vehicle.vehicle.id: e.vehicle.trip.trip_id
        for e in vehicles.entity
        if e.vehicle.HasField("trip")
    }
    tu = {e.trip_update.vehicle.id: e.trip_update.trip.trip_id for e in updates.entity}
    for vid in vp.keys() | tu.keys():
        if vp.get(vid) != tu.get(vid):
            rule = "E047" if vid in vp and vid in tu else "W003"
            out.append(Finding(rule, vid, f"positions say {vp.get(vid)}, updates {tu.get(vid)}"))
    return out
