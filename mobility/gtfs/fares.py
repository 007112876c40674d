"""Zone fares from the current feed's fare_attributes + fare_rules (GTFS fares v1).

A rule matches when each of its route_id / origin_id / destination_id is empty or equal
to the trip's route and the stops' zone_id. Among matches the most specific rule wins
(most fields given), then the lowest price, which is what riders are charged when a feed
offers several fares for one ride.
"""

from __future__ import annotations

import psycopg

_ZONES_SQL = """
SELECT v.id, o.zone_id, d.zone_id
FROM gtfs_feed_versions v
LEFT JOIN gtfs_stops o ON o.feed_version = v.id AND o.stop_id = %(origin)s
LEFT JOIN gtfs_stops d ON d.feed_version = v.id AND d.stop_id = %(destination)s
WHERE v.is_current
"""

# Parameters are plain values here, so the (feed_version, origin_id, destination_id) index
# serves the lookup instead of a scan of every rule.
_RULE_SQL = """
SELECT fa.price
FROM gtfs_fare_rules fr
JOIN gtfs_fare_attributes fa ON fa.feed_version = fr.feed_version AND fa.fare_id = fr.fare_id
WHERE fr.feed_version = %(version)s
  AND fr.contains_id IS NULL
  AND (fr.route_id IS NULL OR fr.route_id = %(route)s)
  AND (fr.origin_id IS NULL OR fr.origin_id = %(origin_zone)s)
  AND (fr.destination_id IS NULL OR fr.destination_id = %(destination_zone)s)
ORDER BY (fr.route_id IS NOT NULL)::int + (fr.origin_id IS NOT NULL)::int
         + (fr.destination_id IS NOT NULL)::int DESC,
         fa.price
LIMIT 1
"""


def _params(route_id: str, origin_stop_id: str, destination_stop_id: str) -> dict[str, str]:
    return {"route": route_id, "origin": origin_stop_id, "destination": destination_stop_id}


def _rule_params(zones: tuple[object, ...] | None, route_id: str) -> dict[str, object] | None:
    if zones is None:
        return None  # no feed imported
    version, origin_zone, destination_zone = zones
    return {
        "version": version,
        "route": route_id,
        "origin_zone": origin_zone,
        "destination_zone": destination_zone,
    }


def zone_fare(
    conn: psycopg.Connection, route_id: str, origin_stop_id: str, destination_stop_id: str
) -> int | None:
    """Adult fare in yen, or None when no rule of the current feed applies."""
    zones = conn.execute(
        _ZONES_SQL, _params(route_id, origin_stop_id, destination_stop_id)
    ).fetchone()
    params = _rule_params(zones, route_id)
    if params is None:
        return None
    row = conn.execute(_RULE_SQL, params).fetchone()
    return int(row[0]) if row else None


async def zone_fare_async(
    conn: psycopg.AsyncConnection, route_id: str, origin_stop_id: str, destination_stop_id: str
) -> int | None:
    """The async twin of :func:`zone_fare`, for the API."""
    cur = await conn.execute(_ZONES_SQL, _params(route_id, origin_stop_id, destination_stop_id))
    params = _rule_params(await cur.fetchone(), route_id)
    if params is None:
        return None
    cur = await conn.execute(_RULE_SQL, params)
    row = await cur.fetchone()
    return int(row[0]) if row else None
