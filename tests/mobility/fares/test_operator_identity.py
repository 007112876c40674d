"""One identity per operator (issue 13): the corporate number / GTFS agency id and the
operator id are the same operator for keys, quotes, taps and statements; the OpenAPI
examples use real ids of the bundled feed and succeed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.keys import create_api_key
from mobility.fares.http import QuoteIn
from mobility.gtfs.importer import import_feed
from tests.mobility.fares.conftest import bearer, sign_in
from tests.mobility.fares.jpki import TestCA
from tests.mobility.feeds import REAL_FEED
from tests.support.credentials import Credentials

CORPORATE_NUMBER = "7070001000969"
SENIOR_IDM = "0B0E00000000A078"


@pytest.fixture(scope="module")
def senior(client: TestClient, ca: TestCA, keys: Credentials, db_url: str) -> str:
    """A signed-in 78-year-old with a linked card, the bundled feed imported."""
    import_feed(db_url, REAL_FEED)
    token = str(sign_in(client, ca.issue())["token"])
    rid = client.get("/v1/me", headers=bearer(token)).json()["resident_id"]
    born = (datetime.now(UTC) - timedelta(days=78 * 366)).date().isoformat()
    r = client.post(
        f"/v1/admin/residents/{rid}/facts",
        json={"kind": "birth_date", "value": born},
        headers={"X-API-Key": keys.admin},
    )
    assert r.status_code == 201, r.text
    assert client.post("/v1/me/cards", json={"idm": SENIOR_IDM}, headers=bearer(token)).is_success
    return token


def _bus_example() -> dict[str, Any]:
    extra: Any = QuoteIn.model_config.get("json_schema_extra")
    return next(dict(e) for e in extra["examples"] if e["kind"] == "bus")


def test_quote_is_senior_for_the_operator_id_and_its_corporate_number(
    client: TestClient, senior: str
) -> None:
    body = _bus_example()
    by_id = client.post("/v1/fares/quote", json=body, headers=bearer(senior))
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["reason"] == "senior" and by_id.json()["fare_yen"] == 100
    alias = client.post(
        "/v1/fares/quote", json={**body, "operator_id": CORPORATE_NUMBER}, headers=bearer(senior)
    )
    assert alias.json() == by_id.json()


def test_every_openapi_quote_example_succeeds(client: TestClient, senior: str) -> None:
    """The examples /docs shows (taken from the served OpenAPI document) answer 200."""
    spec = client.get("/openapi.json").json()
    examples = spec["components"]["schemas"]["QuoteIn"]["examples"]
    assert {e["kind"] for e in examples} == {"taxi", "bus"}
    for e in examples:
        r = client.post("/v1/fares/quote", json=e, headers=bearer(senior))
        assert r.status_code == 200, (e, r.text)


def test_a_tap_under_the_corporate_number_gets_the_discount_and_one_statement(
    client: TestClient, senior: str, db_url: str, keys: Credentials
) -> None:
    key = create_api_key(db_url, "operator", CORPORATE_NUMBER)  # an alias key: same operator
    ex = _bus_example()
    on = datetime.now(UTC) - timedelta(hours=1)
    tap = {
        "record_id": "ID-1",
        "route_id": ex["route_id"],
        "origin_stop_id": ex["origin_stop_id"],
        "destination_stop_id": ex["destination_stop_id"],
        "tap_on_at": on.isoformat(),
        "tap_off_at": (on + timedelta(minutes=12)).isoformat(),
        "card": SENIOR_IDM,
    }
    r = client.post(
        f"/v1/operators/{CORPORATE_NUMBER}/bus-taps", json=tap, headers={"X-API-Key": key}
    )
    assert r.status_code == 200, r.text
    assert r.json()["discount_yen"] == 10 and r.json()["pay_yen"] == 90
    month = on.astimezone(UTC).strftime("%Y-%m")
    jst_month = (on + timedelta(hours=9)).strftime("%Y-%m")
    for path_id in ("gunmachuo", CORPORATE_NUMBER):
        for k in (key, keys.operator):  # keys made for the alias and for the id
            st = client.get(
                f"/v1/operators/{path_id}/statements/{jst_month}?format=json",
                headers={"X-API-Key": k},
            )
            assert st.status_code == 200, st.text
            doc = st.json()
            assert doc["operator_id"] == "gunmachuo"
            assert any(
                line["record_id"] == "ID-1" and line["kind"] == "bus_discount"
                for line in doc["lines"]
            ), month


def test_the_bus_tap_example_ids_are_a_ride_of_the_bundled_feed(
    client: TestClient, senior: str, keys: Credentials
) -> None:
    """The BusTapIn example's route and stops (from /openapi.json) price a real ride; the
    example's times are replaced by now (a fixed date would leave the submission window)."""
    props = client.get("/openapi.json").json()["components"]["schemas"]["BusTapIn"]["properties"]
    on = datetime.now(UTC) - timedelta(minutes=30)
    tap = {
        "record_id": props["record_id"]["examples"][0],
        "route_id": props["route_id"]["examples"][0],
        "origin_stop_id": props["origin_stop_id"]["examples"][0],
        "destination_stop_id": props["destination_stop_id"]["examples"][0],
        "tap_on_at": on.isoformat(),
        "tap_off_at": (on + timedelta(minutes=10)).isoformat(),
        "card": SENIOR_IDM,
    }
    r = client.post(
        "/v1/operators/gunmachuo/bus-taps", json=tap, headers={"X-API-Key": keys.operator}
    )
    assert r.status_code == 200, r.text
    assert r.json()["fare_yen"] == 100 and r.json()["discount_yen"] == 10
