"""GTFS-Realtime 2.0 feeds (VehiclePositions, TripUpdates) from vehicle state rows.

Pure: takes plain rows and the remaining stop times, returns a FeedMessage built with
gtfs-realtime-bindings. Incrementality is FULL_DATASET. Trip updates carry the arrival
prediction engine's times and uncertainty (mobility.predictions) when given them; without
them they propagate the vehicle's current delay to the stops still ahead (the baseline the
engine is measured against), then make the times
consistent the way the MobilityData GTFS-Realtime validator demands: no prediction in the
past, departure never before arrival (E025), and strictly increasing times from one stop
to the next (E022) even where the timetable gives two consecutive stops the same minute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from google.transit import gtfs_realtime_pb2 as rt

if TYPE_CHECKING:
    from mobility.predictions.engine import Prediction

FULL = rt.FeedHeader.FULL_DATASET


@dataclass(frozen=True)
class VehicleRow:
    """A vehicle_state row as the feeds need it, so the feed builders stay free of SQL."""

    vehicle_id: str
    ts: datetime
    lat: float
    lon: float
    speed_mps: float | None
    heading_deg: float | None
    status: str
    trip_id: str | None
    route_id: str | None
    direction_id: int | None
    service_date: date | None
    next_stop_id: str | None
    next_stop_sequence: int | None
    delay_s: float | None


@dataclass(frozen=True)
class StopAhead:
    """A scheduled stop still ahead of a trip: where trip updates put their predictions."""

    stop_sequence: int
    stop_id: str
    arrival_epoch: float  # scheduled
    departure_epoch: float


def _header(msg: rt.FeedMessage, now: datetime) -> None:
    msg.header.gtfs_realtime_version = "2.0"
    msg.header.incrementality = FULL
    msg.header.timestamp = int(now.timestamp())


def _trip(desc: rt.TripDescriptor, v: VehicleRow) -> None:
    assert v.trip_id is not None
    desc.trip_id = v.trip_id
    if v.route_id:
        desc.route_id = v.route_id
    if v.direction_id is not None:
        desc.direction_id = v.direction_id
    if v.service_date:
        desc.start_date = v.service_date.strftime("%Y%m%d")
    desc.schedule_relationship = rt.TripDescriptor.SCHEDULED


def vehicle_positions(vehicles: Iterable[VehicleRow], now: datetime) -> rt.FeedMessage:
    """The VehiclePositions feed journey planners poll; offline vehicles are left out so
    no app shows a bus that stopped reporting as if it were still there."""
    msg = rt.FeedMessage()
    _header(msg, now)
    for v in vehicles:
        if v.status == "offline":
            continue
        ent = msg.entity.add()
        ent.id = v.vehicle_id
        vp = ent.vehicle
        vp.vehicle.id = v.vehicle_id
        vp.timestamp = min(int(v.ts.timestamp()), int(now.timestamp()))  # E012
        vp.position.latitude = v.lat
        vp.position.longitude = v.lon
        if v.heading_deg is not None:
            vp.position.bearing = v.heading_deg
        if v.speed_mps is not None:
            vp.position.speed = v.speed_mps
        if v.trip_id and v.next_stop_id and v.next_stop_sequence is not None:
            # A trip only while a stop lies ahead, as in the trip updates (W003, E041).
            _trip(vp.trip, v)
            vp.stop_id = v.next_stop_id
            vp.current_stop_sequence = v.next_stop_sequence
            vp.current_status = (
                rt.VehiclePosition.STOPPED_AT
                if v.status == "stopped_at"
                else rt.VehiclePosition.IN_TRANSIT_TO
            )
    return msg


def trip_updates(
    vehicles: Iterable[VehicleRow],
    stops_ahead: Mapping[str, Sequence[StopAhead]],
    now: datetime,
    predictions: Mapping[str, Sequence[Prediction]] | None = None,
) -> rt.FeedMessage:
    """One TripUpdate per vehicle on a trip; ``stops_ahead[vehicle_id]`` are the trip's
    stops from the next one on (scheduled epochs). Where ``predictions[vehicle_id]`` holds
    the engine's predictions (mobility.predictions) they give the times and the
    ``uncertainty``; otherwise the current delay is carried forward."""
    msg = rt.FeedMessage()
    _header(msg, now)
    for v in vehicles:
        if v.status == "offline" or not v.trip_id:
            continue
        ahead = stops_ahead.get(v.vehicle_id, ())
        if not ahead or not v.next_stop_id:
            continue  # trip finished: no update without stop times (E041)
        ent = msg.entity.add()
        ent.id = f"{v.vehicle_id}:{v.trip_id}"
        tu = ent.trip_update
        _trip(tu.trip, v)
        tu.vehicle.id = v.vehicle_id
        tu.timestamp = min(int(v.ts.timestamp()), int(now.timestamp()))  # E012
        delay = round(v.delay_s or 0.0)
        tu.delay = delay
        engine = (predictions or {}).get(v.vehicle_id)
        if engine and len(engine) == len(ahead):
            _engine_times(tu, ahead, engine)
            continue
        for s, (arr, dep) in zip(ahead, predicted_times(ahead, delay, now), strict=True):
            stu = tu.stop_time_update.add()
            stu.stop_sequence = s.stop_sequence
            stu.stop_id = s.stop_id
            stu.arrival.time = arr
            stu.arrival.delay = arr - round(s.arrival_epoch)
            stu.departure.time = dep
            stu.departure.delay = dep - round(s.departure_epoch)
            stu.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SCHEDULED
    return msg


def _engine_times(
    tu: rt.TripUpdate, ahead: Sequence[StopAhead], engine: Sequence[Prediction]
) -> None:
    """Stop time updates from the engine: times, delays and the uncertainty (seconds)."""
    for s, p in zip(ahead, engine, strict=True):
        stu = tu.stop_time_update.add()
        stu.stop_sequence = s.stop_sequence
        stu.stop_id = s.stop_id
        stu.arrival.time = p.arrival
        stu.arrival.delay = p.arrival - round(s.arrival_epoch)
        stu.arrival.uncertainty = p.uncertainty
        stu.departure.time = p.departure
        stu.departure.delay = p.departure - round(s.departure_epoch)
        stu.departure.uncertainty = p.uncertainty
        stu.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SCHEDULED


def predicted_times(ahead: Sequence[StopAhead], delay: int, now: datetime) -> list[tuple[int, int]]:
    """(arrival, departure) epochs per stop: schedule + delay, then made consistent.

    The first stop ahead is never predicted before ``now``; each departure is at or after
    its arrival; each arrival is at least one second after the previous departure, so
    stops that share a timetable minute still get strictly increasing times.
    """
    out: list[tuple[int, int]] = []
    floor = int(now.timestamp())
    for s in ahead:
        arr = max(round(s.arrival_epoch) + delay, floor)
        dep = max(round(s.departure_epoch) + delay, arr)
        out.append((arr, dep))
        floor = dep + 1
    return out
