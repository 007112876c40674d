"""Counter assistance: city staff open a resident's portal view at a city counter.

A staff member starts a counter session with their admin API key; the resident's My Number
Card then signs a fresh challenge at the counter's card reader (the same verification as a
sign-in), which attaches the resident. The view lasts :data:`COUNTER_TTL` (15 minutes),
shows a warning :data:`WARN_BEFORE` before it ends, can be extended while it is open up to
:data:`MAX_TOTAL` from its start, and every step and page is written to the append-only
``portal_counter_audit`` table (SQL adapter and pure rules).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection

COUNTER_COOKIE = "mebuku_counter"
COUNTER_TTL = timedelta(minutes=15)
WARN_BEFORE = timedelta(minutes=2)
MAX_TOTAL = timedelta(hours=1)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class CounterSession:
    """A live counter session: who, for which resident (once the card signed), until when."""

    staff: str
    resident_id: int | None
    started_at: datetime
    expires_at: datetime


def extended_until(started_at: datetime, now: datetime) -> datetime:
    """The new end of a counter session extended at ``now`` (never past MAX_TOTAL)."""
    return min(now + COUNTER_TTL, started_at + MAX_TOTAL)


async def start(conn: AsyncConnection, staff: str) -> str:
    """A new counter session for ``staff``; its token (only its digest is stored)."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO portal_counter_sessions (token_hash, staff, expires_at)"
        " VALUES (%s, %s, now() + %s)",
        [_digest(token), staff, COUNTER_TTL],
    )
    await audit(conn, staff, None, "start")
    return token


async def lookup(conn: AsyncConnection, token: str) -> CounterSession | None:
    """The live session of ``token`` (not ended, not expired), else None."""
    cur = await conn.execute(
        "SELECT staff, resident_id, started_at, expires_at FROM portal_counter_sessions"
        " WHERE token_hash = %s AND ended_at IS NULL AND expires_at > now()",
        [_digest(token)],
    )
    row = await cur.fetchone()
    return CounterSession(row[0], row[1], row[2], row[3]) if row else None


async def attach_resident(conn: AsyncConnection, token: str, resident_id: int) -> None:
    """The resident's card signed at the counter: the view is theirs for COUNTER_TTL."""
    cur = await conn.execute(
        "UPDATE portal_counter_sessions SET resident_id = %s,"
        " expires_at = least(now() + %s, started_at + %s)"
        " WHERE token_hash = %s AND ended_at IS NULL AND expires_at > now() RETURNING staff",
        [resident_id, COUNTER_TTL, MAX_TOTAL, _digest(token)],
    )
    row = await cur.fetchone()
    if row:
        await audit(conn, row[0], resident_id, "card-presented")


async def extend(conn: AsyncConnection, token: str) -> CounterSession | None:
    """Extend a live session by COUNTER_TTL (at most MAX_TOTAL from its start)."""
    cur = await conn.execute(
        "UPDATE portal_counter_sessions SET expires_at = least(now() + %s, started_at + %s)"
        " WHERE token_hash = %s AND ended_at IS NULL AND expires_at > now()"
        " RETURNING staff, resident_id, started_at, expires_at",
        [COUNTER_TTL, MAX_TOTAL, _digest(token)],
    )
    row = await cur.fetchone()
    if row is None:
        return None
    await audit(conn, row[0], row[1], "extend", row[3].isoformat())
    return CounterSession(row[0], row[1], row[2], row[3])


async def end(conn: AsyncConnection, token: str) -> None:
    """End a counter session at once."""
    cur = await conn.execute(
        "UPDATE portal_counter_sessions SET ended_at = now()"
        " WHERE token_hash = %s AND ended_at IS NULL RETURNING staff, resident_id",
        [_digest(token)],
    )
    row = await cur.fetchone()
    if row:
        await audit(conn, row[0], row[1], "end")


async def audit(
    conn: AsyncConnection, staff: str, resident_id: int | None, action: str, detail: str = ""
) -> None:
    """One append-only audit row (who, for whom, what)."""
    await conn.execute(
        "INSERT INTO portal_counter_audit (staff, resident_id, action, detail)"
        " VALUES (%s, %s, %s, %s)",
        [staff, resident_id, action, detail[:500]],
    )


async def audit_trail(conn: AsyncConnection, resident_id: int) -> list[tuple[str, str, str]]:
    """A resident's counter audit rows, oldest first: (staff, action, detail)."""
    cur = await conn.execute(
        "SELECT staff, action, detail FROM portal_counter_audit WHERE resident_id = %s"
        " ORDER BY audit_id",
        [resident_id],
    )
    return [(r[0], r[1], r[2]) async for r in cur]
