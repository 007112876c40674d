"""Cards bound to their holder (cap, disputes resolved by staff with an audit trail, a
per-resident link rate limit, operator answers that reveal nothing about other cards) and
the fare bugs of issue 11 (quote hours, replays, 0-yen rides), through the real API app."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from mobility.fares import ledger
from mobility.fares.policy import load_policies
from mobility.fares.rules import JST
from tests.conftest import TEST_PSEUDONYM_KEY
from tests.mobility.fares.conftest import bearer, fresh_rate_limit, sign_in
from tests.mobility.fares.jpki import TestCA
from tests.support.credentials import OPERATOR, Credentials

KEY = TEST_PSEUDONYM_KEY.encode()
STATION = {"lon": 139.072877, "lat": 36.38373}
CHUO = {"lon": 139.074485, "lat": 36.392176}
DAY = date(2026, 9, 14)  # a Monday
_n = iter(range(10**6))


def idm() -> str:
    return f"0EAF{next(_n):06X}BCDEF0"  # no 12-digit run: the My Number screen would refuse it


def at(d: date, h: int, m: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, h, m, tzinfo=JST)


def resident(client: TestClient, ca: TestCA, keys: Credentials, born: str = "1940-02-02") -> Any:
    """A signed-in resident with a birth date: (headers, resident id)."""
    token = sign_in(client, ca.issue())["token"]
    h = bearer(token)
    rid = client.get("/v1/me", headers=h).json()["resident_id"]
    r = client.post(
        f"/v1/admin/residents/{rid}/facts",
        json={"kind": "birth_date", "value": born},
        headers={"X-API-Key": keys.admin},
    )
    assert r.status_code == 201
    return h, rid


def link(client: TestClient, h: dict[str, str], card: str) -> Any:
    return client.post("/v1/me/cards", json={"idm": card}, headers=h)


def ride_body(record: str, when: datetime, cards: list[str], fare: int = 2000) -> dict[str, Any]:
    return {
        "record_id": record,
        "vehicle_id": "taxi-7",
        "pickup_at": when.isoformat(),
        "dropoff_at": (when + timedelta(minutes=12)).isoformat(),
        "pickup": STATION,
        "dropoff": CHUO,
        "meter_fare_yen": fare,
        "rider_cards": cards,
    }


def post_ride(client: TestClient, key: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"/v1/operators/{OPERATOR}/taxi-rides", json=body, headers={"X-API-Key": key}
    )


def test_a_resident_has_at_most_three_active_cards(
    client: TestClient, ca: TestCA, keys: Credentials
) -> None:
    h, _ = resident(client, ca, keys)
    ids = [link(client, h, idm()).json()["card_id"] for _ in range(3)]
    r = link(client, h, idm())
    assert r.status_code == 409 and r.json()["type"].endswith("card-limit")
    assert r.json()["limit"] == 3
    assert client.delete(f"/v1/me/cards/{ids[0]}", headers=h).status_code == 204
    assert link(client, h, idm()).status_code == 201


def test_a_taken_over_card_goes_back_to_its_holder_through_staff(
    client: TestClient, ca: TestCA, keys: Credentials, db_url: str
) -> None:
    victim, victim_id = resident(client, ca, keys)
    mallory, mallory_id = resident(client, ca, keys)
    card = idm()
    taken = link(client, mallory, card).json()
    assert client.post(f"/v1/me/cards/{taken['card_id']}/lost", headers=mallory).status_code == 200
    # the holder gets a clear problem naming the dispute path, and cannot touch the link
    r = link(client, victim, card)
    assert r.status_code == 409 and r.json()["type"].endswith("card-held-elsewhere")
    assert "city office" in r.json()["detail"] and r.json()["dispute"]
    assert client.post(f"/v1/me/cards/{taken['card_id']}/lost", headers=victim).status_code == 404
    assert client.delete(f"/v1/me/cards/{taken['card_id']}", headers=victim).status_code == 404
    # only city staff resolve it, with a reason
    body = {"idm": card, "action": "reassign", "resident_id": victim_id, "reason": "seen"}
    url = "/v1/admin/cards/resolve"
    assert client.post(url, json=body, headers={"X-API-Key": keys.operator}).status_code == 403
    assert client.post(url, json=body, headers=victim).status_code == 403
    r = client.post(url, json=dict(body, reason=""), headers={"X-API-Key": keys.admin})
    assert r.status_code == 422
    r = client.post(url, json=body, headers={"X-API-Key": keys.admin})
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["from_resident"], res["to_resident"]) == (mallory_id, victim_id)
    mine = client.get("/v1/me/cards", headers=victim).json()
    assert [c["card_id"] for c in mine] == [res["new_card_id"]]
    theirs = client.get("/v1/me/cards?include_ended=true", headers=mallory).json()
    assert [(c["card_id"], c["status"]) for c in theirs] == [(taken["card_id"], "reassigned")]
    # the victim's rides on the card are theirs again
    out = post_ride(client, keys.operator, ride_body("D-1", at(DAY, 10), [card])).json()
    assert out["riders"][0]["status"] == "subsidised"
    with psycopg.connect(db_url, autocommit=True) as conn:
        audit = conn.execute(
            "SELECT staff, action, from_resident, to_resident, reason FROM fare_card_audit"
            " WHERE audit_id = %s",
            [res["audit_id"]],
        ).fetchone()
        assert audit is not None and audit[0].startswith("admin:")
        assert audit[1:] == ("reassign", mallory_id, victim_id, "seen")
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("UPDATE fare_card_audit SET reason = 'nothing happened'")
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("DELETE FROM fare_card_audit")
    # unlink frees a card without giving it to anyone; a card nobody holds is a 404
    r = client.post(
        url,
        json={"idm": card, "action": "unlink", "reason": "holder moved away"},
        headers={"X-API-Key": keys.admin},
    )
    assert r.status_code == 200 and r.json()["to_resident"] is None
    r = client.post(
        url,
        json={"idm": card, "action": "unlink", "reason": "again"},
        headers={"X-API-Key": keys.admin},
    )
    assert r.status_code == 404


def test_linking_is_rate_limited_per_resident(
    client: TestClient, ca: TestCA, keys: Credentials
) -> None:
    owner, _ = resident(client, ca, keys)
    prober, _ = resident(client, ca, keys)
    other, _ = resident(client, ca, keys)
    held = idm()
    assert link(client, owner, held).status_code == 201
    fresh_rate_limit(client)
    codes = [link(client, prober, held).status_code for _ in range(11)]
    assert codes == [409] * 10 + [429]
    # the same address, another resident: not limited
    assert link(client, other, idm()).status_code == 201


def test_operator_answers_reveal_nothing_about_other_cards(
    client: TestClient, ca: TestCA, keys: Credentials
) -> None:
    young, _ = resident(client, ca, keys, born="1990-01-01")
    busy, _ = resident(client, ca, keys)
    young_card, busy_card, stranger = idm(), idm(), idm()
    assert link(client, young, young_card).status_code == 201
    assert link(client, busy, busy_card).status_code == 201
    day = DAY + timedelta(days=1)
    for i in range(2):  # the busy rider uses up today's rides
        assert (
            post_ride(
                client, keys.operator, ride_body(f"Q-{i}", at(day, 9 + i), [busy_card])
            ).json()["subsidy_yen"]
            == 1000
        )
    answers = []
    for n, card in enumerate((young_card, busy_card, stranger)):
        out = post_ride(client, keys.operator, ride_body(f"Q-x{n}", at(day, 14), [card])).json()
        rider = out["riders"][0]
        answers.append({k: v for k, v in rider.items() if k != "card"} | {"f": out["flags"]})
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["status"] == "not-subsidised" and answers[0]["detail_reason"] is None
    # outside hours: the same ride-level reason whether or not the card is registered
    late = [
        post_ride(client, keys.operator, ride_body(f"Q-l{n}", at(day, 20), [c])).json()
        for n, c in enumerate((busy_card, stranger))
    ]
    assert [x["riders"][0]["reason"] for x in late] == ["outside-hours", "outside-hours"]


@pytest.mark.anyio
async def test_parallel_taps_on_several_cards_of_one_resident_get_one_discount(
    client: TestClient, ca: TestCA, keys: Credentials, db_url: str
) -> None:
    h, rid = resident(client, ca, keys, born="2008-05-05")  # youth discount
    mine = [idm() for _ in range(3)]
    for c in mine:
        assert link(client, h, c).status_code == 201
    when = at(DAY, 8)
    book = load_policies()

    async def fare(conn: Any, route: str, origin: str, dest: str) -> int:
        return 300

    async def race() -> list[ledger.BusOutcome]:
        conns = [await psycopg.AsyncConnection.connect(db_url, autocommit=True) for _ in mine]
        try:
            return list(
                await asyncio.gather(
                    *(
                        ledger.submit_bus_tap(
                            conn,
                            KEY,
                            ledger.BusTap(
                                OPERATOR,
                                f"T-{n}",
                                "R",
                                "a",
                                "b",
                                when,
                                when + timedelta(minutes=20),
                                card,
                            ),
                            book,
                            fare,
                        )
                        for n, (conn, card) in enumerate(zip(conns, mine, strict=True))
                    )
                )
            )
        finally:
            for c in conns:
                await c.close()

    outs = await race()
    assert sorted(o.discount_yen for o in outs) == [0, 0, 30]
    assert sum("cards-of-one-resident" in o.flags for o in outs) == 2
    with psycopg.connect(db_url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM fare_ledger WHERE resident_id = %s AND source = 'bus'", [rid]
        ).fetchone()
    assert n == (1,)


# ---------------------------------------------------------------- bugs of issue 11


def test_quote_applies_the_hours_rule_like_the_ride(
    client: TestClient, ca: TestCA, keys: Credentials
) -> None:
    h, _ = resident(client, ca, keys)
    card = idm()
    assert link(client, h, card).status_code == 201
    day = DAY + timedelta(days=2)
    for hour, yen in ((19, 0), (6, 0), (10, 1000)):
        q = client.post(
            "/v1/fares/quote",
            json={"kind": "taxi", "meter_fare_yen": 2400, "at": at(day, hour).isoformat()},
            headers=h,
        ).json()
        body = ride_body(f"H-{hour}", at(day, hour), [card], fare=2400)
        ride = post_ride(client, keys.operator, body).json()
        assert q["subsidy_yen"] == yen == ride["subsidy_yen"]
        if yen == 0:
            assert q["reason"] == "outside-hours"


def test_a_replay_returns_exactly_the_stored_decision(
    client: TestClient, ca: TestCA, keys: Credentials
) -> None:
    h, _ = resident(client, ca, keys)
    card, other = idm(), idm()
    assert link(client, h, card).status_code == 201
    body = ride_body("RP-1", at(DAY + timedelta(days=3), 10), [card])
    first = post_ride(client, keys.operator, body).json()
    again = post_ride(client, keys.operator, body).json()
    assert again == dict(first, duplicate=True)
    for changed in ({"rider_cards": [other]}, {"meter_fare_yen": 2500}):
        r = post_ride(client, keys.operator, dict(body, **changed))
        assert r.status_code == 409 and r.json()["type"].endswith("record-conflict")
        assert other[-4:] not in r.text


def test_zero_yen_rides_do_not_use_up_the_day(
    client: TestClient, ca: TestCA, keys: Credentials
) -> None:
    h, _ = resident(client, ca, keys)
    card = idm()
    assert link(client, h, card).status_code == 201
    day = DAY + timedelta(days=4)
    for n, fare in enumerate((0, 1)):  # 50% of 1 yen rounds down to 0
        out = post_ride(client, keys.operator, ride_body(f"Z-{n}", at(day, 8 + n), [card], fare))
        assert out.json()["riders"][0]["status"] == "not-subsidised"
    paid = [
        post_ride(client, keys.operator, ride_body(f"Z-p{n}", at(day, 11 + n), [card])).json()
        for n in range(3)
    ]
    assert [p["subsidy_yen"] for p in paid] == [1000, 1000, 0]  # two rides a day, then none
    staff = post_ride(client, keys.admin, ride_body("Z-0", at(day, 8), [card], 0)).json()
    assert staff["riders"][0]["detail_reason"] == "zero-subsidy"
