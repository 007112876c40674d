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
    """The card's IDm as a keyed hash: the number itself is never stored."""
    return keyed_hash(key, IDM_PURPOSE, normalise_idm(idm))


def mask(last4: str) -> str:
    """A card as a resident sees it: only the last four digits."""
    return "************" + last4


@dataclass(frozen=True)
class Card:
    """A resident's IC card link, masked, with its status."""

    card_id: int
    masked: str
    status: str
    linked_at: datetime
    ended_at: datetime | None


class CardTakenError(Exception):
    """The card is linked to someone or was reported lost; ``mine``: by this resident."""

    def __init__(self, mine: bool) -> None:
        super().__init__("card already linked" if mine else "card held by another account")
        self.mine = mine


class CardLimitError(Exception):
    """The resident already has the maximum number of active cards; ``by_staff``: city
    staff were moving a card to them (a dispute), not the resident linking one."""

    def __init__(self, limit: int, by_staff: bool = False) -> None:
        super().__init__(f"at most {limit} active cards")
        self.limit = limit
        self.by_staff = by_staff


_INSERT = (
    "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, %s, %s)"
    " RETURNING card_id, last4, status, linked_at, ended_at"
)


async def _lock_residents(conn: AsyncConnection, rids: list[int]) -> None:
    """Row locks in id order: one resident's links are decided one at a time (the cap)."""
    await conn.execute(
        "SELECT 1 FROM fare_residents WHERE resident_id = ANY(%s) ORDER BY resident_id FOR UPDATE",
        [sorted(set(rids))],
    )


async def _active_count(conn: AsyncConnection, resident_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM fare_ic_cards WHERE resident_id = %s AND status = 'active'",
        [resident_id],
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def link_card(
    conn: AsyncConnection, key: bytes, resident_id: int, idm: str, max_active: int
) -> Card:
    """Link a card to the resident, at most ``max_active`` active cards each.

    A card held (active or lost) by anyone cannot be linked: the real holder of a card
    someone else linked goes to city staff, who end the other link (:func:`staff_resolve`).
    """
    idm = normalise_idm(idm)
    h = idm_hash(key, idm)
    async with conn.transaction():
        await _lock_residents(conn, [resident_id])
        cur = await conn.execute(
            "SELECT resident_id FROM fare_ic_cards WHERE idm_hash = %s"
            " AND status IN ('active', 'lost')",
            [h],
        )
        held = await cur.fetchone()
        if held is not None:
            raise CardTakenError(mine=int(held[0]) == resident_id)
        if await _active_count(conn, resident_id) >= max_active:
            raise CardLimitError(max_active)
        try:
            async with conn.transaction():
                cur = await conn.execute(_INSERT, [h, idm[-4:], resident_id])
        except psycopg.errors.UniqueViolation as e:  # linked concurrently by someone else
            raise CardTakenError(mine=False) from e
        row = await cur.fetchone()
    assert row is not None
    return Card(row[0], mask(row[1]), row[2], row[3], row[4])


@dataclass(frozen=True)
class Resolution:
    """One audited staff action on a card link."""

    audit_id: int
    action: str
    ended_card_id: int | None
    from_resident: int | None
    new_card_id: int | None
    to_resident: int | None


class CardNotHeldError(LookupError):
    """No active or lost link of this card exists."""


async def staff_resolve(  # noqa: PLR0913 (keyword-only; its caller, fares/http.py, is being split in parallel)
    conn: AsyncConnection,
    key: bytes,
    idm: str,
    *,
    action: str,
    to_resident: int | None,
    staff: str,
    reason: str,
    max_active: int,
) -> Resolution:
    """City staff settle a card dispute after seeing the card and its holder in person.

    ``unlink`` ends the current link (active or lost), which frees the card for its holder;
    ``reassign`` ends it and links the card to ``to_resident``. Both write one row of the
    append-only ``fare_card_audit`` with the staff member and the reason.
    """
    if action not in ("unlink", "reassign"):
        raise ValueError(action)
    if action == "reassign" and to_resident is None:
        raise ValueError("reassign needs the resident the card goes to")
    idm = normalise_idm(idm)
    h = idm_hash(key, idm)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT card_id, resident_id FROM fare_ic_cards WHERE idm_hash = %s"
            " AND status IN ('active', 'lost')",
            [h],
        )
        held = await cur.fetchone()
        from_rid = int(held[1]) if held else None
        if held is None and action == "unlink":
            raise CardNotHeldError
        await _lock_residents(conn, [r for r in (from_rid, to_resident) if r is not None])
        if held is not None:
            await conn.execute(
                "UPDATE fare_ic_cards SET status = 'reassigned', ended_at = now()"
                " WHERE card_id = %s",
                [held[0]],
            )
        new_id = None
        if action == "reassign":
            assert to_resident is not None
            if await _active_count(conn, to_resident) >= max_active:
                raise CardLimitError(max_active, by_staff=True)
            cur = await conn.execute(_INSERT, [h, idm[-4:], to_resident])
            row = await cur.fetchone()
            assert row is not None
            new_id = int(row[0])
        cur = await conn.execute(
            "INSERT INTO fare_card_audit (staff, action, idm_hash, ended_card_id,"
            " from_resident, to_resident, new_card_id, reason)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING audit_id",
            [
                staff,
                action,
                h,
                held[0] if held else None,
                from_rid,
                to_resident,
                new_id,
                reason,
            ],
        )
        row = await cur.fetchone()
        assert row is not None
    return Resolution(int(row[0]), action, held[0] if held else None, from_rid, new_id, to_resident)


async def card_audit(conn: AsyncConnection, key: bytes, idm: str) -> list[dict[str, object]]:
    """Every staff action on this card, oldest first."""
    cur = await conn.execute(
        "SELECT audit_id, at, staff, action, from_resident, to_resident, reason"
        " FROM fare_card_audit WHERE idm_hash = %s ORDER BY audit_id",
        [idm_hash(key, idm)],
    )
    cols = ["audit_id", "at", "staff", "action", "from_resident", "to_resident", "reason"]
    return [dict(zip(cols, r, strict=True)) async for r in cur]


async def list_cards(
    conn: AsyncConnection, resident_id: int, include_ended: bool = False
) -> list[Card]:
    """The resident's cards, active ones only unless ``include_ended``."""
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
