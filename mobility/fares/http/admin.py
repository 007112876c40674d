"""City staff: eligibility facts, enrolment support at the counter and card disputes."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from fastapi import APIRouter, Request
from psycopg import AsyncConnection

from core.i18n import F_, L_
from core.web import ProblemError
from mobility.fares import cards, residents
from mobility.fares.identity import (
    CertificateError,
    certificate_hash,
    parse_certificate,
    verify_certificate,
)
from mobility.fares.policy import load_policies
from mobility.fares.rules import Fact, local_day
from mobility.fares.schemas import (
    CardDisputeIn,
    CardDisputeOut,
    CertLookupIn,
    FactIn,
    FactOut,
    MeOut,
    StaffCertIn,
)

from .common import (
    Admin,
    Conn,
    RowId,
    ScreenedRoute,
    log,
    problems,
    pseudonym_key,
    ready_store,
)
from .errors import certificate_refused

router = APIRouter(route_class=ScreenedRoute)


async def _existing_resident(conn: AsyncConnection, resident_id: int) -> None:
    if not await residents.resident_exists(conn, resident_id):
        raise ProblemError(
            404, "not-found", "Not found", F_("No resident {resident}.", resident=resident_id)
        )


async def _counter_certificate(
    request: Request, conn: AsyncConnection, text: str
) -> x509.Certificate:
    """A card certificate read at the counter, checked against the trust store (a bad
    certificate is the request's fault here: 422, not sign-in's 401)."""
    store = await ready_store(request, conn)
    try:
        cert = parse_certificate(text)
        verify_certificate(store, cert, datetime.now(UTC))
    except CertificateError as e:
        raise certificate_refused(e, 422) from None
    return cert


@router.post(
    "/v1/admin/residents/{resident_id}/facts",
    tags=["city staff"],
    response_model=FactOut,
    status_code=201,
)
async def admin_record_fact(
    resident_id: RowId, body: FactIn, principal: Admin, conn: Conn
) -> FactOut:
    """Record an eligibility fact (append-only; the latest fact of a kind applies)."""
    await _existing_resident(conn, resident_id)
    fact = Fact(body.kind, body.value, body.valid_from, body.valid_to)
    by = f"admin:{principal.subject}"
    fid, at = await residents.record_fact(conn, resident_id, fact, by, body.note)
    log.info(
        L_("eligibility fact %s (%s) recorded for resident %s by %s"),
        fid,
        body.kind,
        resident_id,
        by,
    )
    return FactOut.model_validate(
        {**body.model_dump(), "fact_id": fid, "recorded_by": by, "recorded_at": at}
    )


@router.get(
    "/v1/admin/residents/{resident_id}/facts", tags=["city staff"], response_model=list[FactOut]
)
async def admin_fact_history(resident_id: RowId, principal: Admin, conn: Conn) -> list[FactOut]:
    """The full audit trail of a resident's eligibility facts, oldest first."""
    await _existing_resident(conn, resident_id)
    return [FactOut.model_validate(r) for r in await residents.fact_history(conn, resident_id)]


@router.post(
    "/v1/admin/residents/lookup",
    tags=["city staff"],
    response_model=MeOut,
    responses=problems(404, 503),
)
async def admin_find_resident(
    body: CertLookupIn, request: Request, principal: Admin, conn: Conn
) -> MeOut:
    """Enrolment support: which resident a card certificate belongs to (read at the counter)."""
    cert = await _counter_certificate(request, conn, body.certificate)
    rid = await residents.resident_for_cert(conn, certificate_hash(pseudonym_key(request), cert))
    if rid is None:
        raise ProblemError(404, "not-enrolled", "This card is not enrolled")
    return MeOut(resident_id=rid)


@router.post(
    "/v1/admin/residents/{resident_id}/certificates",
    tags=["city staff"],
    responses=problems(409, 503),
)
async def admin_link_certificate(
    resident_id: RowId, body: StaffCertIn, request: Request, principal: Admin, conn: Conn
) -> dict[str, bool]:
    """Enrolment support: link a renewed certificate after checking the holder in person."""
    await _existing_resident(conn, resident_id)
    cert = await _counter_certificate(request, conn, body.certificate)
    linked = await residents.link_certificate(
        conn,
        resident_id,
        certificate_hash(pseudonym_key(request), cert),
        cert.not_valid_after_utc,
        f"staff:{principal.subject}",
    )
    return {"linked": linked}


@router.post(
    "/v1/admin/cards/resolve",
    tags=["city staff"],
    response_model=CardDisputeOut,
    responses=problems(404, 409),
)
async def admin_resolve_card(
    body: CardDisputeIn, request: Request, principal: Admin, conn: Conn
) -> CardDisputeOut:
    """Card dispute: after checking the card and its holder in person, end the current link
    (``unlink``) or move the card to its holder (``reassign``). Audited (append-only)."""
    if body.resident_id is not None:
        await _existing_resident(conn, body.resident_id)
    limit = load_policies().max_active_cards_at(local_day(datetime.now(UTC)))
    res = await cards.staff_resolve(
        conn,
        pseudonym_key(request),
        body.idm,
        action=body.action,
        to_resident=body.resident_id,
        staff=f"admin:{principal.subject}",
        reason=body.reason,
        max_active=limit,
    )
    log.info(
        L_("card dispute %s: %s by admin:%s (audit %s)"),
        res.action,
        res.ended_card_id,
        principal.subject,
        res.audit_id,
    )
    return CardDisputeOut.model_validate(res, from_attributes=True)
