"""Bus IC taps: the fare from the imported GTFS-JP zones, the citizen discount by age."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from mobility.gtfs.fares import zone_fare
from mobility.gtfs.importer import import_feed
from tests.mobility.fares.conftest import bearer, sign_in
from tests.mobility.fares.jpki import TestCA
from tests.mobility.feeds import REAL_FEED
from tests.support.credentials import OPERATOR, Credentials

ROUTE, ORIGIN, DEST = "伊勢崎　女子大線_A", "g063_01", "g133_01"
YOUTH, ADULT = "0B0E000000001111", "0B0E000000002222"
RIDE = datetime.fromisoformat("2026-11-20T08:15:00+09:00")


@pytest.fixture(scope="module")
def feed(db_url: str) -> int:
    import_feed(db_url, REAL_FEED)
    with psycopg.connect(db_url) as conn:
        fare = zone_fare(conn, ROUTE, ORIGIN, DEST)
    assert fare is not None
    return fare


@pytest.fixture(scope="module")
def riders(client: TestClient, ca: TestCA, keys: Credentials) -> dict[str, str]:
    out = {}
    for name, born, idm in (("youth", "2009-12-01", YOUTH), ("adult", "1986-04-01", ADULT)):
        token = str(sign_in(client, ca.issue())["token"])
        rid = client.get("/v1/me", headers=bearer(token)).json()["resident_id"]
        client.post(
            f"/v1/admin/residents/{rid}/facts",
            json={"kind": "birth_date", "value": born},
            headers={"X-API-Key": keys.admin},
        )
        assert (
            client.post("/v1/me/cards", json={"idm": idm}, headers=bearer(token)).status_code == 201
        )
        out[name] = token
    return out


def tap(record: str, idm: str, dest: str = DEST) -> dict[str, object]:
    return {
        "record_id": record,
        "route_id": ROUTE,
        "origin_stop_id": ORIGIN,
        "destination_stop_id": dest,
        "tap_on_at": RIDE.isoformat(),
        "tap_off_at": (RIDE + timedelta(minutes=25)).isoformat(),
        "card": idm,
    }


def test_youth_discount_from_gtfs_fare(
    client: TestClient, keys: Credentials, feed: int, riders: dict[str, str], db_url: str
) -> None:
    h = {"X-API-Key": keys.operator}
    url = f"/v1/operators/{OPERATOR}/bus-taps"
    y = client.post(url, json=tap("B-1", YOUTH), headers=h).json()
    assert y["fare_yen"] == feed and y["status"] == "subsidised"
    assert y["discount"] is None  # which discount (the holder's age group) is for staff only
    staff = client.post(url, json=tap("B-1", YOUTH), headers={"X-API-Key": keys.admin}).json()
    assert staff["discount"] == "youth" and staff["duplicate"]
    assert y["discount_yen"] == feed * 10 // 100 and y["pay_yen"] == feed - y["discount_yen"]
    assert client.post(url, json=tap("B-1", YOUTH), headers=h).json()["duplicate"] is True
    a = client.post(url, json=tap("B-2", ADULT), headers=h).json()
    assert a["discount_yen"] == 0 and a["fare_yen"] == feed and a["status"] == "not-subsidised"
    stranger = client.post(url, json=tap("B-3", "0B0E000000003333"), headers=h).json()
    assert stranger["discount_yen"] == 0
    r = client.post(url, json=tap("B-4", YOUTH, dest="no-such-stop"), headers=h)
    assert r.status_code == 422 and r.json()["type"].endswith("fare-not-found")
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT kind, amount_yen, policy_version FROM fare_ledger WHERE source = 'bus'"
        ).fetchall()
    assert rows == [("bus_discount", feed * 10 // 100, "bus-2024-12")]


def test_bus_quote(client: TestClient, feed: int, riders: dict[str, str]) -> None:
    body = {
        "kind": "bus",
        "operator_id": OPERATOR,
        "route_id": ROUTE,
        "origin_stop_id": ORIGIN,
        "destination_stop_id": DEST,
        "at": RIDE.isoformat(),
    }
    q = client.post("/v1/fares/quote", json=body, headers=bearer(riders["youth"])).json()
    assert q["fare_yen"] == feed and q["subsidy_yen"] == feed // 10 and q["reason"] == "youth"
    # the same rider before the youth discount started (2024-12-03) gets none
    early = dict(body, at="2024-11-01T09:00:00+09:00")
    q = client.post("/v1/fares/quote", json=early, headers=bearer(riders["youth"])).json()
    assert q["subsidy_yen"] == 0
