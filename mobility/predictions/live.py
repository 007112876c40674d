"""Live predictions from the database: vehicle state + timetable + learned statistics.

The thin adapter around the engine. It reads the fresh vehicles on trips, their trips'
stop times, when the stopped ones arrived, the segment runs of the last 30 minutes and the
learned statistics, and hands plain values to :class:`~mobility.predictions.engine.Predictor`.
Used by the GTFS-RT trip updates, the stop arrivals endpoints and the accuracy sampler.

A vehicle's progress on its current segment is told from its position between the
previous and the next stop (straight-line distances, so no shape is needed per request).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection

from core.geo import distance_m
from mobility.predictions.engine import PlannedStop, PlannedTrip, Prediction, Predictor, Progress
from mobility.predictions.model import Model
from mobility.predictions.store import (
    RECENT_SQL,
    load_rows,
    load_rows_async,
    traversals,
)
from mobility.vehicles.schedule import service_day_epoch

FRESH = timedelta(minutes=15)
MODEL_TTL_S = 300.0


@dataclass(frozen=True)
class LiveVehicle:
    """A fresh vehicle on a trip, as ``vehicle_state`` has it."""

    vehicle_id: str
    ts: float
    lat: float
    lon: float
    status: str
    trip_id: str
    route_id: str
    direction_id: int | None
    service_date: date
    next_stop_sequence: int | None
    arrived_at: float | None  # arrival event at the next stop (when dwelling there)


@dataclass(frozen=True)
class StopTimeRow:
    """One stop of a trip from the current feed (times from the service day's midnight)."""

    trip_id: str
    stop_sequence: int
    stop_id: str
    arrival_s: int
    departure_s: int
    lat: float
    lon: float


_VEHICLES = """
SELECT vs.vehicle_id, vs.ts, vs.lat, vs.lon, vs.status, vs.trip_id, t.route_id,
       t.direction_id, vs.service_date, vs.next_stop_sequence,
       (SELECT max(e.ts) FROM vehicle_events e
        WHERE e.vehicle_id = vs.vehicle_id AND e.type = 'arrival' AND e.trip_id = vs.trip_id
          AND e.stop_sequence = vs.next_stop_sequence AND e.ts > vs.ts - interval '3 hours')
FROM vehicle_state vs
JOIN gtfs_trips t ON t.feed_version = gtfs_current_version() AND t.trip_id = vs.trip_id
WHERE vs.ts > %(now)s - %(fresh)s::interval AND vs.status <> 'offline'
  AND vs.service_date IS NOT NULL AND vs.next_stop_sequence IS NOT NULL
ORDER BY vs.vehicle_id
"""

STOP_TIMES_SQL = """
SELECT st.trip_id, st.stop_sequence, st.stop_id,
       coalesce(st.arrival_s, st.departure_s), coalesce(st.departure_s, st.arrival_s),
       s.stop_lat, s.stop_lon
FROM gtfs_stop_times st
JOIN gtfs_stops s ON s.feed_version = st.feed_version AND s.stop_id = st.stop_id
WHERE st.feed_version = gtfs_current_version() AND st.trip_id = ANY(%(trips)s)
  AND coalesce(st.arrival_s, st.departure_s) IS NOT NULL AND s.stop_lat IS NOT NULL
ORDER BY st.trip_id, st.stop_sequence
"""


def vehicles_from_rows(rows: Iterable[Sequence[Any]]) -> list[LiveVehicle]:
    """``_VEHICLES`` rows as plain values."""
    return [
        LiveVehicle(
            str(r[0]),
            r[1].timestamp(),
            float(r[2]),
            float(r[3]),
            str(r[4]),
            str(r[5]),
            str(r[6]),
            None if r[7] is None else int(r[7]),
            r[8],
            None if r[9] is None else int(r[9]),
            None if r[10] is None else r[10].timestamp(),
        )
        for r in rows
    ]


def stop_times_from_rows(rows: Iterable[Sequence[Any]]) -> dict[str, list[StopTimeRow]]:
    """``STOP_TIMES_SQL`` rows grouped by trip, in stop order."""
    out: dict[str, list[StopTimeRow]] = {}
    for r in rows:
        out.setdefault(str(r[0]), []).append(
            StopTimeRow(str(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4]), r[5], r[6])
        )
    return out


def planned_trip(
    trip_id: str, route_id: str, direction_id: int | None, day: date, rows: Sequence[StopTimeRow]
) -> PlannedTrip:
    """A trip on its service day with epochs and straight-line distances between stops."""
    day0 = service_day_epoch(day)
    stops: list[PlannedStop] = []
    dist = 0.0
    for i, r in enumerate(rows):
        if i:
            p = rows[i - 1]
            dist += distance_m(p.lat, p.lon, r.lat, r.lon)
        stops.append(
            PlannedStop(r.stop_id, r.stop_sequence, day0 + r.arrival_s, day0 + r.departure_s, dist)
        )
    return PlannedTrip(trip_id, route_id, direction_id, tuple(stops))


def progress_of(v: LiveVehicle, trip: PlannedTrip, rows: Sequence[StopTimeRow]) -> Progress | None:
    """Where the vehicle is on its trip (None when its next stop is not on the trip)."""
    idx = next((i for i, s in enumerate(trip.stops) if s.sequence == v.next_stop_sequence), None)
    if idx is None:
        return None
    stop = trip.stops[idx]
    if idx == 0:
        return Progress(v.ts, 0, 0.0, started=False)
    if v.arrived_at is not None or v.status == "stopped_at":
        return Progress(v.ts, idx, stop.dist_m, at_stop=True, arrived_at=v.arrived_at or v.ts)
    prev, nxt = rows[idx - 1], rows[idx]
    done = distance_m(prev.lat, prev.lon, v.lat, v.lon)
    left = distance_m(v.lat, v.lon, nxt.lat, nxt.lon)
    share = done / (done + left) if done + left > 0 else 0.0
    a = trip.stops[idx - 1].dist_m
    return Progress(v.ts, idx, a + share * (stop.dist_m - a))


def predict_all(
    predictor: Predictor,
    vehicles: Sequence[LiveVehicle],
    stop_times: Mapping[str, Sequence[StopTimeRow]],
    now: float,
) -> dict[str, tuple[PlannedTrip, list[Prediction]]]:
    """Per vehicle: its trip and the engine's predictions for the stops ahead (pure)."""
    out: dict[str, tuple[PlannedTrip, list[Prediction]]] = {}
    for v in vehicles:
        rows = stop_times.get(v.trip_id)
        if not rows or len(rows) < 2:
            continue
        trip = planned_trip(v.trip_id, v.route_id, v.direction_id, v.service_date, rows)
        prog = progress_of(v, trip, rows)
        if prog is None:
            continue
        out[v.vehicle_id] = (trip, predictor.predict(trip, prog, now, vehicle_id=v.vehicle_id))
    return out


class ModelCache:
    """The learned model, re-read from the database at most every ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = MODEL_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._model: Model | None = None
        self._at = 0.0

    def fresh(self) -> Model | None:
        """The cached model while it is young enough."""
        if self._model is not None and time.monotonic() - self._at < self.ttl_s:
            return self._model
        return None

    def put(self, model: Model) -> Model:
        """Remember a newly loaded model."""
        self._model, self._at = model, time.monotonic()
        return model

    def get(self, conn: psycopg.Connection[Any]) -> Model:
        """The model (sync connection)."""
        return self.fresh() or self.put(Model.from_rows(load_rows(conn)))

    async def get_async(self, conn: AsyncConnection[Any]) -> Model:
        """The model (async connection)."""
        return self.fresh() or self.put(Model.from_rows(await load_rows_async(conn)))


MODELS = ModelCache()


def _predictor(model: Model, recent: Iterable[Sequence[Any]]) -> Predictor:
    p = Predictor(model)
    for vid, t in traversals(recent):
        p.observe(t, vehicle_id=vid)
    return p


async def live_predictions_async(
    conn: AsyncConnection[Any], now: datetime
) -> tuple[list[LiveVehicle], dict[str, tuple[PlannedTrip, list[Prediction]]]]:
    """Every fresh vehicle's predictions (async: the API)."""
    cur = await conn.execute(_VEHICLES, {"now": now, "fresh": FRESH})
    vehicles = vehicles_from_rows(await cur.fetchall())
    if not vehicles:
        return [], {}
    cur = await conn.execute(STOP_TIMES_SQL, {"trips": sorted({v.trip_id for v in vehicles})})
    stop_times = stop_times_from_rows(await cur.fetchall())
    cur = await conn.execute(RECENT_SQL, {"now": now})
    predictor = _predictor(await MODELS.get_async(conn), await cur.fetchall())
    return vehicles, predict_all(predictor, vehicles, stop_times, now.timestamp())


def live_predictions(
    conn: psycopg.Connection[Any], now: datetime, models: ModelCache = MODELS
) -> tuple[list[LiveVehicle], dict[str, tuple[PlannedTrip, list[Prediction]]]]:
    """Every fresh vehicle's predictions (sync: the worker's accuracy sampler)."""
    vehicles = vehicles_from_rows(conn.execute(_VEHICLES, {"now": now, "fresh": FRESH}))
    if not vehicles:
        return [], {}
    stop_times = stop_times_from_rows(
        conn.execute(STOP_TIMES_SQL, {"trips": sorted({v.trip_id for v in vehicles})})
    )
    predictor = _predictor(models.get(conn), conn.execute(RECENT_SQL, {"now": now}).fetchall())
    return vehicles, predict_all(predictor, vehicles, stop_times, now.timestamp())


def forget_model(models: ModelCache = MODELS) -> None:
    """Make the next request re-read the statistics (after a refresh, in tests)."""
    models._model = None
