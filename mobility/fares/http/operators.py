"""Operators: taxi ride and bus tap submissions, reversals and monthly statements."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, Response

from core.web import ProblemError, Role
from mobility.fares import ledger, settlement
from mobility.fares.guard import refuse_twelve_digit_ids
from mobility.fares.policy import load_policies
from mobility.fares.schemas import (
    BusTapIn,
    BusTapOut,
    ReversalIn,
    TaxiRideIn,
    TaxiRideOut,
    staff_view,
)

from .common import (
    Conn,
    OperatorId,
    OperatorOrAdmin,
    RecordId,
    ScreenedRoute,
    operator_scope,
    problems,
    pseudonym_key,
    road_distance,
    submission_window,
)
from .residents import fare_lookup

router = APIRouter(route_class=ScreenedRoute)


@router.post(
    "/v1/operators/{operator_id}/taxi-rides",
    tags=["operators"],
    response_model=TaxiRideOut,
    responses=problems(409),
)
async def submit_taxi_ride(
    operator_id: OperatorId,
    body: TaxiRideIn,
    request: Request,
    principal: OperatorOrAdmin,
    conn: Conn,
) -> TaxiRideOut:
    """Decide each rider's MyTaku subsidy now; re-submitting a record id returns the stored
    decision, a different record under the same id is a 409. Records are accepted within
    the submission window (MEBUKU_FARES_SUBMISSION_WINDOW_DAYS after pickup, nothing in the
    future); others get 422 ``outside-submission-window``."""
    operator_id = operator_scope(principal, operator_id)
    refuse_twelve_digit_ids(record_id=body.record_id, vehicle_id=body.vehicle_id)
    ride = ledger.TaxiRide(
        operator_id,
        body.record_id,
        body.vehicle_id,
        body.pickup_at,
        body.dropoff_at,
        body.pickup.lon,
        body.pickup.lat,
        body.dropoff.lon,
        body.dropoff.lat,
        body.meter_fare_yen,
        tuple(body.rider_cards),
    )
    out = await ledger.submit_taxi_ride(
        conn,
        pseudonym_key(request),
        ride,
        load_policies(),
        await road_distance(request),
        now=datetime.now(UTC),
        window=submission_window(request),
    )
    return TaxiRideOut.model_validate(
        out, from_attributes=True, context=staff_view(principal.role is Role.ADMIN)
    )


@router.post(
    "/v1/operators/{operator_id}/bus-taps",
    tags=["operators"],
    response_model=BusTapOut,
    responses=problems(409),
)
async def submit_bus_tap(
    operator_id: OperatorId,
    body: BusTapIn,
    request: Request,
    principal: OperatorOrAdmin,
    conn: Conn,
) -> BusTapOut:
    """Fare from the GTFS zones and the resident discount for one IC tap-on/tap-off."""
    operator_id = operator_scope(principal, operator_id)
    refuse_twelve_digit_ids(record_id=body.record_id)
    tap = ledger.BusTap(
        operator_id,
        body.record_id,
        body.route_id,
        body.origin_stop_id,
        body.destination_stop_id,
        body.tap_on_at,
        body.tap_off_at,
        body.card,
    )
    out = await ledger.submit_bus_tap(
        conn,
        pseudonym_key(request),
        tap,
        load_policies(),
        fare_lookup,
        now=datetime.now(UTC),
        window=submission_window(request),
    )
    return BusTapOut.model_validate(
        out, from_attributes=True, context=staff_view(principal.role is Role.ADMIN)
    )


@router.post("/v1/operators/{operator_id}/{source}/{record_id}/reversal", tags=["operators"])
async def reverse_record(
    operator_id: OperatorId,
    source: Literal["taxi", "bus"],
    record_id: RecordId,
    body: ReversalIn,
    principal: OperatorOrAdmin,
    conn: Conn,
) -> dict[str, list[int]]:
    """Cancel a record's ledger entries with reversal entries (the ledger is never edited)."""
    operator_id = operator_scope(principal, operator_id)
    ids = await ledger.reverse_record(conn, operator_id, source, record_id, body.note)
    return {"reversal_entry_ids": ids}


@router.get(
    "/v1/operators/{operator_id}/statements/{month}",
    tags=["operators"],
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
async def operator_statement(
    operator_id: OperatorId,
    month: str,
    principal: OperatorOrAdmin,
    conn: Conn,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """The monthly statement (YYYY-MM): JSON, or CSV for Excel (UTF-8 BOM, CRLF). A closed
    month serves the stored bytes exactly as issued (SHA-256 verified)."""
    operator_id = operator_scope(principal, operator_id)
    try:
        m = settlement.parse_month(month)
    except ValueError:
        raise ProblemError(
            422, "bad-month", "Month must be YYYY-MM", "Give the month as YYYY-MM, e.g. 2026-04."
        ) from None
    body = await settlement.closed_statement_body(conn, operator_id, m, format)
    if body is None:
        body = settlement.render(await settlement.operator_statement(conn, operator_id, m), format)
    if format == "csv":
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                # built from the parsed month, never from the raw path text
                "Content-Disposition": (
                    f'attachment; filename="statement-{operator_id}-{m:%Y-%m}.csv"'
                )
            },
        )
    return Response(body, media_type="application/json")
