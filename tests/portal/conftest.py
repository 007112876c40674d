"""Fixtures for the portal tests: a migrated database with the bundled timetable, the
development card authority as the trust anchor, the API app and an operator key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import create_api_key
from core.embedded import EmbeddedMosquitto
from core.roles import role_url
from core.settings import Settings
from mobility.fares import devcard
from mobility.fares.rules import JST
from mobility.gtfs.importer import import_feed
from portal.push import new_vapid_key
from tests.conftest import make_settings
from tests.mobility.feeds import REAL_FEED

OPERATOR = "gunmachuo"
TAXI = "demo-taxi"
STATION = {"lon": 139.072877, "lat": 36.38373}  # 前橋駅
CHUO = {"lon": 139.074485, "lat": 36.392176}  # 中央前橋駅前


@dataclass
class Keys:
    operator: str
    taxi: str
    admin: str


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("state")
    devcard.init_ca(devcard.DevCA(folder / "dev-ca"))
    return folder


@pytest.fixture(scope="module")
def dev_ca(state_dir: Path) -> devcard.DevCA:
    return devcard.DevCA(state_dir / "dev-ca")


@pytest.fixture(scope="module")
def portal_settings(
    db_url: str, mqtt_broker: EmbeddedMosquitto, dev_ca: devcard.DevCA, state_dir: Path
) -> Settings:
    """Development mode with the test card authority as trust anchor; logs in as
    mebuku_api, as deployed (so the grants are tested too)."""
    import_feed(db_url, REAL_FEED)
    return make_settings(
        role_url(db_url, "api"),
        mqtt_broker.url,
        environment="development",
        state_dir=state_dir,
        jpki_trust_anchors=dev_ca.cert_path,
        jpki_crl=dev_ca.crl_path,
        portal_vapid_private_key=new_vapid_key(),
    )


@pytest.fixture(scope="module")
def keys(db_url: str) -> Keys:
    return Keys(
        operator=create_api_key(db_url, "operator", OPERATOR),
        taxi=create_api_key(db_url, "operator", TAXI),
        admin=create_api_key(db_url, "admin"),
    )


@pytest.fixture(scope="module")
def client(portal_settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        create_app(portal_settings), raise_server_exceptions=False, base_url="http://testserver"
    ) as c:
        yield c


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def card_answer(ca: devcard.DevCA, name: str, nonce: str) -> tuple[str, str]:
    """What a card app returns: the card's certificate and its signature over the nonce."""
    devcard.issue_card(ca, name)
    return devcard.card_certificate_pem(ca, name), devcard.sign_nonce(ca, name, nonce)


def fresh_limits(client: TestClient) -> None:
    client.app.state.rate_buckets = {}  # type: ignore[attr-defined]


def resident_id(client: TestClient) -> int:
    """The signed-in resident's number, as the home page shows it."""
    m = re.search(r'id="resident-number">(\d+)<', client.get("/my/").text)
    assert m
    return int(m.group(1))


def ride_body(record: str, card: str, when: datetime, fare: int = 1800) -> dict[str, object]:
    return {
        "record_id": record,
        "vehicle_id": "taxi-1",
        "pickup_at": when.isoformat(),
        "dropoff_at": (when + timedelta(minutes=15)).isoformat(),
        "pickup": STATION,
        "dropoff": CHUO,
        "meter_fare_yen": fare,
        "rider_cards": [card],
    }


def yesterday_at(hour: int) -> datetime:
    """A time yesterday (Japan) inside MyTaku hours and the submission window."""
    d = datetime.now(UTC).astimezone(JST).date() - timedelta(days=1)
    return datetime(d.year, d.month, d.day, hour, tzinfo=JST)
