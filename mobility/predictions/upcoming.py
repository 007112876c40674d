"""Next arrivals at one stop: live predictions where a bus is on its way, the timetable
for trips no bus has started yet. The public "next bus at this stop" data (resident
portal, ``GET /v1/stops/{stop_id}/arrivals``) and the operators' view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from mobility.predictions.engine import Prediction
from mobility.predictions.live import live_predictions_async
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
SELECT st.trip_id, t.route_id, t.service_id, st.stop_sequence,
       coalesce(st.arrival_s, st.departure_s), coalesce(st.departure_s, st.arrival_s),
       coalesce(nullif(st.stop_headsign, ''), nullif(t.trip_headsign, ''),
                (SELECT s2.stop_name FROM gtfs_stop_times x
                 JOIN gtfs_stops s2 ON s2.feed_version = x.feed_version AND s2.stop_id = x.stop_id
                 WHERE x.feed_version = st.feed_version AND x.trip_id = st.trip_id
                 ORDER BY x.stop_sequence DESC LIMIT 1)),
       coalesce(nullif(r.route_short_name, ''), nullif(r.route_long_name, ''), r.route_id)
FROM gtfs_stop_times st
JOIN gtfs_trips t ON t.feed_version = st.feed_version AND t.trip_id = st.trip_id
JOIN gtfs_routes r ON r.feed_version = t.feed_version AND r.route_id = t.route_id
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
    service_id: str
    sequence: int
    arrival_s: int
    departure_s: int
    headsign: str | None
    route_name: str


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
    ordered = sorted(rows.values(), key=lambda r: (r.predicted, r.route_name))
    return [_with_stop(r, stop_id) for r in ordered[:limit]]


def _with_stop(r: UpcomingArrival, stop_id: str) -> UpcomingArrival:
    return UpcomingArrival(stop_id, *[getattr(r, f) for f in _FIELDS[1:]])


_FIELDS = tuple(UpcomingArrival.__dataclass_fields__)
