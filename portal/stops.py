"""Bus stops for the pages: find a stop, the next buses at it, the fare between two stops.

``next_buses`` is THE seam for live departures. Today it reads the current GTFS timetable
(services running on the Japan day, by calendar and calendar_dates; an expired feed runs
on its weekday pattern, as the mobility worker does) and adds the current delay of the
vehicle serving each trip (``vehicle_state.delay_s``, written by the mobility worker),
dropping trips whose vehicle has already passed the stop. When
``mobility.predictions.upcoming_at_stop(conn, stop_id, *, now, limit)`` lands, replace the
body of :func:`next_buses` with a call to it and map its rows to :class:`NextBus`; nothing
else in the portal reads timetables or vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from psycopg import AsyncConnection

from core.operators import canonical_operator_id
from mobility.fares.policy import NoPolicyError, load_policies
from mobility.fares.rules import JST, age_on, bus_discount, local_day

LIVE_FOR = timedelta(minutes=10)  # a vehicle position older than this is not live


@dataclass(frozen=True)
class Stop:
    """A stop (pole) of the current feed."""

    stop_id: str
    name: str
    platform: str | None


@dataclass(frozen=True)
class NextBus:
    """One departure: the timetable time and, when a vehicle reports, the expected time."""

    route: str
    headsign: str
    scheduled_at: datetime
    expected_at: datetime
    delay_min: int | None  # None: no live vehicle for this trip yet
    trip_id: str


_FIND_SQL = """
SELECT s.stop_id, s.stop_name, nullif(coalesce(s.platform_code, s.stop_desc), '')
FROM gtfs_stops s
WHERE s.feed_version = gtfs_current_version() AND coalesce(s.location_type, 0) = 0
  AND s.stop_name ILIKE %(q)s
ORDER BY s.stop_name <> %(exact)s, length(s.stop_name), s.stop_name, s.stop_id
LIMIT %(limit)s
"""


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def find_stops(conn: AsyncConnection, text: str, limit: int = 30) -> list[Stop]:
    """Stops whose name contains ``text`` (exact names first)."""
    text = text.strip()[:50]
    if not text:
        return []
    cur = await conn.execute(_FIND_SQL, {"q": _like(text), "exact": text, "limit": limit})
    return [Stop(r[0], r[1] or r[0], r[2]) async for r in cur]


async def get_stop(conn: AsyncConnection, stop_id: str) -> Stop | None:
    """One stop of the current feed by id."""
    cur = await conn.execute(
        "SELECT stop_id, stop_name, nullif(coalesce(platform_code, stop_desc), '')"
        " FROM gtfs_stops WHERE feed_version = gtfs_current_version() AND stop_id = %s",
        [stop_id[:200]],
    )
    r = await cur.fetchone()
    return Stop(r[0], r[1] or r[0], r[2]) if r else None


_NEXT_SQL = """
WITH v AS (SELECT gtfs_current_version() AS id),
covered AS (
  SELECT EXISTS (SELECT 1 FROM gtfs_calendar c, v WHERE c.feed_version = v.id
                 AND %(day)s BETWEEN c.start_date AND c.end_date) AS yes
),
svc AS (
  (SELECT c.service_id FROM gtfs_calendar c, v, covered
   WHERE c.feed_version = v.id
     AND (NOT covered.yes OR %(day)s BETWEEN c.start_date AND c.end_date)
     AND (ARRAY[c.monday, c.tuesday, c.wednesday, c.thursday, c.friday, c.saturday,
                c.sunday])[%(dow)s]
   UNION
   SELECT d.service_id FROM gtfs_calendar_dates d, v
   WHERE d.feed_version = v.id AND d.date = %(day)s AND d.exception_type = 1)
  EXCEPT
  SELECT d.service_id FROM gtfs_calendar_dates d, v
  WHERE d.feed_version = v.id AND d.date = %(day)s AND d.exception_type = 2
)
SELECT st.trip_id, coalesce(nullif(r.route_long_name, ''), r.route_short_name, r.route_id),
       coalesce(nullif(st.stop_headsign, ''), t.trip_headsign, ''),
       coalesce(st.departure_s, st.arrival_s), vs.delay_s
FROM gtfs_stop_times st
JOIN v ON st.feed_version = v.id
JOIN gtfs_trips t ON t.feed_version = v.id AND t.trip_id = st.trip_id
JOIN svc ON svc.service_id = t.service_id
JOIN gtfs_routes r ON r.feed_version = v.id AND r.route_id = t.route_id
LEFT JOIN vehicle_state vs ON vs.trip_id = st.trip_id AND vs.service_date = %(day)s
     AND vs.status <> 'offline' AND vs.ts > %(live_since)s
WHERE st.stop_id = %(stop)s
  AND coalesce(st.pickup_type, 0) <> 1
  AND (vs.next_stop_sequence IS NULL OR vs.next_stop_sequence <= st.stop_sequence)
  AND coalesce(st.departure_s, st.arrival_s) + coalesce(vs.delay_s, 0) >= %(now_s)s - 60
ORDER BY coalesce(st.departure_s, st.arrival_s) + coalesce(vs.delay_s, 0), st.trip_id
LIMIT %(limit)s
"""


def service_day_start(day: date) -> datetime:
    """GTFS times count from noon minus 12 hours of the service day (Japan time)."""
    return datetime(day.year, day.month, day.day, 12, tzinfo=JST) - timedelta(hours=12)


async def next_buses(
    conn: AsyncConnection, stop_id: str, *, now: datetime, limit: int = 6
) -> list[NextBus]:
    """The next departures at ``stop_id`` from ``now`` (the seam: see the module docstring)."""
    day = local_day(now)
    start = service_day_start(day)
    now_s = int((now - start).total_seconds())
    cur = await conn.execute(
        _NEXT_SQL,
        {
            "day": day,
            "dow": day.isoweekday(),
            "stop": stop_id[:200],
            "now_s": now_s,
            "live_since": now - LIVE_FOR,
            "limit": limit,
        },
    )
    out: list[NextBus] = []
    async for trip_id, route, headsign, dep_s, delay_s in cur:
        sched = start + timedelta(seconds=int(dep_s))
        delay = None if delay_s is None else round(float(delay_s) / 60)
        expected = sched + timedelta(seconds=float(delay_s or 0))
        out.append(NextBus(route, headsign, sched, expected, delay, trip_id))
    return out


async def timetable_ends(conn: AsyncConnection) -> date | None:
    """The last day the current timetable covers (to say when it has run out)."""
    cur = await conn.execute(
        "SELECT max(end_date) FROM gtfs_calendar WHERE feed_version = gtfs_current_version()"
    )
    row = await cur.fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class Route:
    """A route that runs from one stop to another (origin before destination on a trip)."""

    route_id: str
    operator_id: str
    name: str


_ROUTES_SQL = """
SELECT DISTINCT t.route_id, r.agency_id,
       coalesce(nullif(r.route_long_name, ''), r.route_short_name, r.route_id)
FROM gtfs_stop_times a
JOIN gtfs_stop_times b ON b.feed_version = a.feed_version AND b.trip_id = a.trip_id
     AND b.stop_sequence > a.stop_sequence
JOIN gtfs_trips t ON t.feed_version = a.feed_version AND t.trip_id = a.trip_id
JOIN gtfs_routes r ON r.feed_version = a.feed_version AND r.route_id = t.route_id
WHERE a.feed_version = gtfs_current_version() AND a.stop_id = %(o)s AND b.stop_id = %(d)s
ORDER BY 3
LIMIT 5
"""


async def routes_between(conn: AsyncConnection, origin: str, dest: str) -> list[Route]:
    """Routes with a trip from ``origin`` to ``dest`` (in that order)."""
    cur = await conn.execute(_ROUTES_SQL, {"o": origin[:200], "d": dest[:200]})
    return [Route(r[0], canonical_operator_id(r[1]), r[2]) async for r in cur]


@dataclass(frozen=True)
class Fare:
    """The fare on one route with the resident's discount (none when signed out)."""

    route: Route
    fare_yen: int
    discount_yen: int
    discount: str | None

    @property
    def pay_yen(self) -> int:
        """What the rider pays: the fare less the rider's discount."""
        return self.fare_yen - self.discount_yen


async def fares_between(
    conn: AsyncConnection, origin: str, dest: str, *, birth: date | None, now: datetime
) -> list[Fare]:
    """The fare of each route from ``origin`` to ``dest``, with the citizen bus discount for
    a resident born on ``birth`` (the same rule and policy as a tap submitted by an
    operator: ``mobility.fares.rules.bus_discount``)."""
    from mobility.gtfs.fares import zone_fare_async

    day = local_day(now)
    try:
        policy = load_policies().bus_at(day)
    except NoPolicyError:
        policy = None
    out: list[Fare] = []
    for route in await routes_between(conn, origin, dest):
        fare = await zone_fare_async(conn, route.route_id, origin, dest)
        if fare is None:
            continue
        if policy is None or birth is None:
            out.append(Fare(route, fare, 0, None))
            continue
        d = bus_discount(policy, route.operator_id, route.route_id, fare, age_on(birth, day))
        out.append(Fare(route, fare, d.discount_yen, d.discount))
    return out


async def stop_names(conn: AsyncConnection, stop_ids: list[str]) -> dict[str, str]:
    """Names of stops by id (ids the current feed lacks are left out: show the id)."""
    if not stop_ids:
        return {}
    cur = await conn.execute(
        "SELECT stop_id, stop_name FROM gtfs_stops"
        " WHERE feed_version = gtfs_current_version() AND stop_id = ANY(%s)",
        [sorted(set(stop_ids))],
    )
    return {r[0]: r[1] or r[0] async for r in cur}


async def route_names(conn: AsyncConnection, route_ids: list[str]) -> dict[str, str]:
    """Names of routes by id, as the timetable gives them."""
    if not route_ids:
        return {}
    cur = await conn.execute(
        "SELECT route_id, coalesce(nullif(route_long_name, ''), route_short_name, route_id)"
        " FROM gtfs_routes WHERE feed_version = gtfs_current_version() AND route_id = ANY(%s)",
        [sorted(set(route_ids))],
    )
    return {r[0]: r[1] async for r in cur}
