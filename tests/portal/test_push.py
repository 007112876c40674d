"""Push notices end to end: opt-in per type, the queue, Web Push to a local push service
that checks VAPID (RFC 8292) and decrypts (RFC 8291) with the subscription's keys;
retries, expired subscriptions (410) and quiet hours."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from py_vapid import Vapid02

from mobility.fares.rules import JST
from portal import notices
from portal.push import load_vapid, public_key_b64, webpush_sender
from tests.portal.conftest import TAXI, Keys, csrf_of, resident_id, ride_body, yesterday_at
from tests.portal.test_pages import device, sign_in_with_card
from tests.support.push_service import PushService, b64u

CARD = "0B0E0000000C3D01"


def test_quiet_hours_backoff_and_answers() -> None:
    assert notices.in_quiet_hours(time(22), time(21), time(7))
    assert notices.in_quiet_hours(time(6, 59), time(21), time(7))
    assert not notices.in_quiet_hours(time(7), time(21), time(7))
    assert notices.in_quiet_hours(time(13), time(12), time(14))
    assert not notices.in_quiet_hours(time(13), time(9), time(9))
    now = datetime(2026, 12, 1, 23, 30, tzinfo=JST)
    assert notices.quiet_ends(now, time(21), time(7)) == datetime(2026, 12, 2, 7, tzinfo=JST)
    early = datetime(2026, 12, 2, 5, tzinfo=JST)
    assert notices.quiet_ends(early, time(21), time(7)) == datetime(2026, 12, 2, 7, tzinfo=JST)
    assert [notices.backoff(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert notices.backoff(30) == timedelta(hours=1)
    assert [notices.outcome(s) for s in (201, 410, 404, 503, 429, 0, 400)] == [
        "ok",
        "gone",
        "gone",
        "retry",
        "retry",
        "retry",
        "drop",
    ]


def test_notice_text_is_japanese_first_and_impersonal() -> None:
    ja = notices.notice_text("rides-nearly-used", {"left": 10}, "ja")
    assert ja == {
        "title": "マイタクの残りが少なくなりました",
        "body": "今年度のマイタクの残りは 10 回です（3月31日まで）。",
        "url": "/my/",
    }
    en = notices.notice_text(
        "ride-receipt", {"source": "bus", "yen": "10", "at": "12/01 09:00"}, "en"
    )
    assert en["body"] == "A bus ride on your card was recorded: discount 10 yen."


@pytest.fixture(scope="module")
def push() -> Iterator[PushService]:
    with PushService() as ps:
        yield ps


@pytest.fixture(scope="module")
def vapid() -> Vapid02:
    v = Vapid02()
    v.generate_keys()
    return v


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _scan_and_deliver(db_url: str, send: notices.Sender, deliver_at: datetime) -> int:
    """Scan what arrived until now, then deliver as if it were ``deliver_at``."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await notices.scan(conn, datetime.now(UTC) + timedelta(seconds=5))
        return await notices.deliver_due(conn, send, deliver_at)


def queue(db_url: str, rid: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT kind, attempts, delivered_at IS NOT NULL, given_up_at IS NOT NULL,"
            " next_attempt_at, params FROM portal_push_queue WHERE resident_id = %s"
            " ORDER BY notice_id",
            [rid],
        ).fetchall()


def test_push_end_to_end(
    client: TestClient, dev_ca: Any, keys: Keys, db_url: str, push: PushService, vapid: Vapid02
) -> None:
    phone = push.device("phone")
    send = webpush_sender(vapid, "mailto:kotsu@city.maebashi.example")
    # 4:00 UTC = 13:00 Japan time: outside the default quiet hours (21:00 to 07:00)
    noon = datetime.now(UTC).replace(hour=4, minute=0) + timedelta(days=1)
    with device(client) as c:
        sign_in_with_card(c, dev_ca, "push-senior")
        rid = resident_id(c)
        c.post(
            f"/v1/admin/residents/{rid}/facts",
            json={"kind": "birth_date", "value": "1948-05-01"},
            headers={"X-API-Key": keys.admin},
        )
        page = c.get("/my/cards")
        assert (
            c.post(
                "/my/cards", data={"csrf": csrf_of(page.text), "idm": CARD}, follow_redirects=False
            ).status_code
            == 303
        )
        page = c.get("/my/notices")
        form = {
            "csrf": csrf_of(page.text),
            "ride-receipt": "on",
            "rides-nearly-used": "on",
            "rides-nearly-used-threshold": "70",
            "lost-card-presented": "on",
            "quiet_from": "21:00",
            "quiet_to": "07:00",
        }
        assert c.post("/my/notices", data=form, follow_redirects=False).status_code == 303
        # the page's script would send this after pushManager.subscribe()
        sub = {
            "csrf": csrf_of(page.text),
            "endpoint": push.endpoint(phone),
            "p256dh": phone.p256dh,
            "auth": b64u(phone.auth),
        }
        assert c.post("/my/push/subscribe", data=sub).status_code == 204
        assert c.post("/my/push/subscribe", data={**sub, "p256dh": "x"}).status_code == 422
    # an operator submits a MyTaku ride, the 70th-last of the year: a receipt and "69 rides
    # left" reach the phone
    r = client.post(
        f"/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("N-1", CARD, yesterday_at(10)),
        headers={"X-API-Key": keys.taxi},
    )
    assert r.status_code == 200 and r.json()["riders"][0]["subsidy_yen"] == 900
    scan_at = datetime.now(UTC) + timedelta(seconds=5)
    assert run(_scan_and_deliver(db_url, send, max(scan_at, noon))) == 2
    assert push.refusals == []
    bodies = [m["body"] for m in phone.received]
    assert "タクシーの乗車が記録されました: マイタク 900 円。" in bodies[0] or any(
        "マイタク 900 円" in b for b in bodies
    )
    assert any("残りは 69 回" in b for b in bodies)
    # nothing personal beyond the notice text: no resident number, card or record id
    for m in phone.received:
        assert set(m) == {"title", "body", "url"} and m["url"].startswith("/")
        assert CARD[-4:] not in json.dumps(m) and "N-1" not in json.dumps(m)
    # a rescan queues nothing twice
    assert run(_scan_and_deliver(db_url, send, max(scan_at, noon))) == 0
    assert len(phone.received) == 2

    # the push service fails once: the notice is retried later (at-least-once)
    phone.script = [503]
    r = client.post(
        f"/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("N-2", CARD, yesterday_at(12)),
        headers={"X-API-Key": keys.taxi},
    )
    assert r.status_code == 200
    t2 = max(datetime.now(UTC) + timedelta(seconds=5), noon)
    assert run(_scan_and_deliver(db_url, send, t2)) == 0
    pending = [q for q in queue(db_url, rid) if not q[2]]
    assert len(pending) == 1 and pending[0][1] == 1 and pending[0][4] > t2
    assert run(_scan_and_deliver(db_url, send, t2 + timedelta(minutes=1))) == 1
    assert phone.answered[-2:] == [503, 201] and len(phone.received) == 3

    # quiet hours: a notice at 23:00 Japan time waits until 07:00
    r = client.post(
        f"/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("N-3", CARD, yesterday_at(14)),
        headers={"X-API-Key": keys.taxi},
    )
    night = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )  # 23:00 Japan time
    assert run(_scan_and_deliver(db_url, send, night)) == 0
    waiting = [q for q in queue(db_url, rid) if not q[2]]
    assert len(waiting) == 1 and waiting[0][4].astimezone(JST).time() == time(7)
    assert len(phone.received) == 3
    assert run(_scan_and_deliver(db_url, send, waiting[0][4])) == 1
    assert len(phone.received) == 4

    # the subscription expired at the push service (410): it is removed
    phone.script = [410]
    r = client.post(
        f"/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("N-4", CARD, yesterday_at(15)),
        headers={"X-API-Key": keys.taxi},
    )
    t4 = max(datetime.now(UTC) + timedelta(seconds=5), noon)
    run(_scan_and_deliver(db_url, send, t4))
    with psycopg.connect(db_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM portal_push_subscriptions WHERE resident_id = %s", [rid]
        ).fetchone()
        assert left is not None and left[0] == 0


def test_a_lost_card_presented_is_notified(
    client: TestClient, dev_ca: Any, keys: Keys, db_url: str, push: PushService, vapid: Vapid02
) -> None:
    tablet = push.device("tablet")
    send = webpush_sender(vapid, "mailto:kotsu@city.maebashi.example")
    card = "0B0E0000000C3D02"
    with device(client) as c:
        sign_in_with_card(c, dev_ca, "push-lost")
        page = c.get("/my/cards")
        c.post("/my/cards", data={"csrf": csrf_of(page.text), "idm": card})
        page = c.get("/my/cards")
        card_id = page.text.split('action="/my/cards/')[1].split("/")[0]
        c.post(f"/my/cards/{card_id}/lost", data={"csrf": csrf_of(page.text), "confirm": "yes"})
        page = c.get("/my/notices")
        c.post(
            "/my/notices",
            data={
                "csrf": csrf_of(page.text),
                "lost-card-presented": "on",
                "quiet_from": "00:00",
                "quiet_to": "00:00",
            },
        )
        c.post(
            "/my/push/subscribe",
            data={
                "csrf": csrf_of(page.text),
                "endpoint": push.endpoint(tablet),
                "p256dh": tablet.p256dh,
                "auth": b64u(tablet.auth),
            },
        )
    r = client.post(
        f"/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("L-1", card, yesterday_at(10)),
        headers={"X-API-Key": keys.taxi},
    )
    assert r.status_code == 200 and r.json()["riders"][0]["subsidy_yen"] == 0
    run(_scan_and_deliver(db_url, send, datetime.now(UTC) + timedelta(seconds=5)))
    assert [m["title"] for m in tablet.received] == ["紛失届を出したカードが使われました"]


def test_the_stand_in_refuses_a_forged_vapid_token(push: PushService, vapid: Vapid02) -> None:
    """The stand-in's checks can fail: a token signed by another key, or for another
    origin, is refused."""
    other = Vapid02()
    other.generate_keys()
    claims = {
        "sub": "mailto:a@b.example",
        "aud": push.origin,
        "exp": int(datetime.now(UTC).timestamp()) + 600,
    }
    good = vapid.sign(dict(claims))["Authorization"]
    assert push.check_vapid(good) is None
    token = good.split("t=")[1].split(",")[0]
    forged = f"vapid t={token}, k={public_key_b64(other)}"
    assert push.check_vapid(forged) is not None
    wrong_aud = vapid.sign({**claims, "aud": "https://elsewhere.example"})["Authorization"]
    assert "aud" in (push.check_vapid(wrong_aud) or "")
    assert load_vapid(vapid.private_pem().decode()).public_key.public_numbers() == (
        vapid.public_key.public_numbers()
    )


def test_a_late_bus_at_a_saved_stop_is_notified(
    client: TestClient, dev_ca: Any, db_url: str
) -> None:
    from portal import stops

    with device(client) as c:
        sign_in_with_card(c, dev_ca, "push-late")
        rid = resident_id(c)
        page = c.get("/my/notices")
        c.post(
            "/my/notices",
            data={"csrf": csrf_of(page.text), "bus-late": "on", "bus-late-threshold": "10"},
        )
        stop = c.get("/stops/g033_01")
        c.post(
            "/my/stops", data={"csrf": csrf_of(stop.text), "stop_id": "g033_01", "action": "save"}
        )
    # Tomorrow morning the first bus due at 表町 after 06:40 is still at its first stop 12
    # minutes after it should have left: the arrival predictions say it will be late.
    day = (datetime.now(UTC).astimezone(JST) + timedelta(days=1)).date()
    at = datetime(day.year, day.month, day.day, 6, 40, tzinfo=JST)

    async def go() -> tuple[int, int]:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            first = (await stops.next_buses(conn, "g033_01", now=at, limit=1))[0]
            cur = await conn.execute(
                "SELECT st.stop_sequence, st.departure_s, s.stop_lat, s.stop_lon"
                " FROM gtfs_stop_times st JOIN gtfs_stops s ON s.feed_version = st.feed_version"
                " AND s.stop_id = st.stop_id WHERE st.feed_version = gtfs_current_version()"
                " AND st.trip_id = %s ORDER BY st.stop_sequence LIMIT 1",
                [first.trip_id],
            )
            seq, dep_s, lat, lon = await cur.fetchone() or (None, None, None, None)
            start = datetime(day.year, day.month, day.day, tzinfo=JST) + timedelta(seconds=dep_s)
            now = start + timedelta(minutes=12)
            await conn.execute(
                "INSERT INTO vehicle_state (vehicle_id, ts, lat, lon, status, trip_id,"
                " service_date, delay_s, next_stop_sequence) VALUES ('late-1', %s, %s, %s,"
                " 'stopped_at', %s, %s, 720, %s)",
                [now, lat, lon, first.trip_id, day, seq],
            )
            late = (await stops.next_buses(conn, "g033_01", now=now, limit=1))[0]
            assert late.trip_id == first.trip_id and late.delay_min is not None
            assert late.delay_min >= 10 and late.expected_at > late.scheduled_at, late
            n1 = await notices.scan_late_buses(conn, now)
            n2 = await notices.scan_late_buses(conn, now + timedelta(minutes=1))
            return n1, n2

    assert run(go()) == (1, 0)  # once per trip, stop and day
    kinds = [(q[0], q[5]["late"]) for q in queue(db_url, rid)]
    assert len(kinds) == 1 and kinds[0][0] == "bus-late" and kinds[0][1] >= 10
