"""Residents: their subsidy standing, ledger entries, IC cards and fare quotes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from cachetools import TTLCache
from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg import AsyncConnection

from core.i18n import F_
from core.operators import canonical_operator_id
from core.web import ProblemError, rate_limit
from mobility.fares import cards, ledger
from mobility.fares import residents as resident_store
from mobility.fares.policy import load_policies
from mobility.fares.rules import (
    JST,
    RiderUsage,
    age_on,
    bus_discount,
    facts_on,
    in_hours,
    local_day,
    mytaku_eligibility,
    taxi_subsidies,
)
from mobility.fares.schemas import (
    CardIn,
    CardOut,
    MeOut,
    QuoteIn,
    QuoteOut,
    RideOut,
    SubsidyOut,
)

from .common import Conn, Resident, RowId, ScreenedRoute, problems, pseudonym_key, resident_id
from .errors import FARE_NOT_FOUND_DETAIL

router = APIRouter(route_class=ScreenedRoute)


@router.get("/v1/me", tags=["residents"], response_model=MeOut)
async def me(principal: Resident) -> MeOut:
    """My resident number."""
    return MeOut(resident_id=resident_id(principal))


@router.get("/v1/me/subsidy", tags=["residents"], response_model=SubsidyOut)
async def me_subsidy(principal: Resident, conn: Conn) -> SubsidyOut:
    """MyTaku rides left today and this fiscal year, and yen received so far."""
    st = await ledger.subsidy_status(
        conn, resident_id(principal), load_policies(), datetime.now(UTC)
    )
    return SubsidyOut.model_validate(st, from_attributes=True)


@router.get("/v1/me/rides", tags=["residents"], response_model=list[RideOut])
async def me_rides(
    principal: Resident, conn: Conn, limit: int = Query(100, ge=1, le=1000)
) -> list[RideOut]:
    """Ledger entries about me (subsidies, discounts and their reversals), newest first."""
    rows = await ledger.resident_rides(conn, resident_id(principal), limit)
    return [RideOut.model_validate(r) for r in rows]


@router.get("/v1/me/cards", tags=["residents"], response_model=list[CardOut])
async def me_cards(principal: Resident, conn: Conn, include_ended: bool = False) -> list[CardOut]:
    """My IC cards (masked), active ones only unless ``include_ended``."""
    found = await cards.list_cards(conn, resident_id(principal), include_ended)
    return [CardOut.model_validate(c, from_attributes=True) for c in found]


CARD_LINKS_PER_HOUR = 10


def _link_bucket(request: Request) -> str:
    return f"resident:{request.state.fares_resident}"


_card_link_limit = rate_limit(
    "card-link", capacity=CARD_LINKS_PER_HOUR, per_seconds=3600.0, key=_link_bucket
)


async def card_link_rate_limit(request: Request, principal: Resident) -> None:
    """Linking attempts per resident (not per address): 10 an hour, so nobody can probe
    which card numbers are taken."""
    request.state.fares_resident = resident_id(principal)
    await _card_link_limit(request)


@router.post(
    "/v1/me/cards",
    tags=["residents"],
    response_model=CardOut,
    status_code=201,
    responses=problems(409, 429),
    dependencies=[Depends(card_link_rate_limit)],
)
async def me_link_card(body: CardIn, request: Request, principal: Resident, conn: Conn) -> CardOut:
    """Link a transit IC card: a card belongs to one resident, and a resident has at most
    the policy's number of active cards (3)."""
    limit = load_policies().max_active_cards_at(local_day(datetime.now(UTC)))
    card = await cards.link_card(
        conn, pseudonym_key(request), resident_id(principal), body.idm, limit
    )
    return CardOut.model_validate(card, from_attributes=True)


@router.delete("/v1/me/cards/{card_id}", tags=["residents"], status_code=204)
async def me_unlink_card(card_id: RowId, principal: Resident, conn: Conn) -> Response:
    """Unlink one of my active cards."""
    if not await cards.end_card(conn, resident_id(principal), card_id, "unlinked"):
        raise ProblemError(
            404, "not-found", "Not found", F_("No active card {card}.", card=card_id)
        )
    return Response(status_code=204)


@router.post("/v1/me/cards/{card_id}/lost", tags=["residents"], response_model=CardOut)
async def me_report_lost(card_id: RowId, principal: Resident, conn: Conn) -> CardOut:
    """Block the card for everyone (it can no longer be linked or subsidised)."""
    rid = resident_id(principal)
    if not await cards.end_card(conn, rid, card_id, "lost"):
        raise ProblemError(
            404, "not-found", "Not found", F_("No active card {card}.", card=card_id)
        )
    found = [c for c in await cards.list_cards(conn, rid, True) if c.card_id == card_id]
    return CardOut.model_validate(found[0], from_attributes=True)


async def fare_lookup(conn: AsyncConnection, route: str, origin: str, dest: str) -> int | None:
    """The current feed's zone fare for a route and a pair of stops (None: no fare)."""
    from mobility.gtfs.fares import zone_fare_async

    return await zone_fare_async(conn, route, origin, dest)


QUOTE_FARE_TTL_S = 300.0
_MISS = object()
# Bounded (least recently used out first) and expiring: cachetools' TTLCache.
_quote_fares: TTLCache[tuple[str, int, str, str, str, str], int] = TTLCache(
    maxsize=50_000, ttl=QUOTE_FARE_TTL_S
)


async def _quote_fare(conn: AsyncConnection, route: str, origin: str, dest: str) -> int | None:
    """Quotes reuse a fare for 5 minutes (timetable fares change only with a new feed);
    submissions always ask the current feed. Keyed by the database too (one process may
    serve more than one, as the tests do), and a ride with no fare is never kept: a feed
    imported a minute later may have it."""
    info = conn.info
    key = (info.host, info.port, info.dbname, route, origin, dest)
    hit = _quote_fares.get(key, _MISS)
    if hit is not _MISS:
        return cast(int, hit)
    fare = await fare_lookup(conn, route, origin, dest)
    if fare is not None:
        _quote_fares[key] = fare
    return fare


async def _taxi_quote(conn: AsyncConnection, rid: int, body: QuoteIn, at: datetime) -> QuoteOut:
    """My MyTaku subsidy for a meter fare shared by ``registrants`` subsidised riders."""
    assert body.meter_fare_yen is not None
    day = local_day(at)
    pol = load_policies().mytaku_at(day)
    st = await ledger.standing(conn, rid, day)
    eligible = mytaku_eligibility(pol, facts_on(st.facts, day), day) is not None
    me = RiderUsage(True, eligible, False, st.rides_today, st.rides_this_year)
    others = [RiderUsage(True, True)] * (body.registrants - 1)
    # the same rules as the ride itself (the city rule needs places a quote lacks)
    within = in_hours(pol, at.astimezone(JST).time())
    d = taxi_subsidies(pol, body.meter_fare_yen, [me, *others], within_hours=within)[0]
    share = body.meter_fare_yen // body.registrants
    return QuoteOut(
        kind="taxi",
        policy_version=pol.version,
        fare_yen=body.meter_fare_yen,
        subsidy_yen=d.subsidy_yen,
        pay_yen=max(0, share - d.subsidy_yen),
        reason=d.reason.value,
    )


async def _bus_quote(conn: AsyncConnection, rid: int, body: QuoteIn, at: datetime) -> QuoteOut:
    """My bus fare from the timetable's zones with my resident discount."""
    assert body.route_id and body.origin_stop_id and body.destination_stop_id
    assert body.operator_id
    day = local_day(at)
    bpol = load_policies().bus_at(day)
    fare = await _quote_fare(conn, body.route_id, body.origin_stop_id, body.destination_stop_id)
    if fare is None:
        raise ProblemError(404, "fare-not-found", "No fare for this ride", FARE_NOT_FOUND_DETAIL)
    facts = (await resident_store.facts_of(conn, [rid]))[rid]
    birth = resident_store.birth_date_of(facts)
    bd = bus_discount(
        bpol,
        canonical_operator_id(body.operator_id),
        body.route_id,
        fare,
        age_on(birth, day) if birth else None,
    )
    return QuoteOut(
        kind="bus",
        policy_version=bpol.version,
        fare_yen=fare,
        subsidy_yen=bd.discount_yen,
        pay_yen=bd.pay_yen,
        reason=bd.discount or "no-discount",
    )


@router.post(
    "/v1/fares/quote", tags=["residents"], response_model=QuoteOut, responses=problems(404)
)
async def fares_quote(body: QuoteIn, principal: Resident, conn: Conn) -> QuoteOut:
    """My bus fare with my discount, or my MyTaku subsidy for a meter fare and party."""
    at = body.at or datetime.now(UTC)
    if body.kind == "taxi":
        return await _taxi_quote(conn, resident_id(principal), body, at)
    return await _bus_quote(conn, resident_id(principal), body, at)
