"""Bus stops for the pages: find a stop, the next buses at it, the fare between two stops.

``next_buses`` is the one place the portal learns when buses come: it asks the arrival
predictions (``mobility.predictions.upcoming_at_stop``: learned travel and dwell times
for buses on their way, the timetable for trips not started yet) and maps their rows to
:class:`NextBus`; nothing else in the portal reads timetables or vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from psycopg import AsyncConnection

from core.operators import canonical_operator_id
from mobility.fares.policy import NoPolicyError, load_policies
from mobility.fares.rules import age_on, bus_discount, local_day
from mobility.predictions import UnknownStopError, upcoming_at_stop


@dataclass(frozen=True)
class Stop:
    """A stop (pole) of the current feed.

    Several poles often share a name (one each side of the road) and GTFS-JP feeds seldom
    give their platform. People tell them apart by where the buses go, so a pole without a
    platform whose name is shared carries ``towards`` (the main destinations of the buses
    leaving it) or, when that does not tell it from its siblings, ``pole`` (its place
    among them: のりば 1, 2, ...); a pole where buses only set down is ``arrivals_only``.
    The stop id is never shown.
    """

    stop_id: str
    name: str
    platform: str | None
    towards: tuple[str, ...] = ()
    pole: int | None = None
    arrivals_only: bool = False


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
    """Stops whose name contains ``text`` (exact names first), told apart by name."""
    text = text.strip()[:50]
    if not text:
        return []
    cur = await conn.execute(_FIND_SQL, {"q": _like(text), "exact": text, "limit": limit})
    return await told_apart(conn, [Stop(r[0], r[1] or r[0], r[2]) async for r in cur])


async def get_stop(conn: AsyncConnection, stop_id: str) -> Stop | None:
    """One stop of the current feed by id."""
    cur = await conn.execute(
        "SELECT stop_id, stop_name, nullif(coalesce(platform_code, stop_desc), '')"
        " FROM gtfs_stops WHERE feed_version = gtfs_current_version() AND stop_id = %s",
        [stop_id[:200]],
    )
    r = await cur.fetchone()
    return (await told_apart(conn, [Stop(r[0], r[1] or r[0], r[2])]))[0] if r else None


# Every pole sharing a name with one of the given stops, with the main destinations of the
# buses that pick up there (the headsign up to its "(... 経由)" part; the stop's own name
# left out: a trip ending here is no direction to take).
_POLES_SQL = """
WITH poles AS (
    SELECT s.stop_id, s.stop_name, nullif(coalesce(s.platform_code, s.stop_desc), '') AS platform,
           row_number() OVER (PARTITION BY s.stop_name ORDER BY s.stop_id) AS pole
    FROM gtfs_stops s
    WHERE s.feed_version = gtfs_current_version() AND coalesce(s.location_type, 0) = 0
      AND s.stop_name IN (SELECT stop_name FROM gtfs_stops
                          WHERE feed_version = gtfs_current_version() AND stop_id = ANY(%(ids)s))
), places AS (
    SELECT st.stop_id,
           btrim(regexp_replace(coalesce(nullif(st.stop_headsign, ''), t.trip_headsign, ''),
                                '[（(].*$', '')) AS place,
           count(*) AS trips
    FROM gtfs_stop_times st
    JOIN gtfs_trips t ON t.feed_version = st.feed_version AND t.trip_id = st.trip_id
    WHERE st.feed_version = gtfs_current_version()
      AND st.stop_id IN (SELECT stop_id FROM poles) AND coalesce(st.pickup_type, 0) <> 1
    GROUP BY 1, 2
)
SELECT p.stop_id, p.stop_name, p.platform, p.pole,
       coalesce((SELECT array_agg(x.place ORDER BY x.trips DESC, x.place)
                 FROM (SELECT pl.place, pl.trips FROM places pl
                       WHERE pl.stop_id = p.stop_id AND pl.place NOT IN ('', p.stop_name)
                       ORDER BY pl.trips DESC, pl.place LIMIT 2) x), '{}'),
       EXISTS (SELECT 1 FROM gtfs_stop_times x
               WHERE x.feed_version = gtfs_current_version() AND x.stop_id = p.stop_id)
FROM poles p
"""


async def told_apart(conn: AsyncConnection, found: list[Stop]) -> list[Stop]:
    """``found`` with what tells each pole from the others of its name (see :class:`Stop`):
    the destinations of its buses when they differ from every sibling's, else its number."""
    if not found:
        return found
    cur = await conn.execute(_POLES_SQL, {"ids": sorted({s.stop_id for s in found})})
    rows = [(r[0], r[1], r[2], int(r[3]), tuple(r[4]), bool(r[5])) async for r in cur]
    by_name: dict[str, list[tuple[str, str | None, int, tuple[str, ...], bool]]] = {}
    for stop_id, name, platform, pole, towards, served in rows:
        by_name.setdefault(name, []).append((stop_id, platform, pole, towards, served))
    out = []
    for s in found:
        siblings = by_name.get(s.name, [])
        me = next((x for x in siblings if x[0] == s.stop_id), None)
        if me is None or len(siblings) < 2 or s.platform:
            out.append(s)
            continue
        towards = me[3]
        if not towards and me[4]:  # buses stop here, none leaves towards anywhere
            out.append(replace(s, arrivals_only=True))
            continue
        shared = not towards or any(x[3] == towards for x in siblings if x[0] != s.stop_id)
        out.append(replace(s, pole=me[2]) if shared else replace(s, towards=towards))
    return out


async def next_buses(
    conn: AsyncConnection, stop_id: str, *, now: datetime, limit: int = 6
) -> list[NextBus]:
    """The next buses at ``stop_id`` from ``now``, from the arrival predictions (the seam:
    see the module docstring); an unknown stop has none."""
    try:
        rows = await upcoming_at_stop(conn, stop_id[:200], now=now, limit=limit)
    except UnknownStopError:
        return []
    return [
        NextBus(
            route=r.route_name,
            headsign=r.headsign or "",
            scheduled_at=r.scheduled,
            expected_at=r.predicted,
            delay_min=round(r.delay_s / 60) if r.realtime and r.delay_s is not None else None,
            trip_id=r.trip_id,
        )
        for r in rows
    ]


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
