"""Resident session tokens: opaque, random, stored hashed, expiring, revocable.

A token carries 256 bits of randomness, so a plain SHA-256 digest is a safe lookup key
(nothing to brute-force) and a stolen database yields no usable token. The fares package
issues a session after a My Number Card sign-in; the API resolves bearer tokens here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection

DEFAULT_TTL = timedelta(hours=12)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class LiveSession:
    """A live session: its resident and the keyed hash of the credential that opened it."""

    resident_id: int
    cert_hash: bytes | None


async def issue_session(
    conn: AsyncConnection,
    resident_id: int,
    ttl: timedelta = DEFAULT_TTL,
    *,
    cert_hash: bytes | None = None,
) -> tuple[str, datetime]:
    """A new token for the resident and when it expires. Only its digest is stored.

    ``cert_hash`` (the card certificate's keyed hash) lets a revocation end the session.
    """
    token = secrets.token_urlsafe(32)
    cur = await conn.execute(
        "INSERT INTO auth_sessions (token_hash, resident_id, expires_at, cert_hash)"
        " VALUES (%s, %s, now() + %s, %s) RETURNING expires_at",
        [_digest(token), resident_id, ttl, cert_hash],
    )
    row = await cur.fetchone()
    assert row is not None
    return token, row[0]


async def resolve_session(conn: AsyncConnection, token: str) -> int | None:
    """The resident a live (unexpired, unrevoked) token belongs to, else None."""
    cur = await conn.execute(
        "SELECT resident_id FROM auth_sessions WHERE token_hash = %s"
        " AND revoked_at IS NULL AND expires_at > now()",
        [_digest(token)],
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def lookup_session(conn: AsyncConnection, token: str) -> LiveSession | None:
    """Like :func:`resolve_session`, with the credential hash for revocation checks."""
    cur = await conn.execute(
        "SELECT resident_id, cert_hash FROM auth_sessions WHERE token_hash = %s"
        " AND revoked_at IS NULL AND expires_at > now()",
        [_digest(token)],
    )
    row = await cur.fetchone()
    return LiveSession(int(row[0]), bytes(row[1]) if row[1] is not None else None) if row else None


async def live_cert_hashes(conn: AsyncConnection) -> set[bytes]:
    """Credential hashes that have a live session (to match against a new CRL)."""
    cur = await conn.execute(
        "SELECT DISTINCT cert_hash FROM auth_sessions WHERE revoked_at IS NULL"
        " AND cert_hash IS NOT NULL AND expires_at > now()"
    )
    return {bytes(r[0]) async for r in cur}


async def revoke_cert_sessions(conn: AsyncConnection, cert_hashes: Collection[bytes]) -> int:
    """End every session opened with one of these credentials (revoked certificates)."""
    if not cert_hashes:
        return 0
    cur = await conn.execute(
        "UPDATE auth_sessions SET revoked_at = now()"
        " WHERE cert_hash = ANY(%s) AND revoked_at IS NULL",
        [list(cert_hashes)],
    )
    return cur.rowcount


async def revoke_session(conn: AsyncConnection, token: str) -> bool:
    """Sign out: the token stops working at once; False when it was unknown or revoked already."""
    cur = await conn.execute(
        "UPDATE auth_sessions SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
        [_digest(token)],
    )
    return cur.rowcount > 0


async def revoke_resident_sessions(conn: AsyncConnection, resident_id: int) -> int:
    """Sign a resident out everywhere (lost card, renewed certificate, staff action)."""
    cur = await conn.execute(
        "UPDATE auth_sessions SET revoked_at = now() WHERE resident_id = %s AND revoked_at IS NULL",
        [resident_id],
    )
    return cur.rowcount
