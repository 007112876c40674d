"""Resident session tokens: opaque, random, stored hashed, expiring, revocable.

A token carries 256 bits of randomness, so a plain SHA-256 digest is a safe lookup key
(nothing to brute-force) and a stolen database yields no usable token. The fares package
issues a session after a My Number Card sign-in; the API resolves bearer tokens here.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from psycopg import AsyncConnection

DEFAULT_TTL = timedelta(hours=12)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue_session(
    conn: AsyncConnection, resident_id: int, ttl: timedelta = DEFAULT_TTL
) -> tuple[str, datetime]:
    """A new token for the resident and when it expires. Only its digest is stored."""
    token = secrets.token_urlsafe(32)
    cur = await conn.execute(
        "INSERT INTO auth_sessions (token_hash, resident_id, expires_at)"
        " VALUES (%s, %s, now() + %s) RETURNING expires_at",
        [_digest(token), resident_id, ttl],
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


async def revoke_session(conn: AsyncConnection, token: str) -> bool:
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
