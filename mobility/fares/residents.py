"""Residents, their certificates, sign-in challenges and eligibility facts (SQL adapter)."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta

from psycopg import AsyncConnection

from mobility.fares.rules import Fact

CHALLENGE_TTL = timedelta(minutes=5)


async def create_challenge(conn: AsyncConnection) -> tuple[bytes, datetime]:
    """A fresh sign-in challenge for the card to sign, valid for a short time and once only."""
    nonce = secrets.token_bytes(32)
    cur = await conn.execute(
        "INSERT INTO fare_auth_challenges (nonce, expires_at) VALUES (%s, now() + %s)"
        " RETURNING expires_at",
        [nonce, CHALLENGE_TTL],
    )
    row = await cur.fetchone()
    assert row is not None
    await purge_expired_challenges(conn)
    return nonce, row[0]


PURGE_BATCH = 1000


async def purge_expired_challenges(conn: AsyncConnection) -> int:
    """Drop expired challenges (useless once expired) on every issue, a bounded batch each.

    Runs every time, not by chance, so the table cannot grow without bound and a broken
    query shows at once (it once compared a timestamp with an untyped literal: 500s).
    """
    cur = await conn.execute(
        "DELETE FROM fare_auth_challenges WHERE nonce IN (SELECT nonce FROM"
        " fare_auth_challenges WHERE expires_at < now() ORDER BY expires_at LIMIT %s)",
        [PURGE_BATCH],
    )
    return cur.rowcount


async def consume_challenge(conn: AsyncConnection, nonce: bytes) -> bool:
    """True once for a live nonce; replays and expired nonces get False."""
    cur = await conn.execute(
        "UPDATE fare_auth_challenges SET used_at = now()"
        " WHERE nonce = %s AND used_at IS NULL AND expires_at > now()",
        [nonce],
    )
    return cur.rowcount == 1


async def resident_for_cert(conn: AsyncConnection, cert_hash: bytes) -> int | None:
    """The resident a card certificate belongs to, if any."""
    cur = await conn.execute(
        "SELECT resident_id FROM fare_resident_certs WHERE cert_hash = %s", [cert_hash]
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def enrol_or_find(
    conn: AsyncConnection, cert_hash: bytes, not_after: datetime
) -> tuple[int, bool]:
    """The resident this certificate belongs to, enrolling a new one the first time."""
    found = await resident_for_cert(conn, cert_hash)
    if found is not None:
        return found, False
    async with conn.transaction():
        cur = await conn.execute("INSERT INTO fare_residents DEFAULT VALUES RETURNING resident_id")
        row = await cur.fetchone()
        assert row is not None
        rid = int(row[0])
        cur = await conn.execute(
            "INSERT INTO fare_resident_certs (cert_hash, resident_id, not_after, linked_by)"
            " VALUES (%s, %s, %s, 'enrolment') ON CONFLICT DO NOTHING",
            [cert_hash, rid, not_after],
        )
        if cur.rowcount == 0:  # a concurrent first sign-in with the same card won
            raise _LostRaceError
    return rid, True


class _LostRaceError(Exception):
    pass


async def sign_in_resident(
    conn: AsyncConnection, cert_hash: bytes, not_after: datetime
) -> tuple[int, bool]:
    """The resident for a card certificate, created on first sign-in; True when new."""
    try:
        return await enrol_or_find(conn, cert_hash, not_after)
    except _LostRaceError:
        found = await resident_for_cert(conn, cert_hash)
        assert found is not None
        return found, False


class CertificateTakenError(Exception):
    """The new certificate already belongs to another resident; ``renewal``: the resident
    was linking it themselves (both cards signed), else city staff were."""

    def __init__(self, renewal: bool) -> None:
        super().__init__("certificate enrolled for another resident")
        self.renewal = renewal


async def link_certificate(
    conn: AsyncConnection, resident_id: int, cert_hash: bytes, not_after: datetime, by: str
) -> bool:
    """Link a renewed certificate; False if it was already linked to this resident."""
    owner = await resident_for_cert(conn, cert_hash)
    if owner == resident_id:
        return False
    if owner is not None:
        raise CertificateTakenError(renewal=by == "renewal")
    cur = await conn.execute(
        "INSERT INTO fare_resident_certs (cert_hash, resident_id, not_after, linked_by)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        [cert_hash, resident_id, not_after, by],
    )
    if cur.rowcount == 0:
        raise CertificateTakenError(renewal=by == "renewal")
    return True


async def resident_exists(conn: AsyncConnection, resident_id: int) -> bool:
    """Whether the resident exists, so staff get a 404 instead of a dangling fact."""
    cur = await conn.execute("SELECT 1 FROM fare_residents WHERE resident_id = %s", [resident_id])
    return await cur.fetchone() is not None


async def record_fact(
    conn: AsyncConnection, resident_id: int, fact: Fact, recorded_by: str, note: str = ""
) -> tuple[int, datetime]:
    """Record an eligibility fact with who recorded it: facts are appended, never edited, so every
    subsidy decision can be traced."""
    cur = await conn.execute(
        "INSERT INTO fare_eligibility_facts"
        " (resident_id, kind, value, valid_from, valid_to, recorded_by, note)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING fact_id, recorded_at",
        [resident_id, fact.kind, fact.value, fact.valid_from, fact.valid_to, recorded_by, note],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), row[1]


_FACTS_COLUMNS = "SELECT resident_id, kind, value, valid_from, valid_to FROM fare_eligibility_facts"
_FACTS_OF = _FACTS_COLUMNS + " WHERE resident_id = ANY(%s) ORDER BY fact_id"
_FACTS_OF_ONE = _FACTS_COLUMNS + " WHERE resident_id = %s ORDER BY fact_id"


async def facts_of(conn: AsyncConnection, resident_ids: list[int]) -> dict[int, list[Fact]]:
    """The eligibility facts of several residents in one query."""
    out: dict[int, list[Fact]] = {r: [] for r in resident_ids}
    # One resident (a quote, a ride, a portal page): the same rows by a plain parameter,
    # which costs the API about a third less CPU than adapting a one-element array.
    if len(out) == 1:
        cur = await conn.execute(_FACTS_OF_ONE, [next(iter(out))])
    else:
        cur = await conn.execute(_FACTS_OF, [resident_ids])
    async for rid, kind, value, vf, vt in cur:
        out[int(rid)].append(Fact(kind, value, vf, vt))
    return out


async def fact_history(conn: AsyncConnection, resident_id: int) -> list[dict[str, object]]:
    """Every fact recorded for a resident, oldest first, for staff review."""
    cur = await conn.execute(
        "SELECT fact_id, kind, value, valid_from, valid_to, recorded_by, recorded_at, note"
        " FROM fare_eligibility_facts WHERE resident_id = %s ORDER BY fact_id",
        [resident_id],
    )
    cols = ["fact_id", "kind", "value", "valid_from", "valid_to", "recorded_by", "recorded_at"]
    return [dict(zip([*cols, "note"], row, strict=True)) async for row in cur]


def birth_date_of(facts: list[Fact]) -> date | None:
    """The latest recorded birth date (a later record corrects an earlier one)."""
    births = [f for f in facts if f.kind == "birth_date"]
    return date.fromisoformat(births[-1].value) if births else None
