"""On-time performance, delay, headway regularity, dwell and trips run vs scheduled, per
route for one Asia/Tokyo day. Computed from the raw ``vehicle_events`` so the on-time
window is a parameter (the ``mobility_route_daily`` rollup keeps the default -1/+5 min
for dashboards)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

ROUTE_PERFORMANCE_SQL = """
WITH day AS (
    SELECT (%(day)s::date)::timestamp AT TIME ZONE 'Asia/Tokyo' AS t0,
           (%(day)s::date + 1)::timestamp AT TIME ZONE 'Asia/Tokyo' AS t1
),
dep AS (
    SELECT e.route_id, e.direction_id, e.stop_id, e.trip_id, e.ts, e.scheduled_ts,
           e.delay_s, e.dwell_s, e.operator_id
    FROM vehicle_events e, day
    WHERE e.type = 'departure' AND e.ts >= day.t0 AND e.ts < day.t1
      AND (%(operator)s::text IS NULL OR e.operator_id = %(operator)s)
),
hw AS (
    SELECT route_id,
           extract(epoch FROM ts - lag(ts) OVER w) AS headway_s,
           extract(epoch FROM scheduled_ts - lag(scheduled_ts) OVER w) AS sched_headway_s
    FROM dep
    WINDOW w AS (PARTITION BY route_id, direction_id, stop_id ORDER BY ts)
),
hw_route AS (
    SELECT route_id,
           avg(abs(headway_s - sched_headway_s) / sched_headway_s)
               FILTER (WHERE sched_headway_s > 0) AS headway_deviation,
           stddev_pop(headway_s) / nullif(avg(headway_s), 0) AS headway_cv
    FROM hw WHERE headway_s IS NOT NULL GROUP BY route_id
),
active AS (
    SELECT service_id FROM gtfs_calendar
    WHERE feed_version = gtfs_current_version()
      AND %(day)s::date BETWEEN start_date AND end_date
      AND (ARRAY[monday, tuesday, wednesday, thursday, friday, saturday, sunday])
          [extract(isodow FROM %(day)s::date)::int]
    UNION
    SELECT service_id FROM gtfs_calendar_dates
    WHERE feed_version = gtfs_current_version() AND date = %(day)s::date
      AND exception_type = 1
    EXCEPT
    SELECT service_id FROM gtfs_calendar_dates
    WHERE feed_version = gtfs_current_version() AND date = %(day)s::date
      AND exception_type = 2
),
sched AS (
    SELECT t.route_id, count(*) AS trips_scheduled
    FROM gtfs_trips t JOIN active a USING (service_id)
    WHERE t.feed_version = gtfs_current_version()
    GROUP BY t.route_id
),
agg AS (
    SELECT route_id, min(operator_id) AS operator_id,
           count(*) AS departures,
           count(*) FILTER (WHERE delay_s >= -%(early)s AND delay_s <= %(late)s) AS on_time,
           avg(delay_s) AS mean_delay_s,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY delay_s) AS p90_delay_s,
           avg(dwell_s) AS mean_dwell_s,
           count(DISTINCT trip_id) AS trips_run
    FROM dep GROUP BY route_id
)
SELECT agg.route_id, agg.operator_id, agg.departures, agg.on_time,
       agg.on_time::float8 / nullif(agg.departures, 0) AS on_time_share,
       agg.mean_delay_s, agg.p90_delay_s, agg.mean_dwell_s,
       hw_route.headway_cv, hw_route.headway_deviation,
       agg.trips_run, coalesce(sched.trips_scheduled, 0) AS trips_scheduled
FROM agg
LEFT JOIN hw_route USING (route_id)
LEFT JOIN sched USING (route_id)
ORDER BY agg.route_id
"""

DWELL_BY_STOP_SQL = """
SELECT e.route_id, e.stop_id, s.stop_name, count(*) AS departures,
       avg(e.dwell_s) AS mean_dwell_s, max(e.dwell_s) AS max_dwell_s
FROM vehicle_events e
LEFT JOIN gtfs_stops s ON s.feed_version = gtfs_current_version() AND s.stop_id = e.stop_id
WHERE e.type = 'departure'
  AND e.ts >= (%(day)s::date)::timestamp AT TIME ZONE 'Asia/Tokyo'
  AND e.ts < (%(day)s::date + 1)::timestamp AT TIME ZONE 'Asia/Tokyo'
  AND (%(route)s::text IS NULL OR e.route_id = %(route)s)
  AND (%(operator)s::text IS NULL OR e.operator_id = %(operator)s)
GROUP BY e.route_id, e.stop_id, s.stop_name
ORDER BY e.route_id, mean_dwell_s DESC
"""


@dataclass(frozen=True)
class RoutePerformance:
    """One route's punctuality on a service day, as the operators' dashboard and the council report
    show it."""

    route_id: str
    operator_id: str | None
    departures: int
    on_time: int
    on_time_share: float | None
    mean_delay_s: float | None
    p90_delay_s: float | None
    mean_dwell_s: float | None
    headway_cv: float | None
    headway_deviation: float | None
    trips_run: int
    trips_scheduled: int


def _params(day: date, **kw: Any) -> dict[str, Any]:
    return {"day": day, **kw}


def route_performance(
    conn: psycopg.Connection,
    day: date,
    *,
    early_s: float = 60,
    late_s: float = 300,
    operator_id: str | None = None,
) -> list[RoutePerformance]:
    """Punctuality per route on ``day``, from the tracker's stop arrivals."""
    rows = conn.execute(
        ROUTE_PERFORMANCE_SQL,
        _params(day, early=early_s, late=late_s, operator=operator_id),
    ).fetchall()
    return [_perf(r) for r in rows]


async def route_performance_async(
    conn: psycopg.AsyncConnection,
    day: date,
    *,
    early_s: float = 60,
    late_s: float = 300,
    operator_id: str | None = None,
) -> list[RoutePerformance]:
    """:func:`route_performance` for the API's async connections (same SQL)."""
    cur = await conn.execute(
        ROUTE_PERFORMANCE_SQL,
        _params(day, early=early_s, late=late_s, operator=operator_id),
    )
    return [_perf(r) for r in await cur.fetchall()]


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


def _perf(r: tuple[Any, ...]) -> RoutePerformance:
    return RoutePerformance(
        r[0],
        r[1],
        int(r[2]),
        int(r[3]),
        _f(r[4]),
        _f(r[5]),
        _f(r[6]),
        _f(r[7]),
        _f(r[8]),
        _f(r[9]),
        int(r[10]),
        int(r[11]),
    )


def dwell_by_stop(
    conn: psycopg.Connection,
    day: date,
    route_id: str | None = None,
    operator_id: str | None = None,
) -> list[tuple[str, str, str | None, int, float, float]]:
    """Dwell time per stop on ``day``, to find the stops where buses lose time."""
    rows = conn.execute(
        DWELL_BY_STOP_SQL, _params(day, route=route_id, operator=operator_id)
    ).fetchall()
    return [(r[0], r[1], r[2], int(r[3]), float(r[4]), float(r[5])) for r in rows]
