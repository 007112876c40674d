"""Residents, cards, eligibility facts, taxi ride submissions, reversals and statements
through the real API app on a real PostgreSQL; ends with the privacy scan of the database
and every log line written during the module."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any, TypedDict, Unpack

import psycopg
import pytest
from fastapi.testclient import TestClient

from mobility.fares.mynumber import check_digit, is_valid_my_number
from mobility.fares.rules import JST, fiscal_year
from tests.mobility.fares.conftest import bearer, sign_in
from tests.mobility.fares.jpki import TestCA
from tests.support.credentials import OPERATOR, Credentials
from tests.support.privacy import stored_values, without_random_ids

STATION = {"lon": 139.072877, "lat": 36.38373}  # 前橋駅
CHUO = {"lon": 139.074485, "lat": 36.392176}  # 中央前橋駅前
TOKYO = {"lon": 139.7671, "lat": 35.6812}
CARD_A, CARD_B, CARD_C = "012E4CD8A1B20A1F", "012E4CD8A1B20B2E", "012E4CD8A1B20C3D"
DAY = date(2026, 10, 5)  # a Monday in fiscal year 2026


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def logs() -> Iterator[_Collect]:
    h = _Collect()
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(h)
    yield h
    root.removeHandler(h)
    root.setLevel(old)


@pytest.fixture(scope="module")
def people(
    client: TestClient, ca: TestCA, keys: Credentials, logs: _Collect
) -> dict[str, dict[str, str]]:
    """A (born 1945: eligible), B (born 1990: not), C (born 1948: eligible), with cards."""
    out = {}
    for name, born, card in (("A", 1945, CARD_A), ("B", 1990, CARD_B), ("C", 1948, CARD_C)):
        token = str(sign_in(client, ca.issue())["token"])
        rid = client.get("/v1/me", headers=bearer(token)).json()["resident_id"]
        r = client.post(
            f"/v1/admin/residents/{rid}/facts",
            json={"kind": "birth_date", "value": f"{born}-07-01", "note": "seen at counter"},
            headers={"X-API-Key": keys.admin},
        )
        assert r.status_code == 201, r.text
        r = client.post("/v1/me/cards", json={"idm": card}, headers=bearer(token))
        assert r.status_code == 201, r.text
        out[name] = {"token": token, "rid": str(rid)}
    return out


class Trip(TypedDict, total=False):
    """Where and how long a test ride goes (default: 15 minutes from the station to Chuo)."""

    minutes: int
    pickup: dict[str, float]
    dropoff: dict[str, float]
    vehicle: str


def ride(
    record: str, when: datetime, cards: list[str], fare: int = 1500, **trip: Unpack[Trip]
) -> dict[str, object]:
    return {
        "record_id": record,
        "vehicle_id": trip.get("vehicle", "taxi-1"),
        "pickup_at": when.isoformat(),
        "dropoff_at": (when + timedelta(minutes=trip.get("minutes", 15))).isoformat(),
        "pickup": trip.get("pickup", STATION),
        "dropoff": trip.get("dropoff", CHUO),
        "meter_fare_yen": fare,
        "rider_cards": cards,
    }


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST)


def submit(client: TestClient, keys: Credentials, body: dict[str, object]) -> dict[str, Any]:
    r = client.post(
        f"/v1/operators/{OPERATOR}/taxi-rides", json=body, headers={"X-API-Key": keys.operator}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_cards_are_masked_unique_and_can_be_lost(
    client: TestClient, people: dict[str, dict[str, str]], db_url: str
) -> None:
    a, b = bearer(people["A"]["token"]), bearer(people["B"]["token"])
    listed = client.get("/v1/me/cards", headers=a).json()
    assert [c["card"][-4:] for c in listed] == ["0A1F"] and CARD_A not in str(listed)
    r = client.post("/v1/me/cards", json={"idm": CARD_A}, headers=b)
    assert r.status_code == 409 and r.json()["type"].endswith("card-held-elsewhere")
    assert "city office" in r.json()["detail"]  # the dispute path
    r = client.post("/v1/me/cards", json={"idm": CARD_A}, headers=a)
    assert r.status_code == 409 and r.json()["type"].endswith("card-already-linked")
    r = client.post("/v1/me/cards", json={"idm": "not-hex"}, headers=b)
    assert r.status_code == 422
    spare = client.post("/v1/me/cards", json={"idm": "01:2E:4C:D8:00:00:99:99"}, headers=b)
    assert spare.status_code == 201 and spare.json()["card"].endswith("9999")
    lost = client.post(f"/v1/me/cards/{spare.json()['card_id']}/lost", headers=b)
    assert lost.status_code == 200 and lost.json()["status"] == "lost"
    assert (
        client.post("/v1/me/cards", json={"idm": "012E4CD800009999"}, headers=a).status_code == 409
    )
    extra = client.post("/v1/me/cards", json={"idm": "012E4CD800008888"}, headers=a).json()
    assert client.delete(f"/v1/me/cards/{extra['card_id']}", headers=b).status_code == 404
    assert client.delete(f"/v1/me/cards/{extra['card_id']}", headers=a).status_code == 204
    assert (
        client.post("/v1/me/cards", json={"idm": "012E4CD800008888"}, headers=b).status_code == 201
    )
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT idm_hash, last4 FROM fare_ic_cards").fetchall()
    assert all(len(h) == 32 and len(l4) == 4 for h, l4 in stored)


def test_taxi_subsidies_limits_and_idempotency(
    client: TestClient, keys: Credentials, people: dict[str, dict[str, str]], db_url: str
) -> None:
    r1 = submit(client, keys, ride("R-1", at(DAY, 9), [CARD_A], fare=1500))
    assert r1["subsidy_yen"] == 750 and r1["policy_version"] == "mytaku-2022-04"
    assert r1["riders"][0]["card"].endswith("0A1F") and not r1["duplicate"]
    again = submit(client, keys, ride("R-1", at(DAY, 9), [CARD_A], fare=1500))
    assert again["duplicate"] and again["subsidy_yen"] == 750
    r2 = submit(client, keys, ride("R-2", at(DAY, 11), [CARD_A], fare=4000))
    assert r2["subsidy_yen"] == 1000
    r3 = submit(client, keys, ride("R-3", at(DAY, 14), [CARD_A], fare=1500))
    assert r3["subsidy_yen"] == 0 and r3["riders"][0]["reason"] == "not-subsidised"
    # shared: A is at today's limit, so only C is subsidised, and as riding alone
    shared = submit(
        client,
        keys,
        ride("R-4", at(DAY, 16), [CARD_A, CARD_C, CARD_B, "FFFF000011112222"], fare=3000),
    )
    # the operator learns only subsidised or not: nothing about the other cards' holders
    assert [x["reason"] for x in shared["riders"]] == [
        "not-subsidised",
        "subsidised",
        "not-subsidised",
        "not-subsidised",
    ]
    assert [x["status"] for x in shared["riders"]] == [
        "not-subsidised",
        "subsidised",
        "not-subsidised",
        "not-subsidised",
    ]
    assert all(x["detail_reason"] is None for x in shared["riders"])
    assert [x["subsidy_yen"] for x in shared["riders"]] == [0, 1000, 0, 0]
    with psycopg.connect(db_url) as conn:  # the detailed reasons stay with the city
        detail = conn.execute(
            "SELECT reason FROM fare_taxi_riders WHERE record_id = 'R-4' ORDER BY position"
        ).fetchall()
    assert [d[0] for d in detail] == [
        "daily-limit",
        "subsidised",
        "not-eligible",
        "card-not-registered",
    ]
    next_day = DAY + timedelta(days=1)
    both = submit(client, keys, ride("R-5", at(next_day, 10), [CARD_A, CARD_C], fare=3000))
    assert [x["subsidy_yen"] for x in both["riders"]] == [500, 500]
    with psycopg.connect(db_url) as conn:
        n = conn.execute("SELECT count(*) FROM fare_ledger WHERE record_id = 'R-1'").fetchone()
    assert n == (1,)


def test_flags(client: TestClient, keys: Credentials, people: dict[str, dict[str, str]]) -> None:
    """Ride flags; flags learnt from other records (another taxi) are for city staff only."""
    day = DAY + timedelta(days=7)
    late = submit(client, keys, ride("F-1", at(day, 19, 30), [CARD_C], fare=1500))
    assert "outside-hours" in late["flags"] and late["riders"][0]["reason"] == "outside-hours"
    far = submit(
        client, keys, ride("F-2", at(day, 10), [CARD_C], 5000, pickup=TOKYO, dropoff=TOKYO)
    )
    assert "outside-city" in far["flags"] and far["subsidy_yen"] == 0
    assert "fare-far-from-distance" in far["flags"]  # 5,000 yen for 0 m
    one = submit(client, keys, ride("F-3", at(day, 12), [CARD_C], minutes=30, fare=800))
    assert one["flags"] == []
    two = submit(client, keys, ride("F-4", at(day, 12, 10), [CARD_C], vehicle="taxi-9", fare=800))
    assert "card-in-two-taxis" not in two["flags"]  # would tell of another operator's ride
    staff = client.post(
        f"/v1/operators/{OPERATOR}/taxi-rides",
        json=ride("F-4", at(day, 12, 10), [CARD_C], vehicle="taxi-9", fare=800),
        headers={"X-API-Key": keys.admin},
    ).json()
    assert "card-in-two-taxis" in staff["flags"] and staff["duplicate"]


def test_operator_scope(
    client: TestClient, keys: Credentials, people: dict[str, dict[str, str]]
) -> None:
    body = ride("S-1", at(DAY, 10), [CARD_B])
    r = client.post(
        f"/v1/operators/{OPERATOR}/taxi-rides",
        json=body,
        headers={"X-API-Key": keys.other_operator},
    )
    assert r.status_code == 404
    r = client.post(
        f"/v1/operators/{OPERATOR}/taxi-rides", json=body, headers=bearer(people["A"]["token"])
    )
    assert r.status_code == 403
    fake = "27182818284"
    fake += str(check_digit(fake))  # synthetic; must be refused and never logged or stored
    for field in ("record_id", "vehicle_id"):
        r = client.post(
            f"/v1/operators/{OPERATOR}/taxi-rides",
            json=dict(body, **{field: fake}),
            headers={"X-API-Key": keys.operator},
        )
        assert r.status_code == 422 and fake not in r.text
    bad = dict(body, dropoff_at=at(DAY, 9).isoformat())
    r = client.post(
        f"/v1/operators/{OPERATOR}/taxi-rides", json=bad, headers={"X-API-Key": keys.operator}
    )
    assert r.status_code == 422


def test_me_subsidy_rides_and_quote(
    client: TestClient, keys: Credentials, people: dict[str, dict[str, str]]
) -> None:
    now = datetime.now(JST)
    if now.hour < 8:
        pytest.skip("needs a subsidised ride earlier today (08:00 JST) that is not in the future")
    today = now.date()
    c = bearer(people["C"]["token"])
    before = client.get("/v1/me/subsidy", headers=c).json()
    submit(client, keys, ride("M-1", at(today, 8), [CARD_C], fare=1200))
    after = client.get("/v1/me/subsidy", headers=c).json()
    assert after["fiscal_year"] == fiscal_year(today)
    assert after["rides_today"] == before["rides_today"] + 1
    assert after["rides_left_today"] == 1
    assert after["rides_left_this_year"] == 70 - after["rides_this_year"]
    assert after["subsidy_yen_this_year"] == before["subsidy_yen_this_year"] + 600
    assert after["eligible_as"] == "age-75+"
    rides = client.get("/v1/me/rides", headers=c).json()
    assert rides[0]["amount_yen"] == 600 and rides[0]["kind"] == "mytaku"
    # a resident sees only their own ledger entries
    a_rides = client.get("/v1/me/rides", headers=bearer(people["A"]["token"])).json()
    b_rides = client.get("/v1/me/rides", headers=bearer(people["B"]["token"])).json()
    assert b_rides == [] and a_rides
    assert not {r["entry_id"] for r in rides} & {r["entry_id"] for r in a_rides}
    b = client.get("/v1/me/subsidy", headers=bearer(people["B"]["token"])).json()
    assert b["eligible_as"] is None and b["rides_left_today"] == 0
    ten = at(today, 10).isoformat()  # within MyTaku hours
    q = client.post(
        "/v1/fares/quote", json={"kind": "taxi", "meter_fare_yen": 2400, "at": ten}, headers=c
    ).json()
    assert q["subsidy_yen"] == 1000 and q["pay_yen"] == 1400
    q2 = client.post(
        "/v1/fares/quote",
        json={"kind": "taxi", "meter_fare_yen": 2400, "registrants": 3, "at": ten},
        headers=c,
    ).json()
    assert q2["subsidy_yen"] == 500 and q2["pay_yen"] == 300
    qb = client.post(
        "/v1/fares/quote",
        json={"kind": "taxi", "meter_fare_yen": 2400, "at": ten},
        headers=bearer(people["B"]["token"]),
    ).json()
    assert qb["subsidy_yen"] == 0 and qb["reason"] == "not-eligible"


def test_reversal_restores_the_ride_and_is_append_only(
    client: TestClient, keys: Credentials, people: dict[str, dict[str, str]], db_url: str
) -> None:
    day = DAY + timedelta(days=20)
    submit(client, keys, ride("V-1", at(day, 9), [CARD_A], fare=1000))
    submit(client, keys, ride("V-2", at(day, 10), [CARD_A], fare=1000))
    assert submit(client, keys, ride("V-3", at(day, 11), [CARD_A]))["subsidy_yen"] == 0
    url = f"/v1/operators/{OPERATOR}/taxi/V-2/reversal"
    r = client.post(url, json={"note": "meter keyed wrongly"}, headers={"X-API-Key": keys.operator})
    assert r.status_code == 200 and len(r.json()["reversal_entry_ids"]) == 1
    r = client.post(url, json={"note": "twice"}, headers={"X-API-Key": keys.operator})
    assert r.json()["reversal_entry_ids"] == []  # nothing left to reverse
    assert submit(client, keys, ride("V-4", at(day, 12), [CARD_A]))["subsidy_yen"] == 750
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("UPDATE fare_ledger SET amount_yen = 0")
        with pytest.raises(psycopg.errors.RestrictViolation):
            conn.execute("DELETE FROM fare_eligibility_facts")


def test_statement_reconciles_with_the_ledger(
    client: TestClient, keys: Credentials, people: dict[str, dict[str, str]], db_url: str
) -> None:
    month = f"{DAY:%Y-%m}"
    h = {"X-API-Key": keys.operator}
    js = client.get(f"/v1/operators/{OPERATOR}/statements/{month}", headers=h).json()
    raw = client.get(f"/v1/operators/{OPERATOR}/statements/{month}?format=csv", headers=h)
    assert raw.headers["content-type"].startswith("text/csv")
    body = raw.content
    assert (
        body.startswith(b"\xef\xbb\xbf")
        and b"\r\n" in body
        and b"\n" not in body.replace(b"\r\n", b"")
    )
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[1][0] == "明細番号"
    total_row = next(r for r in rows if r[0] == "請求額 合計(円)")
    with psycopg.connect(db_url) as conn:
        ledger = conn.execute(
            "SELECT count(*), sum(amount_yen) FROM fare_ledger WHERE operator_id = %s"
            " AND period = %s",
            [OPERATOR, DAY.replace(day=1)],
        ).fetchone()
    assert ledger is not None
    assert (js["totals"]["lines"], js["totals"]["total_yen"]) == (ledger[0], ledger[1])
    assert int(total_row[1]) == ledger[1]
    assert sum(int(r[6]) for r in rows[2 : 2 + ledger[0]]) == ledger[1]
    # the reversal is settled in the month it was posted, not in the ride's month
    assert js["totals"]["reversal_yen"] == 0
    now_month = f"{datetime.now(JST):%Y-%m}"
    cur = client.get(f"/v1/operators/{OPERATOR}/statements/{now_month}", headers=h).json()
    assert cur["totals"]["reversal_yen"] == -500
    other = client.get(
        f"/v1/operators/{OPERATOR}/statements/{month}", headers={"X-API-Key": keys.other_operator}
    )
    assert other.status_code == 404
    bad = client.get(f"/v1/operators/{OPERATOR}/statements/2026-13", headers=h)
    assert bad.status_code == 422


TWELVE = re.compile(rb"(?<![0-9])[0-9]{12}(?![0-9])")


def scan_database(conn: psycopg.Connection) -> list[str]:
    """Columns (text-like and bytea, every table) holding a valid-looking My Number."""
    found: list[str] = []
    for where, value in stored_values(conn):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        for m in TWELVE.finditer(without_random_ids(text).encode("latin-1", "replace")):
            if is_valid_my_number(m.group().decode()):
                found.append(where)
    return found


def test_privacy_scan_of_database_and_logs(
    client: TestClient, db_url: str, logs: _Collect, people: dict[str, dict[str, str]]
) -> None:
    """No 12-digit number with a valid My Number check digit anywhere after the run."""
    canary = "31415926535"
    canary += str(check_digit(canary))  # synthetic, proves the scan can find one
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE privacy_canary (note text, blob bytea)")
        conn.execute("INSERT INTO privacy_canary VALUES (%s, %s)", [f"x{canary}", canary.encode()])
        assert sorted(scan_database(conn)) == ["privacy_canary.blob", "privacy_canary.note"]
        conn.execute("DROP TABLE privacy_canary")
        found = scan_database(conn)
    assert logs.lines, "the module wrote no logs to scan"
    for line in logs.lines:
        for m in TWELVE.finditer(without_random_ids(line).encode()):
            if is_valid_my_number(m.group().decode()):
                found.append("log: " + line[:80])
    assert found == []
