"""My Number Card sign-in: challenges, sessions, sign-out and renewed certificates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from cryptography import x509
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from psycopg import AsyncConnection

from core.i18n import L_
from core.sessions import issue_session, revoke_session
from core.web import ProblemError, bearer_scheme
from mobility.fares import residents
from mobility.fares.identity import (
    CertificateError,
    certificate_hash,
    decode_b64,
    parse_certificate,
    verify_signin,
)
from mobility.fares.schemas import Challenge, Renewal, Session, SignIn

from .common import (
    PUBLIC_AUTH,
    Conn,
    Resident,
    ScreenedRoute,
    log,
    problems,
    pseudonym_key,
    ready_store,
    resident_id,
)

router = APIRouter(route_class=ScreenedRoute)


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
    await ready_store(request, conn)
    nonce, expires = await residents.create_challenge(conn)
    return Challenge(nonce=base64.urlsafe_b64encode(nonce).decode().rstrip("="), expires_at=expires)


async def _verified(
    request: Request, conn: AsyncConnection, nonce_b64: str, pairs: list[tuple[str, str]]
) -> list[x509.Certificate]:
    """Each certificate, after its signature over the (consumed) nonce checked out."""
    store = await ready_store(request, conn)
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
        log.info(L_("card sign-in refused: %s"), e.slug)
        raise  # the 401 problem: errors.certificate_refused
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
    cert_hash = certificate_hash(pseudonym_key(request), cert)
    rid, enrolled = await residents.sign_in_resident(conn, cert_hash, cert.not_valid_after_utc)
    token, expires = await issue_session(conn, rid, cert_hash=cert_hash)
    log.info(L_("resident %s signed in (enrolled=%s)"), rid, enrolled)
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
    log.info(L_("resident %s signed out"), resident_id(principal))
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
    key = pseudonym_key(request)
    rid = await residents.resident_for_cert(conn, certificate_hash(key, old))
    if rid is None:
        raise ProblemError(404, "not-enrolled", "The old certificate is not enrolled")
    linked = await residents.link_certificate(
        conn, rid, certificate_hash(key, new), new.not_valid_after_utc, "renewal"
    )
    return {"linked": linked}
