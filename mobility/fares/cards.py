"""Transit IC cards (FeliCa IDm) linked to residents, stored as keyed hashes (SQL adapter)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import AsyncConnection

from core.pseudonym import keyed_hash

IDM_PURPOSE = "felica-idm"
_IDM = re.compile(r"^[0-9A-F]{16}$")


def normalise_idm(text: str) -> str:
    """16 hex digits (8-byte IDm), upper case; spaces, colons and hyphens are ignored."""
    s = re.sub(r"[\s:\-]", "", text).upper()
    if not _IDM.match(s):
        raise ValueError("an IC card IDm is 16 hexadecimal digits")
    return s


def idm_hash(key: bytes, idm: str) -> bytes:
    return keyed_hash(key, IDM_PURPOSE, normalise_idm(idm))


def mask(last4: str) -> str:
    return "************" + last4


@dataclass(frozen=True)
class Card:
    card_id: int
    masked: str
    status: str
    linked_at: datetime
    ended_at: datetime | None


class CardTakenError(Exception):
    """The card is linked to someone (maybe this resident) or was reported lost."""


async def link_card(conn: AsyncConnection, key: bytes, resident_id: int, idm: str) -> Card:
    idm = normalise_idm(idm)
    try:
        cur = await conn.execute(
            "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, %s, %s)"
            " RETURNING card_id, last4, status, linked_at, ended_at",
            [idm_hash(key, idm), idm[-4:], resident_id],
        )
    except psycopg.errors.UniqueViolation as e:
        raise CardTakenError from e
    row = await cur.fetchone()
    assert row is not None
    return Card(row[0], mask(row[1]), row[2], row[3], row[4])


async def list_cards(
    conn: AsyncConnection, resident_id: int, include_ended: bool = False
) -> list[Card]:
    cur = await conn.execute(
        "SELECT card_id, last4, status, linked_at, ended_at FROM fare_ic_cards"
        " WHERE resident_id = %s AND (%s OR status = 'active') ORDER BY card_id",
        [resident_id, include_ended],
    )
    return [Card(r[0], mask(r[1]), r[2], r[3], r[4]) async for r in cur]


async def end_card(conn: AsyncConnection, resident_id: int, card_id: int, status: str) -> bool:
    """Unlink (``unlinked``) or report lost (``lost``: the card stays blocked for everyone)."""
    if status not in ("unlinked", "lost"):
        raise ValueError(status)
    cur = await conn.execute(
        "UPDATE fare_ic_cards SET status = %s, ended_at = now()"
        " WHERE card_id = %s AND resident_id = %s AND status = 'active'",
        [status, card_id, resident_id],
    )
    return cur.rowcount == 1


async def residents_for_cards(conn: AsyncConnection, hashes: list[bytes]) -> dict[bytes, int]:
    """Active cards' owners (lost or unlinked cards resolve to nobody)."""
    cur = await conn.execute(
        "SELECT idm_hash, resident_id FROM fare_ic_cards"
        " WHERE idm_hash = ANY(%s) AND status = 'active'",
        [hashes],
    )
    return {bytes(h): int(r) async for h, r in cur}
