"""The portal's own tables (SQL adapter): notice opt-ins per type and saved stops."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection

NOTICE_KINDS = ("rides-nearly-used", "ride-receipt", "lost-card-presented", "bus-late")
# Defaults: the 'tenth-last ride' notice (10 rides left); a bus 10 minutes late.
DEFAULT_THRESHOLDS = {"rides-nearly-used": 10, "bus-late": 10}
THRESHOLD_RANGES = {"rides-nearly-used": (1, 120), "bus-late": (1, 120)}


@dataclass(frozen=True)
class NoticePref:
    """One notice type's opt-in (off unless the resident turned it on)."""

    kind: str
    enabled: bool
    threshold: int | None


async def notice_prefs(conn: AsyncConnection, resident_id: int) -> dict[str, NoticePref]:
    """Every notice type for the resident (defaults for those never saved)."""
    cur = await conn.execute(
        "SELECT kind, enabled, threshold FROM portal_notice_prefs WHERE resident_id = %s",
        [resident_id],
    )
    saved = {r[0]: NoticePref(r[0], bool(r[1]), r[2]) async for r in cur}
    return {k: saved.get(k, NoticePref(k, False, DEFAULT_THRESHOLDS.get(k))) for k in NOTICE_KINDS}


async def save_notice_prefs(
    conn: AsyncConnection, resident_id: int, prefs: list[NoticePref]
) -> None:
    """Store the resident's choices (one upsert per type, in one transaction)."""
    async with conn.transaction():
        for p in prefs:
            if p.kind not in NOTICE_KINDS:
                raise ValueError(p.kind)
            await conn.execute(
                "INSERT INTO portal_notice_prefs (resident_id, kind, enabled, threshold)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (resident_id, kind) DO UPDATE"
                " SET enabled = EXCLUDED.enabled, threshold = EXCLUDED.threshold,"
                " updated_at = now()",
                [resident_id, p.kind, p.enabled, p.threshold],
            )


def parse_notice_form(form: dict[str, str]) -> list[NoticePref]:
    """The notice settings form to preferences; thresholds clamped to their ranges."""
    out: list[NoticePref] = []
    for kind in NOTICE_KINDS:
        threshold: int | None = None
        if kind in THRESHOLD_RANGES:
            lo, hi = THRESHOLD_RANGES[kind]
            try:
                threshold = int(form.get(f"{kind}-threshold", ""))
            except ValueError:
                threshold = DEFAULT_THRESHOLDS[kind]
            threshold = max(lo, min(hi, threshold))
        out.append(NoticePref(kind, form.get(kind) == "on", threshold))
    return out


MAX_SAVED_STOPS = 10


async def saved_stops(conn: AsyncConnection, resident_id: int) -> list[str]:
    """The resident's saved stop ids, oldest first."""
    cur = await conn.execute(
        "SELECT stop_id FROM portal_saved_stops WHERE resident_id = %s ORDER BY saved_at",
        [resident_id],
    )
    return [r[0] async for r in cur]


async def save_stop(conn: AsyncConnection, resident_id: int, stop_id: str) -> bool:
    """Save a stop (at most :data:`MAX_SAVED_STOPS`); False when the list is full."""
    if len(await saved_stops(conn, resident_id)) >= MAX_SAVED_STOPS:
        return False
    await conn.execute(
        "INSERT INTO portal_saved_stops (resident_id, stop_id) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        [resident_id, stop_id],
    )
    return True


async def remove_stop(conn: AsyncConnection, resident_id: int, stop_id: str) -> None:
    """Forget a saved stop."""
    await conn.execute(
        "DELETE FROM portal_saved_stops WHERE resident_id = %s AND stop_id = %s",
        [resident_id, stop_id],
    )
