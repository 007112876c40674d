"""The learning as a rollup: stop events -> observations -> statistics, incrementally.

:func:`refresh` turns the arrival and departure events stored since the last watermark
into segment runs and dwells (``mobility_prediction_obs``) and recomputes the statistics
of exactly the cells they touched (``mobility_prediction_stats``: count, median, 10th and
90th percentile over the last eight weeks by default, ``MEBUKU_PREDICTION_WINDOW_DAYS``), in
one transaction. It re-reads a short window behind the watermark because an event's
``created_at`` is its writer's transaction start and a transaction commits a little later;
re-read rows are ignored by the primary key.
:func:`load_rows` / :func:`load_rows_async` read the statistics back as the engine's
:class:`~mobility.predictions.model.StatRow`.

Observations older than the window are deleted by the same refresh (nothing reads them),
and the statistics of the cells they leave are recomputed, or removed when no observation
is left, so a route that stopped running does not keep last season's times for ever.

A dwell is "held" (not learned from) when the bus arrived more than 15 s early and left
within 15 s of its timetable departure: it waited for the timetable, not for riders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection

from mobility.predictions.model import Stat, StatRow, Traversal

WATERMARK = "stats"
LOOKBACK = timedelta(minutes=2)
WINDOW = timedelta(days=56)

_DAY = "CASE WHEN extract(isodow FROM {t} AT TIME ZONE 'Asia/Tokyo') >= 6 THEN 1 ELSE 0 END"
_HOUR = "extract(hour FROM {t} AT TIME ZONE 'Asia/Tokyo')::smallint"

# Segment runs: each arrival with the same trip's departure from the stop before.
TRAVERSALS = """
SELECT a.vehicle_id, d.ts AS dep_ts, a.route_id, coalesce(a.direction_id, -1) AS direction_id,
       d.stop_id AS from_stop, a.stop_id AS to_stop,
       extract(epoch FROM a.ts - d.ts) AS seconds,
       extract(epoch FROM a.scheduled_ts - d.scheduled_ts) AS scheduled_s
FROM vehicle_events a
CROSS JOIN LATERAL (
    SELECT p.ts, p.stop_id, p.scheduled_ts FROM vehicle_events p
    WHERE p.vehicle_id = a.vehicle_id AND p.type = 'departure' AND p.trip_id = a.trip_id
      AND p.service_date IS NOT DISTINCT FROM a.service_date
      AND p.stop_sequence < a.stop_sequence
      AND p.ts <= a.ts AND p.ts > a.ts - interval '3 hours'
    ORDER BY p.stop_sequence DESC LIMIT 1
) d
WHERE a.type = 'arrival' AND a.route_id IS NOT NULL AND a.ts > d.ts AND {where}
"""

_INSERT_TRAVEL = f"""
INSERT INTO mobility_prediction_obs (kind, vehicle_id, ts, route_id, direction_id, stop_id,
    to_stop_id, day_type, band, seconds, scheduled_s)
SELECT 'travel', vehicle_id, dep_ts, route_id, direction_id, from_stop, to_stop,
       {_DAY.format(t="dep_ts")}, {_HOUR.format(t="dep_ts")}, seconds, scheduled_s
FROM ({TRAVERSALS.format(where="a.created_at > %(since)s")}) t
ON CONFLICT DO NOTHING
"""

_INSERT_DWELL = f"""
INSERT INTO mobility_prediction_obs (kind, vehicle_id, ts, route_id, direction_id, stop_id,
    day_type, band, seconds, held)
SELECT 'dwell', d.vehicle_id, d.ts - make_interval(secs => d.dwell_s), d.route_id,
       coalesce(d.direction_id, -1), d.stop_id,
       {_DAY.format(t="(d.ts - make_interval(secs => d.dwell_s))")},
       {_HOUR.format(t="(d.ts - make_interval(secs => d.dwell_s))")},
       d.dwell_s,
       coalesce(a.delay_s < -15 AND d.delay_s <= 15, false)
FROM vehicle_events d
LEFT JOIN LATERAL (
    SELECT x.delay_s FROM vehicle_events x
    WHERE x.vehicle_id = d.vehicle_id AND x.type = 'arrival' AND x.trip_id = d.trip_id
      AND x.stop_sequence = d.stop_sequence AND x.ts <= d.ts AND x.ts > d.ts - interval '3 hours'
    ORDER BY x.ts DESC LIMIT 1
) a ON true
WHERE d.type = 'departure' AND d.created_at > %(since)s AND d.route_id IS NOT NULL
  AND d.dwell_s IS NOT NULL AND d.dwell_s >= 0
  -- the first stop's "dwell" is the layover before the trip
  AND EXISTS (
      SELECT 1 FROM vehicle_events e
      WHERE e.vehicle_id = d.vehicle_id AND e.trip_id = d.trip_id AND e.type = 'departure'
        AND e.stop_sequence < d.stop_sequence AND e.ts < d.ts AND e.ts > d.ts - interval '3 hours'
  )
ON CONFLICT DO NOTHING
"""

_CELL = "kind, route_id, direction_id, stop_id, to_stop_id, day_type, band"
_CELL_TYPES = "text[], text[], int[], text[], text[], smallint[], smallint[]"
# The cells given as parallel arrays (those whose oldest observations expired).
_GIVEN = (
    "unnest("
    + ", ".join(
        f"%({c.strip()})s::{t.strip()}"
        for c, t in zip(_CELL.split(","), _CELL_TYPES.split(","), strict=True)
    )
    + f") AS g({_CELL})"
)

_EXPIRE = f"""
WITH gone AS (
    DELETE FROM mobility_prediction_obs WHERE ts <= now() - %(window)s::interval
    RETURNING {_CELL}
)
SELECT DISTINCT {_CELL} FROM gone
"""

_DROP_GIVEN = f"""
DELETE FROM mobility_prediction_stats s USING {_GIVEN}
WHERE ({", ".join("s." + c.strip() for c in _CELL.split(","))})
    = ({", ".join("g." + c.strip() for c in _CELL.split(","))})
"""

_RECOMPUTE = f"""
WITH touched AS (
    SELECT DISTINCT {_CELL} FROM mobility_prediction_obs WHERE inserted_at = now()
    UNION
    SELECT {_CELL} FROM {_GIVEN}
)
INSERT INTO mobility_prediction_stats ({_CELL}, n, median_s, p10_s, p90_s, ratio, updated_at)
SELECT {", ".join("o." + c.strip() for c in _CELL.split(","))}, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.seconds),
       percentile_cont(0.1) WITHIN GROUP (ORDER BY o.seconds),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY o.seconds),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY o.seconds / o.scheduled_s)
           FILTER (WHERE o.scheduled_s > 0),
       now()
FROM mobility_prediction_obs o JOIN touched USING ({_CELL})
WHERE o.ts > now() - %(window)s::interval AND NOT o.held
  AND (o.seconds > 0 OR o.kind = 'dwell')
GROUP BY {", ".join("o." + c.strip() for c in _CELL.split(","))}
ON CONFLICT ({_CELL}) DO UPDATE SET n = EXCLUDED.n, median_s = EXCLUDED.median_s,
    p10_s = EXCLUDED.p10_s, p90_s = EXCLUDED.p90_s, ratio = EXCLUDED.ratio,
    updated_at = EXCLUDED.updated_at
"""


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did."""

    observations: int
    cells: int
    watermark: datetime


def refresh(conn: psycopg.Connection[Any], window: timedelta = WINDOW) -> RefreshResult:
    """Learn from the stop events stored since the last refresh and forget the observations
    older than ``window`` (one transaction)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT created_at FROM mobility_prediction_watermark WHERE name = %s FOR UPDATE",
            [WATERMARK],
        ).fetchone()
        mark = conn.execute("SELECT now()").fetchone()
        assert mark is not None
        now: datetime = mark[0]
        since = (row[0] - LOOKBACK) if row else datetime.fromtimestamp(0).astimezone()
        n = conn.execute(_INSERT_TRAVEL, {"since": since}).rowcount
        n += conn.execute(_INSERT_DWELL, {"since": since}).rowcount
        expired = conn.execute(_EXPIRE, {"window": window}).fetchall()
        given = {c.strip(): [r[i] for r in expired] for i, c in enumerate(_CELL.split(","))}
        cells = 0
        if expired:
            conn.execute(_DROP_GIVEN, given)
        if n or expired:
            cells = conn.execute(_RECOMPUTE, {"window": window, **given}).rowcount
        conn.execute(
            "INSERT INTO mobility_prediction_watermark (name, created_at) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET created_at = EXCLUDED.created_at,"
            " updated_at = now()",
            [WATERMARK, now],
        )
    return RefreshResult(max(n, 0), max(cells, 0), now)


_LOAD = """
SELECT kind, route_id, direction_id, stop_id, to_stop_id, day_type, band, n, median_s, p10_s,
       p90_s, ratio
FROM mobility_prediction_stats
"""


def stat_rows(rows: Iterable[Sequence[Any]]) -> list[StatRow]:
    """Database rows (in ``_LOAD``'s order) as the engine's statistics rows."""
    return [
        StatRow(
            str(r[0]),
            str(r[1]),
            int(r[2]),
            str(r[3]),
            str(r[4]),
            int(r[5]),
            int(r[6]),
            Stat(int(r[7]), float(r[8]), float(r[9]), float(r[10])),
            None if r[11] is None else float(r[11]),
        )
        for r in rows
    ]


def load_rows(conn: psycopg.Connection[Any]) -> list[StatRow]:
    """Every learned cell."""
    return stat_rows(conn.execute(_LOAD).fetchall())


async def load_rows_async(conn: AsyncConnection[Any]) -> list[StatRow]:
    """Every learned cell (async)."""
    cur = await conn.execute(_LOAD)
    return stat_rows(await cur.fetchall())


RECENT_SQL = (
    TRAVERSALS.format(where="a.ts > %(now)s - interval '30 minutes' AND a.ts <= %(now)s")
    + " ORDER BY a.ts"
)


def traversals(rows: Iterable[Sequence[Any]]) -> list[tuple[str, Traversal]]:
    """(vehicle_id, Traversal) from ``RECENT_SQL`` rows, for the engine's live memory."""
    out = []
    for vid, dep, route, direction, a, b, secs, sched in rows:
        out.append(
            (
                str(vid),
                Traversal(
                    str(route),
                    None if direction == -1 else int(direction),
                    str(a),
                    str(b),
                    dep.timestamp(),
                    float(secs),
                    None if sched is None else float(sched),
                ),
            )
        )
    return out
