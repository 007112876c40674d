"""Card sign-in for the pages: the same challenge-response as ``POST /v1/auth/session``.

The portal calls the fares package's functions directly (challenges, JPKI verification,
enrolment, sessions) instead of its HTTP endpoints, so a page sign-in is checked exactly
like an API sign-in: single-use nonce, signature over it, chain to the trust anchors,
validity, KeyUsage and a current CRL (fails closed). In development the test card
authority (``mobility.fares.devcard``) can play the card: only when
``MEBUKU_ENVIRONMENT=development`` and the configured trust anchor *is* that authority's CA.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg import AsyncConnection

from core.i18n import L_
from core.sessions import issue_session
from core.settings import Settings
from mobility.fares import devcard, residents
from mobility.fares.identity import (
    CertificateError,
    TrustStore,
    certificate_hash,
    check_store,
    decode_b64,
    load_trust_store,
    parse_certificate,
    verify_signin,
)

log = logging.getLogger(__name__)


class SignInUnavailableError(Exception):
    """Card sign-in cannot work now (no anchors, no current CRL, unreadable files)."""


class SignInRefusedError(Exception):
    """The card's answer was refused; ``slug`` says why (expired nonce, bad signature...)."""

    def __init__(self, slug: str) -> None:
        super().__init__(slug)
        self.slug = slug


@dataclass(frozen=True)
class SignedIn:
    """A new resident session (the token goes into the HttpOnly cookie)."""

    resident_id: int
    token: str
    expires_at: datetime
    enrolled: bool
    cert_hash: bytes


_cache: dict[tuple[object, ...], TrustStore] = {}


async def trust_store(settings: Settings) -> TrustStore:
    """Anchors and CRL from settings, reloaded when a file changes; ready for sign-in."""
    if settings.jpki_trust_anchors is None:
        raise SignInUnavailableError("not-configured")
    paths = [settings.jpki_trust_anchors, *([settings.jpki_crl] if settings.jpki_crl else [])]
    try:
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
        store = _cache.get(stamp)
        if store is None:
            store = await asyncio.to_thread(
                load_trust_store,
                settings.jpki_trust_anchors,
                settings.jpki_crl,
                settings.jpki_allow_no_crl,
            )
            _cache.clear()
            _cache[stamp] = store
    except (OSError, ValueError):
        raise SignInUnavailableError("unreadable") from None
    try:
        check_store(store, datetime.now(UTC))
    except CertificateError as e:
        raise SignInUnavailableError(e.slug) from None
    return store


async def new_challenge(conn: AsyncConnection, settings: Settings) -> str:
    """A single-use nonce (base64url) for the card to sign; fails when sign-in cannot work."""
    await trust_store(settings)
    nonce, _expires = await residents.create_challenge(conn)
    return base64.urlsafe_b64encode(nonce).decode().rstrip("=")


async def verify_answer(
    conn: AsyncConnection, settings: Settings, nonce_b64: str, certificate: str, signature: str
) -> tuple[bytes, datetime]:
    """Check the card's answer; the certificate's keyed hash and its expiry."""
    store = await trust_store(settings)
    try:
        nonce = decode_b64(nonce_b64, "nonce")
        if not await residents.consume_challenge(conn, nonce):
            raise CertificateError("challenge", "unknown, used or expired nonce")
        cert = parse_certificate(certificate)
        verify_signin(store, cert, nonce, decode_b64(signature, "signature"), datetime.now(UTC))
    except CertificateError as e:
        log.info(L_("portal card sign-in refused: %s"), e.slug)
        raise SignInRefusedError(e.slug) from None
    return certificate_hash(settings.require_pseudonym_key(), cert), cert.not_valid_after_utc


async def sign_in(
    conn: AsyncConnection, settings: Settings, nonce_b64: str, certificate: str, signature: str
) -> SignedIn:
    """Verify the card's answer, enrol on first use and open a resident session."""
    cert_hash, not_after = await verify_answer(conn, settings, nonce_b64, certificate, signature)
    rid, enrolled = await residents.sign_in_resident(conn, cert_hash, not_after)
    token, expires = await issue_session(conn, rid, cert_hash=cert_hash)
    log.info(L_("resident %s signed in on the portal (enrolled=%s)"), rid, enrolled)
    return SignedIn(rid, token, expires, enrolled, cert_hash)


def dev_authority(settings: Settings) -> devcard.DevCA | None:
    """The test card authority, when development mode uses it as the trust anchor."""
    if settings.environment != "development" or settings.jpki_trust_anchors is None:
        return None
    ca = devcard.DevCA(settings.state_dir / "dev-ca")
    try:
        same = ca.exists() and _same_file(ca.cert_path, settings.jpki_trust_anchors)
    except OSError:
        return None
    return ca if same else None


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve() or a.read_bytes() == b.read_bytes()


def dev_card_answer(ca: devcard.DevCA, name: str, nonce_b64: str) -> tuple[str, str]:
    """The test card ``name`` (issued if new) answers the challenge: certificate, signature."""
    devcard.issue_card(ca, name)
    return devcard.card_certificate_pem(ca, name), devcard.sign_nonce(ca, name, nonce_b64)
