"""HTTP endpoints: My Number Card sign-in, residents' subsidy and cards, operators' ride and
tap submissions and statements, city staff's eligibility facts and enrolment support.

Every request is screened for Individual Numbers by the API's ASGI layer (``api/screen.py``)
before routing; ``screen_request`` below repeats the check for these routes as a second
line should the router ever be mounted without it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, cast

from cachetools import TTLCache
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.operators import canonical_operator_id
from core.sessions import (
    LiveSession,
    issue_session,
    live_cert_hashes,
    revoke_cert_sessions,
    revoke_session,
)
from core.settings import Settings, get_settings
from core.web import (
    Principal,
    ProblemError,
    Role,
    auth_rate_limit,
    bearer_scheme,
    db_conn,
    ensure_own_operator,
    public,
    rate_limit,
    require_roles,
)
from mobility.fares import cards, ledger, residents, settlement
from mobility.fares.guard import refuse_my_number, refuse_twelve_digit_ids
from mobility.fares.identity import (
    CertificateError,
    RevocationUnavailableError,
    TrustStore,
    certificate_hash,
    check_store,
    decode_b64,
    issuer_serial_hash,
    load_trust_store,
    parse_certificate,
    revoked_serials,
    verify_certificate,
    verify_signin,
)
from mobility.fares.plausibility import OPERATOR_FLAGS
from mobility.fares.policy import NoPolicyError, load_policies
from mobility.fares.rules import (
    FACT_KINDS,
    JST,
    LICENCE_VALUES,
    Fact,
    RiderUsage,
    age_on,
    bus_discount,
    facts_on,
    in_hours,
    local_day,
    mytaku_eligibility,
    taxi_subsidies,
)

log = logging.getLogger(__name__)


async def screen_request(request: Request) -> None:
    """Refuse Individual Numbers anywhere in the request, before validation echoes them."""
    refuse_my_number(dict(request.query_params))
    refuse_my_number(dict(request.path_params))
    if request.method in ("POST", "PUT", "PATCH") and request.headers.get(
        "content-type", ""
    ).startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            return  # FastAPI reports the malformed JSON
        refuse_my_number(body)


router = APIRouter(dependencies=[Depends(screen_request)])


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for problem statuses the API cannot infer from the route."""
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        s: {
            "description": "problem details",
            "content": {"application/problem+json": {"schema": ref}},
        }
        for s in statuses
    }


Conn = Annotated[AsyncConnection, Depends(db_conn)]
Resident = Annotated[Principal, Depends(require_roles(Role.RESIDENT))]
OperatorOrAdmin = Annotated[Principal, Depends(require_roles(Role.OPERATOR, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
PUBLIC_AUTH = [Depends(public), Depends(auth_rate_limit)]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
TEXT_PATTERN = r"^[^\x00-\x1f]*$"  # printable text: no NUL or control characters
OperatorId = Annotated[
    str,
    PathParam(
        pattern=ID_PATTERN,
        description="Operator id of core/operators.toml, or its corporate number",
        examples=["gunmachuo"],
    ),
]
RecordId = Annotated[str, PathParam(pattern=ID_PATTERN)]
RowId = Annotated[int, PathParam(ge=1, le=2**62)]
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def sane_time(v: datetime) -> datetime:
    """Aware and within 2000-2099, so Japan-time arithmetic cannot overflow."""
    if v.tzinfo is None:
        raise ValueError("give a time zone offset (e.g. +09:00)")
    if not EARLIEST <= v < LATEST:
        raise ValueError("time must be between 2000 and 2099")
    return v


def _settings(request: Request) -> Settings:
    s: Settings | None = getattr(request.app.state, "settings", None)
    return s if s is not None else get_settings()


def _key(request: Request) -> bytes:
    return _settings(request).require_pseudonym_key()


def _window(request: Request) -> timedelta:
    return timedelta(days=_settings(request).fares_submission_window_days)


def _window_problem(e: ledger.OutsideWindowError) -> ProblemError:
    return ProblemError(
        422,
        "outside-submission-window",
        "Record outside the submission window",
        f"{e.violation.detail} (rule: {e.violation.rule}; MEBUKU_FARES_SUBMISSION_WINDOW_DAYS).",
        rule=e.violation.rule,
    )


def _conflict_problem(e: ledger.RecordConflictError) -> ProblemError:
    return ProblemError(
        409,
        "record-conflict",
        "Record id already used for another record",
        f"{e} A replay must repeat the record exactly; a correction needs a new record id.",
    )


def _unavailable(reason: str, detail: str) -> ProblemError:
    return ProblemError(
        503, "identity-unavailable", "Card sign-in is unavailable", detail, reason=reason
    )


async def _trust_store(request: Request, conn: AsyncConnection) -> TrustStore:
    """Trust anchors and CRL from settings, reloaded when a file changes.

    A reload also ends at once every session whose certificate the new CRL revokes. Without
    anchors, or when the files cannot be read, card sign-in answers 503.
    """
    s = _settings(request)
    if s.jpki_trust_anchors is None:
        raise _unavailable("not-configured", "Set MEBUKU_JPKI_TRUST_ANCHORS and MEBUKU_JPKI_CRL.")
    paths = [s.jpki_trust_anchors, *([s.jpki_crl] if s.jpki_crl else [])]
    try:
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
        cached = getattr(request.app.state, "fares_trust_store", None)
        if cached is not None and cached[0] == stamp:
            store: TrustStore = cached[1]
            return store
        store = await asyncio.to_thread(
            load_trust_store, s.jpki_trust_anchors, s.jpki_crl, s.jpki_allow_no_crl
        )
    except (OSError, ValueError):
        log.warning("JPKI trust anchors or CRL cannot be read; card sign-in unavailable")
        raise _unavailable(
            "unreadable", "The trust anchors or the CRL cannot be read; check the files."
        ) from None
    key = _key(request)
    revoked = await asyncio.to_thread(_revoked_set, key, store)  # a national CRL is large
    ended = await revoke_cert_sessions(conn, revoked & await live_cert_hashes(conn))
    request.app.state.fares_trust_store = (stamp, store, revoked)
    log.info("JPKI trust store loaded: %d revoked, %d sessions ended", len(revoked), ended)
    return store


def _revoked_set(key: bytes, store: TrustStore) -> frozenset[bytes]:
    return frozenset(issuer_serial_hash(key, i, n) for i, n in revoked_serials(store))


def _revoked_hashes(request: Request) -> frozenset[bytes]:
    cached = getattr(request.app.state, "fares_trust_store", None)
    return cached[2] if cached is not None else frozenset()


async def session_check(request: Request, conn: AsyncConnection, session: LiveSession) -> bool:
    """Called by the API for every resident request: False ends a revoked card's session.

    Picks up a replaced CRL file first (which ends every matching session), so revocation
    takes effect on the next request even when nobody signs in.
    """
    if session.cert_hash is None:
        return True
    with contextlib.suppress(ProblemError):  # keep the last loaded revocation list;
        await _trust_store(request, conn)  # sign-in itself reports the problem
    if session.cert_hash in _revoked_hashes(request):
        await revoke_cert_sessions(conn, [session.cert_hash])
        return False
    return True


async def _ready_store(request: Request, conn: AsyncConnection) -> TrustStore:
    """The trust store when card sign-in can work at all (anchors and a current CRL)."""
    store = await _trust_store(request, conn)
    try:
        check_store(store, datetime.now(UTC))
    except RevocationUnavailableError as e:
        log.warning("card sign-in unavailable: %s", e.slug)
        raise _unavailable(e.slug, str(e)) from None
    return store


async def _road_distance(request: Request) -> ledger.DistanceLookup | None:
    """Shortest road distance on MEBUKU_ROAD_GRAPH_PATH (osmnx graph), loaded once."""
    path = _settings(request).road_graph_path
    if path is None:
        return None
    from core.extras import MissingExtraError
    from mobility.network import NoRouteError, load_road_graph, road_distance_m

    graph = getattr(request.app.state, "fares_road_graph", None)
    if graph is None:
        try:
            graph = await asyncio.to_thread(load_road_graph, path)
        except MissingExtraError as e:  # MEBUKU_ROAD_GRAPH_PATH set without mebuku[road]
            raise ProblemError(
                503, "road-graph-unavailable", "Road graph unavailable", str(e)
            ) from None
        request.app.state.fares_road_graph = graph

    def lookup(lon1: float, lat1: float, lon2: float, lat2: float) -> float | None:
        try:
            return road_distance_m(graph, (lat1, lon1), (lat2, lon2))
        except NoRouteError:
            return None

    return lookup


def _cert_problem(e: CertificateError, status: int = 401) -> ProblemError:
    if isinstance(e, RevocationUnavailableError):
        return _unavailable(e.slug, str(e))
    return ProblemError(status, f"certificate-{e.slug}", "Card sign-in refused", str(e))


# ---------------------------------------------------------------- identity


class Challenge(BaseModel):
    nonce: str = Field(description="base64url; sign these bytes with the card (RSA-SHA256)")
    expires_at: datetime


class SignIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "nonce": "q3cH...",
                    "certificate": "-----BEGIN CERTIFICATE-----\n...",
                    "signature": "base64url of the PKCS#1 v1.5 SHA-256 signature",
                }
            ]
        }
    )
    nonce: str = Field(max_length=100)
    certificate: str = Field(max_length=20_000, description="PEM or base64 DER")
    signature: str = Field(max_length=2_000, description="base64url")


class Renewal(SignIn):
    new_certificate: str = Field(max_length=20_000)
    new_signature: str = Field(max_length=2_000, description="the new card's signature")


class Session(BaseModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: datetime
    enrolled: bool = Field(description="True when this sign-in created the resident record")


@router.post(
    "/v1/auth/challenge",
    tags=["identity"],
    dependencies=PUBLIC_AUTH,
    response_model=Challenge,
    responses=problems(503),
)
async def auth_challenge(request: Request, conn: Conn) -> Challenge:
    """A single-use nonce (5 minutes) for the My Number Card to sign (503 while card
    sign-in cannot work: no trust anchors, no CRL or a CRL past its nextUpdate)."""
    await _ready_store(request, conn)
    nonce, expires = await residents.create_challenge(conn)
    return Challenge(nonce=base64.urlsafe_b64encode(nonce).decode().rstrip("="), expires_at=expires)


async def _verified(
    request: Request, conn: AsyncConnection, nonce_b64: str, pairs: list[tuple[str, str]]
) -> list[Any]:
    store = await _ready_store(request, conn)
    try:
        nonce = decode_b64(nonce_b64, "nonce")
        if not await residents.consume_challenge(conn, nonce):
            raise CertificateError("challenge", "unknown, used or expired nonce")
        certs = []
        now = datetime.now(UTC)
        for cert_text, sig in pairs:
            cert = parse_certificate(cert_text)
            verify_signin(store, cert, nonce, decode_b64(sig, "signature"), now)
            certs.append(cert)
    except CertificateError as e:
        log.info("card sign-in refused: %s", e.slug)
        raise _cert_problem(e) from None
    return certs


@router.post(
    "/v1/auth/session",
    tags=["identity"],
    dependencies=PUBLIC_AUTH,
    response_model=Session,
    responses=problems(503),
)
async def auth_session(body: SignIn, request: Request, conn: Conn) -> Session:
    """Sign in (enrolling on first use) with the card's user-authentication certificate."""
    (cert,) = await _verified(request, conn, body.nonce, [(body.certificate, body.signature)])
    rid, enrolled = await residents.sign_in_resident(
        conn, certificate_hash(_key(request), cert), cert.not_valid_after_utc
    )
    token, expires = await issue_session(conn, rid, cert_hash=certificate_hash(_key(request), cert))
    log.info("resident %s signed in (enrolled=%s)", rid, enrolled)
    return Session(token=token, expires_at=expires, enrolled=enrolled)


@router.post("/v1/auth/logout", tags=["identity"], status_code=204)
async def auth_logout(
    principal: Resident,
    conn: Conn,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Response:
    """Sign out: this session token stops working at once."""
    if credentials is not None:
        await revoke_session(conn, credentials.credentials)
    log.info("resident %s signed out", _resident_id(principal))
    return Response(status_code=204)


@router.post(
    "/v1/auth/renew", tags=["identity"], dependencies=PUBLIC_AUTH, responses=problems(404, 409, 503)
)
async def auth_renew(body: Renewal, request: Request, conn: Conn) -> dict[str, bool]:
    """Link a renewed card certificate: both the old and the new card sign the nonce."""
    old, new = await _verified(
        request,
        conn,
        body.nonce,
        [(body.certificate, body.signature), (body.new_certificate, body.new_signature)],
    )
    key = _key(request)
    rid = await residents.resident_for_cert(conn, certificate_hash(key, old))
    if rid is None:
        raise ProblemError(404, "not-enrolled", "The old certificate is not enrolled")
    try:
        linked = await residents.link_certificate(
            conn, rid, certificate_hash(key, new), new.not_valid_after_utc, "renewal"
        )
    except residents.CertificateTakenError:
        raise ProblemError(409, "certificate-taken", "The new certificate is enrolled") from None
    return {"linked": linked}


# ---------------------------------------------------------------- residents


class SubsidyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy_version": "mytaku-2022-04",
                    "fiscal_year": 2026,
                    "eligible_as": "age-75+",
                    "rides_today": 1,
                    "rides_left_today": 1,
                    "rides_this_year": 12,
                    "rides_left_this_year": 58,
                    "subsidy_yen_this_year": 9800,
                    "bus_discount_yen_this_year": 120,
                }
            ]
        }
    )
    policy_version: str
    fiscal_year: int
    eligible_as: str | None = Field(description="the condition that qualifies; null: none")
    rides_today: int
    rides_left_today: int
    rides_this_year: int
    rides_left_this_year: int
    subsidy_yen_this_year: int
    bus_discount_yen_this_year: int


def _resident_id(p: Principal) -> int:
    assert p.resident_id is not None
    return p.resident_id


class MeOut(BaseModel):
    resident_id: int = Field(description="my resident number, to show city staff at the counter")


@router.get("/v1/me", tags=["residents"], response_model=MeOut)
async def me(principal: Resident) -> MeOut:
    return MeOut(resident_id=_resident_id(principal))


@router.get("/v1/me/subsidy", tags=["residents"], response_model=SubsidyOut)
async def me_subsidy(principal: Resident, conn: Conn) -> SubsidyOut:
    """MyTaku rides left today and this fiscal year, and yen received so far."""
    st = await ledger.subsidy_status(
        conn, _resident_id(principal), load_policies(), datetime.now(UTC)
    )
    return SubsidyOut(**st.__dict__)


class RideOut(BaseModel):
    entry_id: int
    source: str
    kind: str
    amount_yen: int
    ride_at: datetime
    policy_version: str
    reverses: int | None


@router.get("/v1/me/rides", tags=["residents"], response_model=list[RideOut])
async def me_rides(
    principal: Resident, conn: Conn, limit: int = Query(100, ge=1, le=1000)
) -> list[RideOut]:
    """Ledger entries about me (subsidies, discounts and their reversals), newest first."""
    rows = await ledger.resident_rides(conn, _resident_id(principal), limit)
    return [RideOut.model_validate(r) for r in rows]


class CardOut(BaseModel):
    card_id: int
    card: str = Field(description="masked: only the last 4 hex digits", examples=["****0A1F"])
    status: str
    linked_at: datetime
    ended_at: datetime | None


class CardIn(BaseModel):
    idm: str = Field(description="FeliCa IDm, 16 hex digits", examples=["01 2E 4C D8 A1 B2 0A 1F"])

    @field_validator("idm")
    @classmethod
    def _idm(cls, v: str) -> str:
        return cards.normalise_idm(v)


def _card_out(c: cards.Card) -> CardOut:
    return CardOut(
        card_id=c.card_id,
        card=c.masked,
        status=c.status,
        linked_at=c.linked_at,
        ended_at=c.ended_at,
    )


@router.get("/v1/me/cards", tags=["residents"], response_model=list[CardOut])
async def me_cards(principal: Resident, conn: Conn, include_ended: bool = False) -> list[CardOut]:
    return [
        _card_out(c) for c in await cards.list_cards(conn, _resident_id(principal), include_ended)
    ]


CARD_LINKS_PER_HOUR = 10


def _link_bucket(request: Request) -> str:
    return f"resident:{request.state.fares_resident}"


_card_link_limit = rate_limit(
    "card-link", capacity=CARD_LINKS_PER_HOUR, per_seconds=3600.0, key=_link_bucket
)


async def card_link_rate_limit(request: Request, principal: Resident) -> None:
    """Linking attempts per resident (not per address): 10 an hour, so nobody can probe
    which card numbers are taken."""
    request.state.fares_resident = _resident_id(principal)
    await _card_link_limit(request)


DISPUTE_PATH = (
    "If this card is yours, bring it and your My Number Card to the city office;"
    " staff check that you hold it and end the other link (see the fares README, 'Card"
    " disputes')."
)


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
    rid = _resident_id(principal)
    limit = load_policies().max_active_cards_at(local_day(datetime.now(UTC)))
    try:
        card = await cards.link_card(conn, _key(request), rid, body.idm, limit)
    except cards.CardTakenError as e:
        if e.mine:
            raise ProblemError(
                409,
                "card-already-linked",
                "Card already linked",
                "This card is linked to you (or you reported it lost).",
            ) from None
        raise ProblemError(
            409,
            "card-held-elsewhere",
            "Card held by another account",
            "This card is linked to another resident account or was reported lost. " + DISPUTE_PATH,
            dispute="in-person at the city office",
        ) from None
    except cards.CardLimitError as e:
        raise ProblemError(
            409,
            "card-limit",
            "Too many cards",
            f"A resident can have at most {e.limit} active cards; unlink one first.",
            limit=e.limit,
        ) from None
    return _card_out(card)


@router.delete("/v1/me/cards/{card_id}", tags=["residents"], status_code=204)
async def me_unlink_card(card_id: RowId, principal: Resident, conn: Conn) -> Response:
    if not await cards.end_card(conn, _resident_id(principal), card_id, "unlinked"):
        raise ProblemError(404, "not-found", "Not found", f"No active card {card_id}.")
    return Response(status_code=204)


@router.post("/v1/me/cards/{card_id}/lost", tags=["residents"], response_model=CardOut)
async def me_report_lost(card_id: RowId, principal: Resident, conn: Conn) -> CardOut:
    """Block the card for everyone (it can no longer be linked or subsidised)."""
    rid = _resident_id(principal)
    if not await cards.end_card(conn, rid, card_id, "lost"):
        raise ProblemError(404, "not-found", "Not found", f"No active card {card_id}.")
    found = [c for c in await cards.list_cards(conn, rid, True) if c.card_id == card_id]
    return _card_out(found[0])


class QuoteIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "taxi", "meter_fare_yen": 2400, "registrants": 1},
                {
                    "kind": "bus",
                    "operator_id": "gunmachuo",
                    "route_id": "新前橋駅西口線_A",
                    "origin_stop_id": "g033_01",
                    "destination_stop_id": "m003_02",
                },
            ]
        }
    )
    kind: Literal["taxi", "bus"]
    at: datetime | None = Field(None, description="when (default now); picks the policy")
    meter_fare_yen: int | None = Field(None, ge=0, le=1_000_000)
    registrants: int = Field(1, ge=1, le=9, description="MyTaku registrants riding together")
    operator_id: str | None = Field(None, pattern=ID_PATTERN)
    route_id: str | None = Field(None, max_length=200, pattern=TEXT_PATTERN)
    origin_stop_id: str | None = Field(None, max_length=200, pattern=TEXT_PATTERN)
    destination_stop_id: str | None = Field(None, max_length=200, pattern=TEXT_PATTERN)

    @field_validator("at")
    @classmethod
    def _at(cls, v: datetime | None) -> datetime | None:
        return None if v is None else sane_time(v)

    @model_validator(mode="after")
    def _fields(self) -> QuoteIn:
        if self.kind == "taxi" and self.meter_fare_yen is None:
            raise ValueError("a taxi quote needs meter_fare_yen")
        if self.kind == "bus" and not (
            self.operator_id and self.route_id and self.origin_stop_id and self.destination_stop_id
        ):
            raise ValueError("a bus quote needs operator_id, route_id and both stop ids")
        return self


class QuoteOut(BaseModel):
    kind: str
    policy_version: str
    fare_yen: int
    subsidy_yen: int = Field(description="my subsidy (taxi) or discount (bus)")
    pay_yen: int = Field(description="what I pay (taxi: my share of the fare split evenly)")
    reason: str


async def _fare_lookup(conn: AsyncConnection, route: str, origin: str, dest: str) -> int | None:
    from mobility.gtfs.fares import zone_fare_async

    return await zone_fare_async(conn, route, origin, dest)


QUOTE_FARE_TTL_S = 300.0
_MISS = object()
# Bounded (least recently used out first) and expiring: cachetools' TTLCache.
_quote_fares: TTLCache[tuple[str, str, str], int | None] = TTLCache(
    maxsize=50_000, ttl=QUOTE_FARE_TTL_S
)


async def _quote_fare(conn: AsyncConnection, route: str, origin: str, dest: str) -> int | None:
    """Quotes reuse a fare for 5 minutes (timetable fares change only with a new feed);
    submissions always ask the current feed."""
    key = (route, origin, dest)
    hit = _quote_fares.get(key, _MISS)
    if hit is not _MISS:
        return cast(int | None, hit)
    fare = await _fare_lookup(conn, route, origin, dest)
    _quote_fares[key] = fare
    return fare


@router.post(
    "/v1/fares/quote", tags=["residents"], response_model=QuoteOut, responses=problems(404)
)
async def fares_quote(body: QuoteIn, principal: Resident, conn: Conn) -> QuoteOut:
    """My bus fare with my discount, or my MyTaku subsidy for a meter fare and party."""
    rid = _resident_id(principal)
    at = body.at or datetime.now(UTC)
    day = local_day(at)
    book = load_policies()
    try:
        if body.kind == "taxi":
            assert body.meter_fare_yen is not None
            pol = book.mytaku_at(day)
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
        bpol = book.bus_at(day)
        assert body.route_id and body.origin_stop_id and body.destination_stop_id
        assert body.operator_id
        fare = await _quote_fare(conn, body.route_id, body.origin_stop_id, body.destination_stop_id)
    except NoPolicyError as e:
        raise ProblemError(422, "no-policy", "No policy in force", str(e)) from None
    if fare is None:
        raise ProblemError(
            404,
            "fare-not-found",
            "No fare for this ride",
            "The bus timetable has no fare for this route and these stops.",
        )
    facts = (await residents.facts_of(conn, [rid]))[rid]
    birth = residents.birth_date_of(facts)
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


# ---------------------------------------------------------------- operators


class Place(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class TaxiRideIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "record_id": "T-2026-000123",
                    "vehicle_id": "maebashi-taxi-17",
                    "pickup_at": "2026-11-20T10:05:00+09:00",
                    "dropoff_at": "2026-11-20T10:21:00+09:00",
                    "pickup": {"lon": 139.0729, "lat": 36.3837},
                    "dropoff": {"lon": 139.0745, "lat": 36.3922},
                    "meter_fare_yen": 1800,
                    "rider_cards": ["012E4CD8A1B20A1F"],
                }
            ]
        }
    )
    record_id: str = Field(pattern=ID_PATTERN)
    vehicle_id: str = Field(pattern=ID_PATTERN)
    pickup_at: datetime
    dropoff_at: datetime
    pickup: Place
    dropoff: Place
    meter_fare_yen: int = Field(ge=0, le=1_000_000)
    rider_cards: list[str] = Field(min_length=1, max_length=9, description="IDm of each rider")

    @field_validator("pickup_at", "dropoff_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return sane_time(v)

    @field_validator("rider_cards")
    @classmethod
    def _cards(cls, v: list[str]) -> list[str]:
        return [cards.normalise_idm(x) for x in v]

    @model_validator(mode="after")
    def _order(self) -> TaxiRideIn:
        if self.dropoff_at < self.pickup_at:
            raise ValueError("dropoff_at is before pickup_at")
        return self


class RiderOut(BaseModel):
    position: int
    card: str = Field(description="masked: only the last 4 hex digits")
    subsidy_yen: int
    status: Literal["subsidised", "not-subsidised"]
    reason: str = Field(
        description="subsidised, outside-hours, outside-city, flagged-for-review or"
        " not-subsidised: nothing about the card's holder or other residents' cards"
    )
    detail_reason: str | None = Field(
        None, description="city staff only: the rule that decided (null for operators)"
    )


class TaxiRideOut(BaseModel):
    record_id: str
    policy_version: str
    flags: list[str] = Field(
        description="plausibility flags for review (operators see those about the ride itself)"
    )
    subsidy_yen: int
    riders: list[RiderOut]
    duplicate: bool = Field(description="True: this record id was already submitted")


def _operator_scope(principal: Principal, operator_id: str) -> str:
    """The canonical operator id (an alias such as the corporate number resolves to it),
    after checking that an operator key acts for its own operator only."""
    refuse_twelve_digit_ids(operator_id=operator_id)
    canonical = canonical_operator_id(operator_id)
    ensure_own_operator(principal, canonical)
    return canonical


def _visible_flags(principal: Principal, flags: list[str]) -> list[str]:
    """Operators see flags about their own record only, not what other records revealed."""
    if principal.role is Role.ADMIN:
        return flags
    return [f for f in flags if f in OPERATOR_FLAGS]


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
    operator_id = _operator_scope(principal, operator_id)
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
    try:
        out = await ledger.submit_taxi_ride(
            conn,
            _key(request),
            ride,
            load_policies(),
            await _road_distance(request),
            now=datetime.now(UTC),
            window=_window(request),
        )
    except NoPolicyError as e:
        raise ProblemError(422, "no-policy", "No policy in force", str(e)) from None
    except ledger.OutsideWindowError as e:
        raise _window_problem(e) from None
    except ledger.RecordConflictError as e:
        raise _conflict_problem(e) from None
    staff = principal.role is Role.ADMIN
    return TaxiRideOut(
        record_id=out.record_id,
        policy_version=out.policy_version,
        flags=_visible_flags(principal, out.flags),
        subsidy_yen=out.subsidy_yen,
        duplicate=out.duplicate,
        riders=[
            RiderOut(
                position=r.position,
                card=r.card,
                subsidy_yen=r.subsidy_yen,
                status="subsidised" if r.subsidy_yen > 0 else "not-subsidised",
                reason=r.public_reason,
                detail_reason=r.reason if staff else None,
            )
            for r in out.riders
        ],
    )


class BusTapIn(BaseModel):
    record_id: str = Field(pattern=ID_PATTERN, examples=["B-2026-000123"])
    # Ids of the bundled feed (群馬中央バス 新前橋駅西口線: 表町 -> 中央前橋駅前, 100 yen).
    route_id: str = Field(max_length=200, pattern=TEXT_PATTERN, examples=["新前橋駅西口線_A"])
    origin_stop_id: str = Field(max_length=200, pattern=TEXT_PATTERN, examples=["g033_01"])
    destination_stop_id: str = Field(max_length=200, pattern=TEXT_PATTERN, examples=["m003_02"])
    tap_on_at: datetime
    tap_off_at: datetime
    card: str = Field(description="IDm, 16 hex digits", examples=["012E4CD8A1B20A1F"])

    @field_validator("tap_on_at", "tap_off_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return sane_time(v)

    @field_validator("card")
    @classmethod
    def _card(cls, v: str) -> str:
        return cards.normalise_idm(v)


class BusTapOut(BaseModel):
    record_id: str
    policy_version: str
    fare_yen: int
    discount_yen: int
    status: Literal["subsidised", "not-subsidised"]
    discount: str | None = Field(
        description="city staff only: which discount applied (null for operators)"
    )
    pay_yen: int
    flags: list[str]
    duplicate: bool


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
    operator_id = _operator_scope(principal, operator_id)
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
    try:
        out = await ledger.submit_bus_tap(
            conn,
            _key(request),
            tap,
            load_policies(),
            _fare_lookup,
            now=datetime.now(UTC),
            window=_window(request),
        )
    except ledger.OutsideWindowError as e:
        raise _window_problem(e) from None
    except ledger.RecordConflictError as e:
        raise _conflict_problem(e) from None
    except ledger.FareUnknownError:
        raise ProblemError(
            422,
            "fare-not-found",
            "No fare for this ride",
            "The bus timetable has no fare for this route and these stops.",
        ) from None
    except NoPolicyError as e:
        raise ProblemError(422, "no-policy", "No policy in force", str(e)) from None
    return BusTapOut(
        record_id=out.record_id,
        policy_version=out.policy_version,
        fare_yen=out.fare_yen,
        discount_yen=out.discount_yen,
        status="subsidised" if out.discount_yen > 0 else "not-subsidised",
        discount=out.discount if principal.role is Role.ADMIN else None,
        pay_yen=out.pay_yen,
        flags=_visible_flags(principal, out.flags),
        duplicate=out.duplicate,
    )


class ReversalIn(BaseModel):
    note: str = Field(min_length=1, max_length=500, examples=["meter fare keyed wrongly"])


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
    operator_id = _operator_scope(principal, operator_id)
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
    operator_id = _operator_scope(principal, operator_id)
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


# ---------------------------------------------------------------- city staff


class FactIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "birth_date", "value": "1948-05-01"},
                {"kind": "driving_licence", "value": "surrendered", "valid_from": "2024-03-01"},
                {
                    "kind": "pregnancy",
                    "value": "yes",
                    "valid_from": "2026-05-01",
                    "valid_to": "2027-06-30",
                },
            ]
        }
    )
    kind: str = Field(
        description="birth_date, driving_licence, disability, care_certification,"
        " intractable_disease, pregnancy, vehicle_support_subsidy"
    )
    value: str = Field(max_length=20, pattern=TEXT_PATTERN)
    valid_from: date | None = None
    valid_to: date | None = None
    note: str = Field("", max_length=500, pattern=TEXT_PATTERN, description="why (audit trail)")

    @model_validator(mode="after")
    def _check(self) -> FactIn:
        if self.kind not in FACT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FACT_KINDS)}")
        if self.kind == "birth_date":
            date.fromisoformat(self.value)
        elif self.kind == "driving_licence":
            if self.value not in LICENCE_VALUES:
                raise ValueError(f"driving_licence is one of {sorted(LICENCE_VALUES)}")
        elif self.value not in ("yes", "no"):
            raise ValueError(f"{self.kind} is yes or no")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class FactOut(BaseModel):
    fact_id: int
    kind: str
    value: str
    valid_from: date | None
    valid_to: date | None
    recorded_by: str
    recorded_at: datetime
    note: str


async def _existing_resident(conn: AsyncConnection, resident_id: int) -> None:
    if not await residents.resident_exists(conn, resident_id):
        raise ProblemError(404, "not-found", "Not found", f"No resident {resident_id}.")


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
        "eligibility fact %s (%s) recorded for resident %s by %s", fid, body.kind, resident_id, by
    )
    return FactOut(
        fact_id=fid,
        kind=body.kind,
        value=body.value,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        recorded_by=by,
        recorded_at=at,
        note=body.note,
    )


@router.get(
    "/v1/admin/residents/{resident_id}/facts", tags=["city staff"], response_model=list[FactOut]
)
async def admin_fact_history(resident_id: RowId, principal: Admin, conn: Conn) -> list[FactOut]:
    """The full audit trail of a resident's eligibility facts, oldest first."""
    await _existing_resident(conn, resident_id)
    return [FactOut.model_validate(r) for r in await residents.fact_history(conn, resident_id)]


class CertLookupIn(BaseModel):
    certificate: str = Field(max_length=20_000, description="PEM or base64 DER")


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
    store = await _ready_store(request, conn)
    try:
        cert = parse_certificate(body.certificate)
        verify_certificate(store, cert, datetime.now(UTC))
    except CertificateError as e:
        raise _cert_problem(e, 422) from None
    rid = await residents.resident_for_cert(conn, certificate_hash(_key(request), cert))
    if rid is None:
        raise ProblemError(404, "not-enrolled", "This card is not enrolled")
    return MeOut(resident_id=rid)


class StaffCertIn(BaseModel):
    certificate: str = Field(max_length=20_000, description="the renewed card's certificate")
    note: str = Field("", max_length=500, pattern=TEXT_PATTERN)


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
    store = await _ready_store(request, conn)
    try:
        cert = parse_certificate(body.certificate)
        verify_certificate(store, cert, datetime.now(UTC))
    except CertificateError as e:
        raise _cert_problem(e, 422) from None
    try:
        linked = await residents.link_certificate(
            conn,
            resident_id,
            certificate_hash(_key(request), cert),
            cert.not_valid_after_utc,
            f"staff:{principal.subject}",
        )
    except residents.CertificateTakenError:
        raise ProblemError(409, "certificate-taken", "The certificate is enrolled") from None
    return {"linked": linked}


class CardDisputeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "idm": "012E4CD8A1B20A1F",
                    "action": "reassign",
                    "resident_id": 42,
                    "reason": "holder showed the card and My Number Card at the counter",
                }
            ]
        }
    )
    idm: str = Field(description="FeliCa IDm read from the card at the counter, 16 hex digits")
    action: Literal["reassign", "unlink"]
    resident_id: int | None = Field(
        None, ge=1, le=2**62, description="reassign: the resident the card goes to"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=TEXT_PATTERN)

    @field_validator("idm")
    @classmethod
    def _idm(cls, v: str) -> str:
        return cards.normalise_idm(v)

    @model_validator(mode="after")
    def _target(self) -> CardDisputeIn:
        if (self.action == "reassign") != (self.resident_id is not None):
            raise ValueError("resident_id is required for reassign and only for reassign")
        return self


class CardDisputeOut(BaseModel):
    audit_id: int
    action: str
    ended_card_id: int | None
    from_resident: int | None
    new_card_id: int | None
    to_resident: int | None


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
    try:
        res = await cards.staff_resolve(
            conn,
            _key(request),
            body.idm,
            action=body.action,
            to_resident=body.resident_id,
            staff=f"admin:{principal.subject}",
            reason=body.reason,
            max_active=limit,
        )
    except cards.CardNotHeldError:
        raise ProblemError(404, "not-found", "Not found", "This card is not linked.") from None
    except cards.CardLimitError as e:
        raise ProblemError(
            409,
            "card-limit",
            "Too many cards",
            f"The resident already has {e.limit} active cards; unlink one first.",
            limit=e.limit,
        ) from None
    log.info(
        "card dispute %s: %s by admin:%s (audit %s)",
        res.action,
        res.ended_card_id,
        principal.subject,
        res.audit_id,
    )
    return CardDisputeOut(**res.__dict__)
