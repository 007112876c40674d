"""Fixtures for the fares tests: a test JPKI, the API app and credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.embedded import EmbeddedMosquitto
from core.roles import role_url
from core.settings import Settings
from tests.conftest import make_settings
from tests.mobility.fares.jpki import Card, TestCA
from tests.support.credentials import Credentials, api_keys


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def jpki_files(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ca.write(tmp_path_factory.mktemp("jpki"))


# The rule tests submit rides on fixed dates (fiscal years, policy versions), so their app
# accepts records up to 10 years old; the submission window itself is tested with the
# default (14 days) by ``strict_client`` in test_money_settled.py.
RULES_WINDOW_DAYS = 3660


@pytest.fixture(scope="module")
def fares_settings(
    db_url: str, mqtt_broker: EmbeddedMosquitto, jpki_files: tuple[Path, Path]
) -> Settings:
    """The API under test logs in as mebuku_api, as deployed (core/roles/grants.toml)."""
    anchors, crl = jpki_files
    return make_settings(
        role_url(db_url, "api"),
        mqtt_broker.url,
        jpki_trust_anchors=anchors,
        jpki_crl=crl,
        fares_submission_window_days=RULES_WINDOW_DAYS,
    )


@pytest.fixture(scope="module")
def keys(db_url: str) -> Credentials:
    return api_keys(db_url)


@pytest.fixture(scope="module")
def client(fares_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fares_settings), raise_server_exceptions=False) as c:
        yield c


def fresh_rate_limit(client: TestClient) -> None:
    """The auth rate limit (10/min per address) is proven in its own test; reset it."""
    client.app.state.rate_buckets = {}  # type: ignore[attr-defined]


def sign_in(client: TestClient, card: Card, *, der: bool = False) -> dict[str, object]:
    fresh_rate_limit(client)
    nonce = client.post("/v1/auth/challenge").json()["nonce"]
    r = client.post(
        "/v1/auth/session",
        json={
            "nonce": nonce,
            "certificate": card.der_b64 if der else card.pem,
            "signature": card.sign(nonce),
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
