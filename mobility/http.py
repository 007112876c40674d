"""HTTP: GTFS-Realtime feeds (public, as operators publish them) and operator endpoints
(role operator for its own agency, council and admin for all)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from google.protobuf.json_format import MessageToDict
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from core.i18n import F_, L_
from core.operators import canonical_operator_id, feed_agency_id
from core.web import Principal, ProblemError, Role, db_conn, ensure_own_operator, public
from core.web import require_roles as _require_roles
from mobility.analytics.adherence import route_performance_async
from mobility.predictions import UnknownStopError, UpcomingArrival, upcoming_at_stop
from mobility.predictions.live import live_predictions_async
from mobility.realtime import StopAhead, VehicleRow, trip_updates, vehicle_positions
from mobility.vehicles.schedule import service_day_epoch

log = logging.getLogger(__name__)
router = APIRouter(tags=["mobility"])
staff = _require_roles(Role.OPERATOR, Role.COUNCIL, Role.ADMIN)
PROTOBUF = "application/x-protobuf"
FRESH = timedelta(minutes=15)
MAX_TRACK = timedelta(hours=24)

_VEHICLES_SQL = """
SELECT vs.vehicle_id, vs.ts, vs.lat, vs.lon, vs.speed_mps, vs.heading_deg, vs.status,
       t.trip_id, t.route_id, t.direction_id,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE vs.service_date END,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE vs.next_stop_id END,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE vs.next_stop_sequence END,
       vs.delay_s
FROM vehicle_state vs
LEFT JOIN gtfs_trips t ON t.feed_version = gtfs_current_version() AND t.trip_id = vs.trip_id
WHERE vs.ts > now() - %(fresh)s::interval AND vs.status <> 'offline'
ORDER BY vs.vehicle_id
"""

_AHEAD_SQL = """
SELECT vs.vehicle_id, st.stop_sequence, st.stop_id,
       coalesce(st.arrival_s, st.departure_s), coalesce(st.departure_s, st.arrival_s)
FROM vehicle_state vs
JOIN gtfs_stop_times st ON st.feed_version = gtfs_current_version()
     AND st.trip_id = vs.trip_id AND st.stop_sequence >= vs.next_stop_sequence
WHERE vs.ts > now() - %(fresh)s::interval AND vs.status <> 'offline'
  AND coalesce(st.arrival_s, st.departure_s) IS NOT NULL
ORDER BY vs.vehicle_id, st.stop_sequence
"""


async def _vehicle_rows(conn: AsyncConnection) -> list[VehicleRow]:
    cur = await conn.execute(_VEHICLES_SQL, {"fresh": FRESH})
    return [VehicleRow(*r) for r in await cur.fetchall()]


def _feed_response(msg: Any, fmt: str) -> Response:
    if fmt == "json":
        import json

        body = json.dumps(MessageToDict(msg), ensure_ascii=False)
        return Response(body, media_type="application/json")
    return Response(msg.SerializeToString(), media_type=PROTOBUF)


_FEED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "GTFS-Realtime FeedMessage (protobuf; JSON with ?format=json)",
        "content": {PROTOBUF: {}, "application/json": {}},
    }
}
Format = Annotated[
    Literal["protobuf", "json"], Query(description="protobuf (default) or json for debugging")
]


@router.get(
    "/gtfs-rt/vehicle-positions",
    dependencies=[Depends(public)],
    response_class=Response,
    responses=_FEED_RESPONSES,
    summary="GTFS-Realtime vehicle positions",
)
async def gtfs_rt_vehicle_positions(
    conn: Annotated[AsyncConnection, Depends(db_conn)], format: Format = "protobuf"
) -> Response:
    """Where every bus is now, in the standard feed journey planners already read."""
    return _feed_response(vehicle_positions(await _vehicle_rows(conn), datetime.now(UTC)), format)


@router.get(
    "/gtfs-rt/trip-updates",
    dependencies=[Depends(public)],
    response_class=Response,
    responses=_FEED_RESPONSES,
    summary="GTFS-Realtime trip updates",
)
async def gtfs_rt_trip_updates(
    conn: Annotated[AsyncConnection, Depends(db_conn)], format: Format = "protobuf"
) -> Response:
    """Predicted times at the stops ahead of every bus, so journey planners can show riders
    when their bus really comes rather than the timetable."""
    vehicles = await _vehicle_rows(conn)
    now = datetime.now(UTC)
    try:
        _live, predicted = await live_predictions_async(conn, now)
    except (ValueError, ArithmeticError, LookupError):
        # A prediction bug must not take the public feed down: carry the delay forward.
        log.exception(L_("arrival predictions failed; trip updates carry delays forward"))
        predicted = {}
    days = {v.vehicle_id: v.service_date for v in vehicles}
    ahead: dict[str, list[StopAhead]] = {}
    cur = await conn.execute(_AHEAD_SQL, {"fresh": FRESH})
    for vid, seq, stop_id, arr, dep in await cur.fetchall():
        day = days.get(vid)
        if day is None:
            continue
        day0 = service_day_epoch(day)
        ahead.setdefault(vid, []).append(StopAhead(seq, stop_id, day0 + arr, day0 + dep))
    preds = {vid: p for vid, (_trip, p) in predicted.items()}
    return _feed_response(trip_updates(vehicles, ahead, now, preds), format)


# -- next arrivals at a stop -------------------------------------------------------------


# One bus due at a stop: what a stop sign or app shows a rider waiting there.
class StopArrivalOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stop_id": "m003_01",
                    "trip_id": "平日_08時10分_系統10722",
                    "route_id": "新前橋駅西口線_B",
                    "route_name": "新前橋駅西口線",
                    "headsign": "前橋駅",
                    "vehicle_id": "bus-07",
                    "scheduled": "2026-11-26T08:31:00+09:00",
                    "predicted": "2026-11-26T08:33:40+09:00",
                    "delay_s": 160,
                    "uncertainty_s": 45,
                    "realtime": True,
                }
            ]
        }
    )

    stop_id: str
    trip_id: str
    route_id: str
    route_name: str
    headsign: str | None = None
    vehicle_id: str | None = None
    scheduled: datetime
    predicted: datetime = Field(description="Predicted arrival (the timetable's without a bus)")
    delay_s: int | None = Field(None, description="Predicted minus scheduled; positive = late")
    uncertainty_s: int | None = Field(None, description="Expected error (one sigma), seconds")
    realtime: bool = Field(description="True when predicted from a live vehicle")


StopId = Annotated[str, Path(max_length=200, description="GTFS stop_id")]
Limit = Annotated[int, Query(ge=1, le=50, description="At most this many buses")]


async def _arrivals(conn: AsyncConnection, stop_id: str, limit: int) -> list[UpcomingArrival]:
    if "\x00" in stop_id:
        raise ProblemError(404, "not-found", "Not found", "No such stop.")
    try:
        return await upcoming_at_stop(conn, stop_id, now=datetime.now(UTC), limit=limit)
    except UnknownStopError:
        raise ProblemError(
            404, "not-found", "Not found", F_("No stop {stop}.", stop=repr(stop_id))
        ) from None


@router.get(
    "/v1/stops/{stop_id}/arrivals",
    dependencies=[Depends(public)],
    response_model=list[StopArrivalOut],
    summary="Next buses at a stop (public)",
)
async def stop_arrivals(
    stop_id: StopId, conn: Annotated[AsyncConnection, Depends(db_conn)], limit: Limit = 10
) -> list[StopArrivalOut]:
    """The next buses at a stop, soonest first: predicted arrival times (with delay and
    uncertainty) for buses on their way, the timetable for trips not started yet."""
    return [StopArrivalOut(**r.__dict__) for r in await _arrivals(conn, stop_id, limit)]


# -- operator endpoints ------------------------------------------------------------------


# A vehicle's latest state, for an operator watching the fleet.
class VehicleOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "vehicle_id": "maebashi-av-01",
                    "ts": "2026-11-26T09:15:02+09:00",
                    "lat": 36.3871,
                    "lon": 139.0733,
                    "speed_mps": 5.2,
                    "mode": "autonomous",
                    "status": "in_transit",
                    "trip_id": "平日_06時45分_系統1072",
                    "route_id": "新前橋駅西口線_A",
                    "next_stop_id": "m003_01",
                    "delay_s": 42.0,
                    "dist_along_m": 1530.4,
                    "offset_m": 3.1,
                }
            ]
        }
    )

    vehicle_id: str
    ts: datetime
    lat: float
    lon: float
    speed_mps: float | None = None
    mode: str | None = None
    status: Literal["in_transit", "stopped_at", "off_route", "layover", "offline"]
    trip_id: str | None = None
    route_id: str | None = None
    next_stop_id: str | None = None
    delay_s: float | None = Field(None, description="Schedule deviation; positive = late")
    dist_along_m: float | None = None
    offset_m: float | None = Field(None, description="Distance from the trip's shape")


# One fix of a vehicle's track, for an operator replaying where a bus went.
class TrackPoint(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ts": "2026-11-26T09:15:02+09:00",
                    "lat": 36.3871,
                    "lon": 139.0733,
                    "speed_mps": 5.2,
                    "mode": "autonomous",
                }
            ]
        }
    )

    ts: datetime
    lat: float
    lon: float
    speed_mps: float | None = None
    mode: str | None = None


# Something a vehicle did, for an operator reviewing service or an incident.
class EventOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "vehicle_id": "maebashi-av-01",
                    "ts": "2026-11-26T09:15:02+09:00",
                    "type": "departure",
                    "trip_id": "平日_06時45分_系統1072",
                    "route_id": "新前橋駅西口線_A",
                    "stop_id": "m003_01",
                    "stop_sequence": 4,
                    "delay_s": 42.0,
                    "dwell_s": 18.5,
                    "detail": {},
                }
            ]
        }
    )

    vehicle_id: str
    ts: datetime
    type: str
    trip_id: str | None = None
    route_id: str | None = None
    stop_id: str | None = None
    stop_sequence: int | None = None
    delay_s: float | None = None
    dwell_s: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


# A route's punctuality and regularity over a period, for service planning.
class RoutePerformanceOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "route_id": "新前橋駅西口線_A",
                    "departures": 64,
                    "on_time": 51,
                    "on_time_share": 0.797,
                    "mean_delay_s": 84.2,
                    "p90_delay_s": 402.0,
                    "mean_dwell_s": 19.4,
                    "headway_cv": 0.12,
                    "headway_deviation": 0.08,
                    "trips_run": 4,
                    "trips_scheduled": 4,
                }
            ]
        }
    )

    route_id: str
    departures: int
    on_time: int
    on_time_share: float | None
    mean_delay_s: float | None
    p90_delay_s: float | None
    mean_dwell_s: float | None
    headway_cv: float | None = Field(description="stddev / mean of actual headways")
    headway_deviation: float | None = Field(
        description="mean |actual - scheduled| / scheduled headway"
    )
    trips_run: int
    trips_scheduled: int


Staff = Annotated[Principal, Depends(staff)]
Conn = Annotated[AsyncConnection, Depends(db_conn)]
OperatorId = Annotated[
    str, Path(max_length=200, description="Operator id, corporate number or GTFS agency_id")
]
VehicleId = Annotated[str, Path(max_length=200)]
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


def _own(principal: Principal, operator_id: str, *ids: str) -> str:
    """Scope check; identifiers PostgreSQL could not store (NUL) cannot exist either.
    Returns the GTFS agency id the live data is kept under: the operator id and its
    corporate number (core/operators.toml) name the same operator."""
    for value in (operator_id, *ids):
        if "\x00" in value:
            raise ProblemError(404, "not-found", "Not found", "No such identifier.")
    ensure_own_operator(principal, canonical_operator_id(operator_id))
    return feed_agency_id(operator_id)


@router.get("/v1/operators/{operator_id}/vehicles", response_model=list[VehicleOut])
async def operator_vehicles(
    operator_id: OperatorId, principal: Staff, conn: Conn
) -> list[VehicleOut]:
    """Every vehicle last matched to one of this operator's routes, with its live state."""
    operator_id = _own(principal, operator_id)
    cur = await conn.execute(
        "SELECT vehicle_id, ts, lat, lon, speed_mps, mode, status, trip_id, route_id,"
        " next_stop_id, delay_s, dist_along_m, offset_m FROM vehicle_state"
        " WHERE operator_id = %s ORDER BY vehicle_id",
        [operator_id],
    )
    cols = [d.name for d in cur.description or []]
    return [VehicleOut(**dict(zip(cols, r, strict=True))) for r in await cur.fetchall()]


async def _own_vehicle(conn: AsyncConnection, operator_id: str, vehicle_id: str) -> None:
    cur = await conn.execute(
        "SELECT 1 FROM vehicle_state WHERE vehicle_id = %s AND operator_id = %s",
        [vehicle_id, operator_id],
    )
    if await cur.fetchone() is None:
        raise ProblemError(
            404, "not-found", "Not found", F_("No vehicle {vehicle}.", vehicle=repr(vehicle_id))
        )


def _range(start: datetime, end: datetime, limit: timedelta | None) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ProblemError(
            422,
            "invalid-time-range",
            "Invalid time range",
            "start and end need a UTC offset (RFC 3339).",
        )
    if end <= start:
        raise ProblemError(
            422, "invalid-time-range", "Invalid time range", "end must be after start."
        )
    if limit is not None and end - start > limit:
        raise ProblemError(
            422,
            "invalid-time-range",
            "Invalid time range",
            F_("At most {limit} per request.", limit=limit),
            max_seconds=limit.total_seconds(),
        )


@router.get(
    "/v1/operators/{operator_id}/vehicles/{vehicle_id}/track", response_model=list[TrackPoint]
)
async def vehicle_track(
    operator_id: OperatorId,
    vehicle_id: VehicleId,
    principal: Staff,
    conn: Conn,
    start: Annotated[datetime, Query(description="RFC 3339, inclusive")],
    end: Annotated[datetime, Query(description="RFC 3339, exclusive; at most 24 h after start")],
) -> list[TrackPoint]:
    """The positions one vehicle reported in a time range, in time order."""
    operator_id = _own(principal, operator_id, vehicle_id)
    _range(start, end, MAX_TRACK)
    await _own_vehicle(conn, operator_id, vehicle_id)
    cur = await conn.execute(
        "SELECT ts, lat, lon, speed_mps, mode FROM bus_telemetry"
        " WHERE vehicle_id = %s AND ts >= %s AND ts < %s ORDER BY ts",
        [vehicle_id, start, end],
    )
    return [
        TrackPoint(ts=r[0], lat=r[1], lon=r[2], speed_mps=r[3], mode=r[4])
        for r in await cur.fetchall()
    ]


@router.get(
    "/v1/operators/{operator_id}/stops/{stop_id}/arrivals", response_model=list[StopArrivalOut]
)
async def operator_stop_arrivals(
    operator_id: OperatorId, stop_id: StopId, principal: Staff, conn: Conn, limit: Limit = 10
) -> list[StopArrivalOut]:
    """The next buses of this operator's routes at a stop (predicted where live)."""
    operator_id = _own(principal, operator_id, stop_id)
    cur = await conn.execute(
        "SELECT route_id FROM gtfs_routes WHERE feed_version = gtfs_current_version()"
        " AND agency_id = %s",
        [operator_id],
    )
    own = {r[0] for r in await cur.fetchall()}
    rows = [r for r in await _arrivals(conn, stop_id, 50) if r.route_id in own]
    return [StopArrivalOut(**r.__dict__) for r in rows[:limit]]


EventType = Literal[
    "arrival", "departure", "off_route", "on_route", "overspeed", "offline", "online", "bunching"
]


@router.get("/v1/operators/{operator_id}/events", response_model=list[EventOut])
async def operator_events(  # noqa: PLR0913 (path, query and dependencies FastAPI injects)
    operator_id: OperatorId,
    principal: Staff,
    conn: Conn,
    start: Annotated[datetime, Query(description="RFC 3339, inclusive")],
    end: Annotated[datetime, Query(description="RFC 3339, exclusive")],
    type: Annotated[list[EventType] | None, Query()] = None,
    vehicle_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[EventOut]:
    """Detected events (stop arrivals/departures, off-route, overspeed, offline, bunching)."""
    operator_id = _own(principal, operator_id, *([vehicle_id] if vehicle_id else []))
    _range(start, end, None)
    cur = await conn.execute(
        "SELECT vehicle_id, ts, type, trip_id, route_id, nullif(stop_id, ''), stop_sequence,"
        " delay_s, dwell_s, detail FROM vehicle_events"
        " WHERE operator_id = %s AND ts >= %s AND ts < %s"
        " AND (%s::text[] IS NULL OR type = ANY(%s::text[]))"
        " AND (%s::text IS NULL OR vehicle_id = %s)"
        " ORDER BY ts, vehicle_id LIMIT %s",
        [operator_id, start, end, type, type, vehicle_id, vehicle_id, limit],
    )
    cols = [
        "vehicle_id",
        "ts",
        "type",
        "trip_id",
        "route_id",
        "stop_id",
        "stop_sequence",
        "delay_s",
        "dwell_s",
        "detail",
    ]
    return [EventOut(**dict(zip(cols, r, strict=True))) for r in await cur.fetchall()]


@router.get(
    "/v1/operators/{operator_id}/routes/performance", response_model=list[RoutePerformanceOut]
)
async def operator_route_performance(
    operator_id: OperatorId,
    principal: Staff,
    conn: Conn,
    day: Annotated[date, Query(description="Service day (Asia/Tokyo), YYYY-MM-DD")],
    early_s: Annotated[float, Query(ge=0, le=3600, description="On time if not earlier")] = 60,
    late_s: Annotated[float, Query(ge=0, le=7200, description="On time if not later")] = 300,
) -> list[RoutePerformanceOut]:
    """Per route: on-time departures, delay (mean, p90), headway regularity, dwell, trips."""
    operator_id = _own(principal, operator_id)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ProblemError(
            422,
            "invalid-day",
            "Invalid day",
            F_("Give a day {first}..{last}.", first=FIRST_DAY, last=LAST_DAY),
        )
    rows = await route_performance_async(
        conn, day, early_s=early_s, late_s=late_s, operator_id=operator_id
    )
    return [
        RoutePerformanceOut(**{k: v for k, v in r.__dict__.items() if k != "operator_id"})
        for r in rows
    ]
