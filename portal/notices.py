"""Push notices: what to tell whom (producers), the queue, and delivery over Web Push.

* Producers (:func:`scan`) look at rides and taps received since the last scan and at the
  live departures of saved stops, and put a notice in ``portal_push_queue`` for each
  resident who opted in to that type. A ``dedupe_key`` per notice makes a rescan harmless.
* Delivery (:func:`deliver_due`) sends each due notice to every subscription of its
  resident (RFC 8030 push, RFC 8291 aes128gcm encryption, RFC 8292 VAPID, via pywebpush).
  A notice is done only when every device answered 2xx, 404 or 410 (those subscriptions
  are removed); otherwise it is retried with exponential backoff (at-least-once, so a
  device may see a notice twice). During the resident's quiet hours it waits.
* Nothing personal leaves the platform beyond the notice text: the payload is a title, a
  body and a path on the portal; no resident number, card or operator record id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection

from core.i18n import L_, N_, Lang, gettext_for
from mobility.fares import history, ledger
from mobility.fares.policy import NoPolicyError, load_policies
from mobility.fares.rules import JST, local_day
from portal import stops, store, words

log = logging.getLogger(__name__)

DEFAULT_QUIET = (time(21, 0), time(7, 0))
MAX_ATTEMPTS = 8
SCAN_OVERLAP = timedelta(minutes=2)  # rescan this much: late commits are not missed
SCAN_LAG = timedelta(seconds=2)
FIRST_SCAN = timedelta(hours=1)
LATE_HORIZON = timedelta(minutes=60)

TEXTS: dict[str, tuple[str, str]] = {
    "ride-receipt-taxi": (
        N_("Taxi ride recorded"),
        N_("A taxi ride on your card was recorded: MyTaku {yen} yen."),
    ),
    "ride-receipt-bus": (
        N_("Bus ride recorded"),
        N_("A bus ride on your card was recorded: discount {yen} yen."),
    ),
    "rides-nearly-used": (
        N_("Few MyTaku rides left"),
        N_("You have {left} MyTaku rides left this fiscal year (until 31 March)."),
    ),
    "lost-card-presented": (
        N_("Your lost card was used"),
        N_("A card you reported lost was presented on a {what} at {at}. It gave no subsidy."),
    ),
    "bus-late": (
        N_("Your bus is late"),
        N_("The {at} bus at {stop} ({route}) is about {late} minutes late."),
    ),
}
WHAT = {"taxi": N_("taxi"), "bus": N_("bus")}
URLS = {"rides-nearly-used": "/my/", "lost-card-presented": "/my/cards", "bus-late": "/stops/"}


def notice_text(kind: str, params: dict[str, Any], lang: Lang) -> dict[str, str]:
    """The payload a device shows: title, body and a portal path (nothing else)."""
    _ = gettext_for(lang)
    key = f"{kind}-{params.get('source')}" if kind == "ride-receipt" else kind
    title, body = TEXTS[key]
    values = dict(params)
    if "source" in values:
        values["what"] = _(WHAT.get(str(values["source"]), "bus"))
    url = URLS.get(kind, "/my/rides")
    if kind == "bus-late":
        url = "/stops/" + str(params.get("stop_id", ""))
    return {"title": _(title), "body": _(body).format(**values), "url": url}


# ---------------------------------------------------------------- quiet hours and retries


def in_quiet_hours(local: time, quiet_from: time, quiet_to: time) -> bool:
    """Whether a Japan-time clock time lies in [from, to) (which may wrap midnight)."""
    if quiet_from == quiet_to:
        return False
    if quiet_from < quiet_to:
        return quiet_from <= local < quiet_to
    return local >= quiet_from or local < quiet_to


def quiet_ends(now: datetime, quiet_from: time, quiet_to: time) -> datetime:
    """When the quiet period that contains ``now`` ends (Japan time), as an aware time."""
    local = now.astimezone(JST)
    end = datetime.combine(local.date(), quiet_to, tzinfo=JST)
    if end <= local:
        end += timedelta(days=1)
    return end


def backoff(attempts: int) -> timedelta:
    """Wait before the next try: 30 s, 1 min, 2 min ... at most one hour."""
    return min(timedelta(seconds=30 * 2 ** max(0, attempts - 1)), timedelta(hours=1))


def outcome(status: int) -> str:
    """What a push service's answer means: ok, gone (remove the subscription), retry, drop."""
    if 200 <= status < 300:
        return "ok"
    if status in (404, 410):
        return "gone"
    if status == 0 or status == 429 or status >= 500:
        return "retry"
    return "drop"  # 400, 403, 413: this request will never work


# ---------------------------------------------------------------- subscriptions


@dataclass(frozen=True)
class Subscription:
    """One device's push subscription (RFC 8030 endpoint, RFC 8291 keys)."""

    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    lang: Lang


async def subscribe(
    conn: AsyncConnection, resident_id: int, endpoint: str, p256dh: str, auth: str, lang: Lang
) -> None:
    """Store (or move to this resident) a device's subscription."""
    await conn.execute(
        "INSERT INTO portal_push_subscriptions (resident_id, endpoint, p256dh, auth, lang)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (endpoint) DO UPDATE SET"
        " resident_id = EXCLUDED.resident_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth",
        [resident_id, endpoint, p256dh, auth, lang],
    )


async def subscriptions(conn: AsyncConnection, resident_id: int) -> list[Subscription]:
    """A resident's devices."""
    cur = await conn.execute(
        "SELECT subscription_id, endpoint, p256dh, auth, lang FROM portal_push_subscriptions"
        " WHERE resident_id = %s ORDER BY subscription_id",
        [resident_id],
    )
    return [Subscription(r[0], r[1], r[2], r[3], r[4]) async for r in cur]


async def quiet_hours(conn: AsyncConnection, resident_id: int) -> tuple[time, time]:
    """The resident's quiet hours (default 21:00 to 07:00)."""
    cur = await conn.execute(
        "SELECT quiet_from, quiet_to FROM portal_quiet_hours WHERE resident_id = %s",
        [resident_id],
    )
    row = await cur.fetchone()
    return (row[0], row[1]) if row else DEFAULT_QUIET


async def save_quiet_hours(
    conn: AsyncConnection, resident_id: int, quiet_from: time, quiet_to: time
) -> None:
    """Store the resident's quiet hours."""
    await conn.execute(
        "INSERT INTO portal_quiet_hours (resident_id, quiet_from, quiet_to) VALUES (%s, %s, %s)"
        " ON CONFLICT (resident_id) DO UPDATE SET quiet_from = EXCLUDED.quiet_from,"
        " quiet_to = EXCLUDED.quiet_to",
        [resident_id, quiet_from, quiet_to],
    )


# ---------------------------------------------------------------- producers


async def enqueue(
    conn: AsyncConnection, resident_id: int, kind: str, dedupe_key: str, params: dict[str, Any]
) -> bool:
    """Put a notice in the queue once (False: it was there already)."""
    cur = await conn.execute(
        "INSERT INTO portal_push_queue (resident_id, kind, dedupe_key, params)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (dedupe_key) DO NOTHING",
        [resident_id, kind, dedupe_key[:300], json.dumps(params, ensure_ascii=False)],
    )
    return cur.rowcount == 1


async def _opted_in(conn: AsyncConnection, kind: str) -> dict[int, int | None]:
    cur = await conn.execute(
        "SELECT resident_id, threshold FROM portal_notice_prefs WHERE kind = %s AND enabled",
        [kind],
    )
    return {int(r[0]): r[1] async for r in cur}


async def _cursor(conn: AsyncConnection, now: datetime) -> datetime:
    cur = await conn.execute("SELECT seen FROM portal_push_cursor WHERE name = 'records'")
    row = await cur.fetchone()
    return row[0] if row else now - FIRST_SCAN


async def _nearly_used(
    conn: AsyncConnection, rid: int, threshold: int | None, now: datetime
) -> None:
    try:
        st = await ledger.subsidy_status(conn, rid, load_policies(), now)
    except NoPolicyError:
        return
    limit = store.DEFAULT_THRESHOLDS["rides-nearly-used"] if threshold is None else threshold
    if st.eligible_as and words.nearly_used_up(st.rides_left_this_year, limit):
        key = f"rides-left:{rid}:{st.fiscal_year}:{limit}"
        await enqueue(conn, rid, "rides-nearly-used", key, {"left": st.rides_left_this_year})


async def scan_records(conn: AsyncConnection, now: datetime) -> int:
    """Receipts, rides-nearly-used and lost-card notices for rides and taps received since
    the last scan; the number of notices queued."""
    since = await _cursor(conn, now) - SCAN_OVERLAP
    until = now - SCAN_LAG
    rows = await history.received_between(conn, since, until)
    receipt = await _opted_in(conn, "ride-receipt")
    nearly = await _opted_in(conn, "rides-nearly-used")
    lost = await _opted_in(conn, "lost-card-presented")
    queued = 0
    for r in rows:
        at = r.ride_at.astimezone(JST).strftime("%m/%d %H:%M")
        ref = f"{r.source}:{r.operator_id}:{r.record_id}"
        if r.resident_id in receipt:
            params = {"source": r.source, "yen": words.yen(r.amount_yen), "at": at}
            queued += await enqueue(
                conn, r.resident_id, "ride-receipt", f"receipt:{ref}:{r.resident_id}", params
            )
        if r.source == "taxi" and r.amount_yen > 0 and r.resident_id in nearly:
            await _nearly_used(conn, r.resident_id, nearly[r.resident_id], now)
        if r.lost_card_holder is not None and r.lost_card_holder in lost:
            params = {"source": r.source, "at": at}
            queued += await enqueue(
                conn, r.lost_card_holder, "lost-card-presented", f"lost:{ref}", params
            )
    await conn.execute(
        "INSERT INTO portal_push_cursor (name, seen) VALUES ('records', %s)"
        " ON CONFLICT (name) DO UPDATE SET seen = greatest(portal_push_cursor.seen, EXCLUDED.seen)",
        [until],
    )
    return queued


async def scan_late_buses(conn: AsyncConnection, now: datetime) -> int:
    """A notice when a bus due at a resident's saved stop within the hour runs at least
    their threshold late (once per trip, stop and day)."""
    late = await _opted_in(conn, "bus-late")
    queued = 0
    day: date = local_day(now)
    for rid, threshold in late.items():
        limit = threshold or store.DEFAULT_THRESHOLDS["bus-late"]
        for stop_id in await store.saved_stops(conn, rid):
            stop = await stops.get_stop(conn, stop_id)
            if stop is None:
                continue
            for b in await stops.next_buses(conn, stop_id, now=now, limit=4):
                if b.delay_min is None or b.delay_min < limit:
                    continue
                if b.scheduled_at - now > LATE_HORIZON:
                    continue
                params = {
                    "stop": stop.name,
                    "stop_id": stop.stop_id,
                    "route": b.route,
                    "late": b.delay_min,
                    "at": b.scheduled_at.astimezone(JST).strftime("%H:%M"),
                }
                key = f"late:{rid}:{stop_id}:{b.trip_id}:{day}"
                queued += await enqueue(conn, rid, "bus-late", key, params)
    return queued


async def scan(conn: AsyncConnection, now: datetime | None = None) -> int:
    """Every producer once; the number of notices queued."""
    now = now or datetime.now(UTC)
    return await scan_records(conn, now) + await scan_late_buses(conn, now)


# ---------------------------------------------------------------- delivery

Sender = Callable[[Subscription, dict[str, str]], Awaitable[int]]


@dataclass(frozen=True)
class Due:
    """A queued notice that is due."""

    notice_id: int
    resident_id: int
    kind: str
    params: dict[str, Any]
    attempts: int


async def _due(conn: AsyncConnection, now: datetime, limit: int) -> list[Due]:
    cur = await conn.execute(
        "SELECT notice_id, resident_id, kind, params, attempts FROM portal_push_queue"
        " WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= %s"
        " ORDER BY next_attempt_at, notice_id LIMIT %s",
        [now, limit],
    )
    return [Due(r[0], r[1], r[2], r[3], r[4]) async for r in cur]


async def _finish(conn: AsyncConnection, d: Due, now: datetime, error: str | None) -> None:
    if error is None:
        await conn.execute(
            "UPDATE portal_push_queue SET delivered_at = %s, attempts = attempts + 1,"
            " last_error = NULL WHERE notice_id = %s",
            [now, d.notice_id],
        )
        return
    attempts = d.attempts + 1
    give_up = now if attempts >= MAX_ATTEMPTS else None
    await conn.execute(
        "UPDATE portal_push_queue SET attempts = %s, next_attempt_at = %s, given_up_at = %s,"
        " last_error = %s WHERE notice_id = %s",
        [attempts, now + backoff(attempts), give_up, error[:300], d.notice_id],
    )


async def _send_all(
    conn: AsyncConnection, d: Due, subs: list[Subscription], send: Sender
) -> str | None:
    """Send to every device; the error that needs a retry, or None."""
    error = None
    for s in subs:
        status = await send(s, notice_text(d.kind, d.params, s.lang))
        verdict = outcome(status)
        if verdict == "ok":
            await conn.execute(
                "UPDATE portal_push_subscriptions SET last_ok_at = now()"
                " WHERE subscription_id = %s",
                [s.subscription_id],
            )
        elif verdict == "gone":
            log.info(L_("push subscription %s expired (%s): removed"), s.subscription_id, status)
            await conn.execute(
                "DELETE FROM portal_push_subscriptions WHERE subscription_id = %s",
                [s.subscription_id],
            )
        elif verdict == "retry":
            error = f"push service answered {status or 'nothing'}"
        else:
            log.warning(L_("push to subscription %s refused (%s)"), s.subscription_id, status)
    return error


async def deliver_due(
    conn: AsyncConnection, send: Sender, now: datetime | None = None, limit: int = 100
) -> int:
    """Deliver the due notices (each to all its resident's devices); how many were done."""
    now = now or datetime.now(UTC)
    done = 0
    for d in await _due(conn, now, limit):
        q_from, q_to = await quiet_hours(conn, d.resident_id)
        if in_quiet_hours(now.astimezone(JST).time(), q_from, q_to):
            await conn.execute(
                "UPDATE portal_push_queue SET next_attempt_at = %s WHERE notice_id = %s",
                [quiet_ends(now, q_from, q_to), d.notice_id],
            )
            continue
        subs = await subscriptions(conn, d.resident_id)
        if not subs:
            await _finish(
                conn,
                Due(d.notice_id, d.resident_id, d.kind, d.params, MAX_ATTEMPTS),
                now,
                "no device subscribed",
            )
            continue
        error = await _send_all(conn, d, subs, send)
        await _finish(conn, d, now, error)
        done += error is None
    return done
