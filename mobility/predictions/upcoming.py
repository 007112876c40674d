"""Next arrivals at one stop: live predictions where a bus is on its way, the timetable
for trips no bus has started yet. The public "next bus at this stop" data (resident
portal, ``GET /v1/stops/{stop_id}/arrivals``) and the operators' view."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from core.geo import distance_m
from mobility.predictions.engine import PlannedTrip, Prediction, Predictor, Progress
from mobility.predictions.live import (
    MODELS,
    STOP_TIMES_SQL,
    live_predictions_async,
    planned_trip,
    stop_times_from_rows,
)
from mobility.predictions.sim import MAX_LAYOVER_S, MIN_LAYOVER_S, SAME_PLACE_M
from mobility.vehicles.schedule import JST, Schedule, local_date, service_day_epoch

HORIZON = timedelta(hours=3)
PASSED_GRACE_S = 60.0


class UnknownStopError(LookupError):
    """The stop is not in the current GTFS feed."""


@dataclass(frozen=True)
class UpcomingArrival:
    """One bus expected at the stop (arrival times). ``realtime``: predicted from a live
    vehicle (then ``delay_s`` and ``uncertainty_s`` are set); otherwise the timetable's."""

    stop_id: str
    trip_id: str
    route_id: str
    route_name: str
    headsign: str | None
    vehicle_id: str | None
    scheduled: datetime
    predicted: datetime
    delay_s: int | None
    uncertainty_s: int | None
    realtime: bool


_STOP = """
SELECT stop_name FROM gtfs_stops WHERE feed_version = gtfs_current_version() AND stop_id = %s
"""

_TRIPS_AT_STOP = """
SELECT st.trip_id, t.route_id, t.direction_id, t.service_id, st.stop_sequence,
       coalesce(st.arrival_s, st.departure_s), coalesce(st.departure_s, st.arrival_s),
       coalesce(nullif(st.stop_headsign, ''), nullif(t.trip_headsign, ''),
                (SELECT s2.stop_name FROM gtfs_stop_times x
                 JOIN gtfs_stops s2 ON s2.feed_version = x.feed_version AND s2.stop_id = x.stop_id
                 WHERE x.feed_version = st.feed_version AND x.trip_id = st.trip_id
                 ORDER BY x.stop_sequence DESC LIMIT 1)),
       coalesce(nullif(r.route_short_name, ''), nullif(r.route_long_name, ''), r.route_id),
       f.stop_lat, f.stop_lon, f.dep_s
FROM gtfs_stop_times st
JOIN gtfs_trips t ON t.feed_version = st.feed_version AND t.trip_id = st.trip_id
JOIN gtfs_routes r ON r.feed_version = t.feed_version AND r.route_id = t.route_id
CROSS JOIN LATERAL (
    SELECT s3.stop_lat, s3.stop_lon, coalesce(x.departure_s, x.arrival_s) AS dep_s
    FROM gtfs_stop_times x
    JOIN gtfs_stops s3 ON s3.feed_version = x.feed_version AND s3.stop_id = x.stop_id
    WHERE x.feed_version = st.feed_version AND x.trip_id = st.trip_id
    ORDER BY x.stop_sequence LIMIT 1
) f
WHERE st.feed_version = gtfs_current_version() AND st.stop_id = %s
  AND coalesce(st.arrival_s, st.departure_s) IS NOT NULL
"""

_CALENDAR = """
SELECT service_id, monday, tuesday, wednesday, thursday, friday, saturday, sunday,
       start_date, end_date
FROM gtfs_calendar WHERE feed_version = gtfs_current_version()
"""
_CALENDAR_DATES = """
SELECT service_id, date, exception_type FROM gtfs_calendar_dates
WHERE feed_version = gtfs_current_version() AND date BETWEEN %s AND %s
"""

# Trips that have already served the stop (a bus arrived or left there).
_SERVED = """
SELECT DISTINCT trip_id, service_date FROM vehicle_events
WHERE type IN ('arrival', 'departure') AND stop_id = %s AND ts > %s - interval '4 hours'
  AND ts <= %s
"""


@dataclass(frozen=True)
class _TripAtStop:
    trip_id: str
    route_id: str
    direction_id: int | None
    service_id: str
    sequence: int
    arrival_s: int
    departure_s: int
    headsign: str | None
    route_name: str
    first_lat: float
    first_lon: float
    first_dep_s: int


@dataclass(frozen=True)
class Ending:
    """Where and when a live bus finishes its current trip (a candidate for a later one)."""

    vehicle_id: str
    lat: float
    lon: float
    scheduled_end: float
    predicted_end: float
    uncertainty: int


@dataclass(frozen=True)
class NextTrip:
    """A trip no bus has started yet: where it starts and when (epochs)."""

    key: tuple[str, date]
    lat: float
    lon: float
    start: float


def assign_next_trips(
    candidates: Sequence[NextTrip], endings: Sequence[Ending]
) -> dict[tuple[str, date], Ending]:
    """Which live bus will most likely run each not-yet-started trip, the way blocks are
    built: it ends its current trip within 300 m of the trip's first stop, 2 to 90 minutes
    (timetable) before the trip starts; the latest such bus wins, each bus runs one (pure)."""
    used: set[str] = set()
    out: dict[tuple[str, date], Ending] = {}
    for c in sorted(candidates, key=lambda c: c.start):
        fits = [
            e
            for e in endings
            if e.vehicle_id not in used
            and MIN_LAYOVER_S <= c.start - e.scheduled_end <= MAX_LAYOVER_S
            and distance_m(e.lat, e.lon, c.lat, c.lon) <= SAME_PLACE_M
        ]
        if fits:
            best = max(fits, key=lambda e: e.scheduled_end)
            used.add(best.vehicle_id)
            out[c.key] = best
    return out


async def _calendar(conn: AsyncConnection[Any], today: date) -> Schedule:
    cur = await conn.execute(_CALENDAR)
    cal = {r[0]: (tuple(bool(x) for x in r[1:8]), r[8], r[9]) for r in await cur.fetchall()}
    cur = await conn.execute(_CALENDAR_DATES, [today - timedelta(days=1), today])
    exc = {(r[0], r[1]): int(r[2]) for r in await cur.fetchall()}
    return Schedule(None, {}, {}, {}, cal, exc)


def _row(t: _TripAtStop, p: Prediction | None, vid: str | None, sched: float) -> UpcomingArrival:
    if p is None:
        when, delay, unc = sched, None, None
    else:
        when = float(p.arrival)
        delay, unc = round(when - sched), p.uncertainty
    return UpcomingArrival(
        "",
        t.trip_id,
        t.route_id,
        t.route_name,
        t.headsign,
        vid,
        datetime.fromtimestamp(sched, JST),
        datetime.fromtimestamp(when, JST),
        delay,
        unc,
        p is not None,
    )


def _live_rows(
    stop_id: str,
    trips: Sequence[_TripAtStop],
    live: dict[str, tuple[Any, list[Prediction]]],
    days: dict[str, date],
) -> dict[tuple[str, date], UpcomingArrival]:
    by_trip = {t.trip_id: t for t in trips}
    out: dict[tuple[str, date], UpcomingArrival] = {}
    for vid, (trip, preds) in live.items():
        t = by_trip.get(trip.trip_id)
        if t is None:
            continue
        p = next((x for x in preds if x.stop_id == stop_id and x.sequence == t.sequence), None)
        if p is None:
            continue
        day = days[vid]
        out[(t.trip_id, day)] = _row(t, p, vid, service_day_epoch(day) + t.arrival_s)
    return out


async def upcoming_at_stop(
    conn: AsyncConnection[Any], stop_id: str, *, now: datetime, limit: int = 10
) -> list[UpcomingArrival]:
    """The next ``limit`` buses at ``stop_id`` from ``now`` (aware datetime), soonest first:
    live predictions for buses on their way, the timetable for trips not started yet.
    Raises :class:`UnknownStopError` when the stop is not in the current feed."""
    cur = await conn.execute(_STOP, [stop_id])
    if await cur.fetchone() is None:
        raise UnknownStopError(stop_id)
    cur = await conn.execute(_TRIPS_AT_STOP, [stop_id])
    trips = [_TripAtStop(*r) for r in await cur.fetchall()]
    vehicles, live = await live_predictions_async(conn, now)
    days = {v.vehicle_id: v.service_date for v in vehicles}
    rows = _live_rows(stop_id, trips, live, days)
    cur = await conn.execute(_SERVED, [stop_id, now, now])
    served = {(r[0], r[1]) for r in await cur.fetchall()}
    epoch = now.timestamp()
    today = local_date(epoch)
    cal = await _calendar(conn, today)
    waiting: dict[tuple[str, date], _TripAtStop] = {}
    for day in (today - timedelta(days=1), today):
        active = cal.active_services(day)
        day0 = service_day_epoch(day)
        for t in trips:
            key = (t.trip_id, day)
            if t.service_id not in active or key in rows or key in served:
                continue
            sched = day0 + t.arrival_s
            if epoch - PASSED_GRACE_S <= sched <= epoch + HORIZON.total_seconds():
                rows[key] = _row(t, None, None, sched)
                waiting[key] = t
    rows.update(await _next_trip_rows(conn, stop_id, waiting, live, now))
    ordered = sorted(rows.values(), key=lambda r: (r.predicted, r.route_name))
    return [_with_stop(r, stop_id) for r in ordered[:limit]]


async def _endings(
    conn: AsyncConnection[Any], live: dict[str, tuple[PlannedTrip, list[Prediction]]]
) -> list[Ending]:
    last = {vid: trip.stops[-1] for vid, (trip, preds) in live.items() if preds}
    cur = await conn.execute(
        "SELECT stop_id, stop_lat, stop_lon FROM gtfs_stops"
        " WHERE feed_version = gtfs_current_version() AND stop_id = ANY(%s)",
        [sorted({s.stop_id for s in last.values()})],
    )
    where = {r[0]: (float(r[1]), float(r[2])) for r in await cur.fetchall()}
    out = []
    for vid, stop in last.items():
        end = live[vid][1][-1]
        if stop.stop_id in where and end.stop_id == stop.stop_id:
            lat, lon = where[stop.stop_id]
            out.append(Ending(vid, lat, lon, stop.arrival, float(end.arrival), end.uncertainty))
    return out


async def _next_trip_rows(
    conn: AsyncConnection[Any],
    stop_id: str,
    waiting: dict[tuple[str, date], _TripAtStop],
    live: dict[str, tuple[PlannedTrip, list[Prediction]]],
    now: datetime,
) -> dict[tuple[str, date], UpcomingArrival]:
    """Trips not started yet that a live bus will run after its current trip: predicted
    from when that bus will be ready (layover), not just the timetable."""
    if not waiting or not live:
        return {}
    candidates = [
        NextTrip(k, t.first_lat, t.first_lon, service_day_epoch(k[1]) + t.first_dep_s)
        for k, t in waiting.items()
    ]
    chosen = assign_next_trips(candidates, await _endings(conn, live))
    if not chosen:
        return {}
    cur = await conn.execute(STOP_TIMES_SQL, {"trips": sorted({k[0] for k in chosen})})
    stop_times = stop_times_from_rows(await cur.fetchall())
    predictor = Predictor(await MODELS.get_async(conn))
    epoch = now.timestamp()
    out: dict[tuple[str, date], UpcomingArrival] = {}
    for key, end in chosen.items():
        t, rows = waiting[key], stop_times.get(key[0])
        if not rows or len(rows) < 2:
            continue
        trip = planned_trip(t.trip_id, t.route_id, t.direction_id, key[1], rows)
        ready = max(epoch, end.predicted_end + MIN_LAYOVER_S)
        preds = predictor.predict(
            trip, Progress(epoch, 0, 0.0, started=False, ready_at=ready), epoch
        )
        p = next((x for x in preds if x.stop_id == stop_id and x.sequence == t.sequence), None)
        if p is None:
            continue
        if ready > trip.stops[0].departure:  # late: the bus's own uncertainty carries over
            p = p._replace(uncertainty=round(math.hypot(p.uncertainty, end.uncertainty)))
        out[key] = _row(t, p, end.vehicle_id, service_day_epoch(key[1]) + t.arrival_s)
    return out


def _with_stop(r: UpcomingArrival, stop_id: str) -> UpcomingArrival:
    return UpcomingArrival(stop_id, *[getattr(r, f) for f in _FIELDS[1:]])


_FIELDS = tuple(UpcomingArrival.__dataclass_fields__)
