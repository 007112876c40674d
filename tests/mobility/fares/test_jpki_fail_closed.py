"""Card sign-in fails closed (issue 11 item 5) and the sign-in bugs it found, through the
real API app on a real PostgreSQL with a test CA made here with ``cryptography``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.app import create_app
from core.embedded import EmbeddedMosquitto
from core.settings import Settings
from mobility.fares.identity import TrustStore, certificate_hash, check_store
from tests.conftest import TEST_PSEUDONYM_KEY, make_settings
from tests.mobility.fares.conftest import bearer, fresh_rate_limit
from tests.mobility.fares.jpki import Card, TestCA, _key
from tests.support.credentials import Credentials


def write_crl(ca: TestCA, path: Path, next_update: timedelta = timedelta(days=1)) -> None:
    """The CA's CRL with its revoked serials, ``next_update`` from now (negative: stale)."""
    now = datetime.now(UTC)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.name)
        .last_update(now - timedelta(days=3))
        .next_update(now + next_update)
    )
    for serial in ca.revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - timedelta(minutes=1))
            .build()
        )
    crl = b.sign(ca.key, hashes.SHA256())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    tmp.replace(path)  # atomic, as an operator's deploy would do


def card_with_key_usage(ca: TestCA, key_usage: x509.KeyUsage | None) -> Card:
    key = _key()
    now = datetime.now(UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if key_usage is not None:
        b = b.add_extension(key_usage, critical=True)
    return Card(key, b.sign(ca.key, hashes.SHA256()))


def _ku(digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, not digital_signature, *([False] * 7))


class Jpki:
    def __init__(self, folder: Path) -> None:
        self.ca = TestCA()
        self.anchors, self.crl = self.ca.write(folder)

    def republish(self, next_update: timedelta = timedelta(days=1)) -> None:
        write_crl(self.ca, self.crl, next_update)


@pytest.fixture
def jpki(tmp_path: Path) -> Jpki:
    return Jpki(tmp_path)


def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def strict(db_url: str, mqtt_broker: EmbeddedMosquitto, jpki: Jpki) -> Iterator[TestClient]:
    yield from app_client(
        make_settings(db_url, mqtt_broker.url, jpki_trust_anchors=jpki.anchors, jpki_crl=jpki.crl)
    )


def attempt(client: TestClient, card: Card) -> object:
    fresh_rate_limit(client)
    r = client.post("/v1/auth/challenge")
    if r.status_code != 200:
        return r
    nonce = r.json()["nonce"]
    return client.post(
        "/v1/auth/session",
        json={"nonce": nonce, "certificate": card.pem, "signature": card.sign(nonce)},
    )


def assert_unavailable(r: object, reason: str) -> None:
    assert r.status_code == 503, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    assert body["type"].endswith("identity-unavailable") and body["reason"] == reason


def test_challenge_without_trust_anchors_is_503(
    db_url: str, mqtt_broker: EmbeddedMosquitto
) -> None:
    for c in app_client(make_settings(db_url, mqtt_broker.url)):
        fresh_rate_limit(c)
        assert_unavailable(c.post("/v1/auth/challenge"), "not-configured")


def test_a_crl_is_required_unless_the_development_switch_is_on(
    db_url: str, mqtt_broker: EmbeddedMosquitto, jpki: Jpki
) -> None:
    card = jpki.ca.issue()
    for c in app_client(make_settings(db_url, mqtt_broker.url, jpki_trust_anchors=jpki.anchors)):
        assert_unavailable(attempt(c, card), "crl-missing")
    with pytest.raises(ValidationError, match="MEBUKU_ENVIRONMENT=development"):
        make_settings(db_url, jpki_trust_anchors=jpki.anchors, jpki_allow_no_crl=True)
    dev = make_settings(
        db_url,
        mqtt_broker.url,
        jpki_trust_anchors=jpki.anchors,
        jpki_allow_no_crl=True,
        environment="development",
    )
    for c in app_client(dev):
        assert attempt(c, card).status_code == 200  # type: ignore[attr-defined]


def test_a_stale_crl_stops_sign_in_until_a_fresh_one_is_loaded(
    strict: TestClient, jpki: Jpki
) -> None:
    card = jpki.ca.issue()
    assert attempt(strict, card).status_code == 200  # type: ignore[attr-defined]
    jpki.republish(next_update=timedelta(minutes=-1))
    assert_unavailable(attempt(strict, card), "crl-stale")
    fresh_rate_limit(strict)
    r = strict.post("/v1/auth/challenge")  # no nonce is handed out either
    assert_unavailable(r, "crl-stale")
    assert "nextUpdate" in r.json()["detail"]
    jpki.republish()
    assert attempt(strict, card).status_code == 200  # type: ignore[attr-defined]


def test_a_crl_with_a_bad_signature_is_unavailable_not_ignored(
    strict: TestClient, jpki: Jpki
) -> None:
    impostor = TestCA(jpki.ca.cert.subject.rfc4514_string().removeprefix("CN="))
    write_crl(impostor, jpki.crl)  # same issuer name, signed by another key
    assert_unavailable(attempt(strict, jpki.ca.issue()), "crl-invalid")


def test_certificate_must_allow_digital_signature(strict: TestClient, jpki: Jpki) -> None:
    r = attempt(strict, card_with_key_usage(jpki.ca, None))
    assert r.status_code == 401 and "KeyUsage" in r.json()["detail"]  # type: ignore[attr-defined]
    r = attempt(strict, card_with_key_usage(jpki.ca, _ku(False)))
    assert r.status_code == 401 and r.json()["type"].endswith("certificate-bad-certificate")  # type: ignore[attr-defined]
    assert attempt(strict, card_with_key_usage(jpki.ca, _ku(True))).status_code == 200  # type: ignore[attr-defined]


def test_logout_ends_the_session_at_once(strict: TestClient, jpki: Jpki) -> None:
    r = attempt(strict, jpki.ca.issue())
    token = r.json()["token"]  # type: ignore[attr-defined]
    other = attempt(strict, jpki.ca.issue()).json()["token"]  # type: ignore[attr-defined]
    assert strict.get("/v1/me", headers=bearer(token)).status_code == 200
    assert strict.post("/v1/auth/logout", headers=bearer(token)).status_code == 204
    assert strict.get("/v1/me", headers=bearer(token)).status_code == 401
    assert strict.post("/v1/auth/logout", headers=bearer(token)).status_code == 401
    assert strict.get("/v1/me", headers=bearer(other)).status_code == 200  # only that one


def _sessions(db_url: str, card: Card) -> tuple[int, int]:
    """(revoked, all) sessions opened with this card."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL), count(*)"
            " FROM auth_sessions WHERE cert_hash = %s",
            [certificate_hash(TEST_PSEUDONYM_KEY.encode(), card.cert)],
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_sessions_of_a_newly_revoked_certificate_end_at_once(
    strict: TestClient, jpki: Jpki, db_url: str
) -> None:
    card, bystander = jpki.ca.issue(), jpki.ca.issue()
    t1 = attempt(strict, card).json()["token"]  # type: ignore[attr-defined]
    t2 = attempt(strict, card).json()["token"]  # type: ignore[attr-defined]
    t3 = attempt(strict, bystander).json()["token"]  # type: ignore[attr-defined]
    for t in (t1, t2, t3):
        assert strict.get("/v1/me", headers=bearer(t)).status_code == 200
    assert _sessions(db_url, card) == (0, 2)
    jpki.ca.revoke(card)
    jpki.republish()
    # the next request of any resident picks the new CRL up: both of the card's sessions end
    assert strict.get("/v1/me", headers=bearer(t3)).status_code == 200
    assert _sessions(db_url, card) == (2, 2)
    assert _sessions(db_url, bystander) == (0, 1)
    for t in (t1, t2):
        assert strict.get("/v1/me", headers=bearer(t)).status_code == 401
    r = attempt(strict, card)
    assert r.status_code == 401 and r.json()["type"].endswith("certificate-revoked")  # type: ignore[attr-defined]


def test_revocation_is_also_checked_at_request_time(
    strict: TestClient, jpki: Jpki, db_url: str
) -> None:
    """Even a session row that escaped the reload's update is refused on its next request."""
    card, bystander = jpki.ca.issue(), jpki.ca.issue()
    token = attempt(strict, card).json()["token"]  # type: ignore[attr-defined]
    t3 = attempt(strict, bystander).json()["token"]  # type: ignore[attr-defined]
    jpki.ca.revoke(card)
    jpki.republish()
    assert strict.get("/v1/me", headers=bearer(t3)).status_code == 200  # loads the CRL
    with psycopg.connect(db_url, autocommit=True) as conn:  # e.g. restored from a backup
        conn.execute(
            "UPDATE auth_sessions SET revoked_at = NULL WHERE cert_hash = %s",
            [certificate_hash(TEST_PSEUDONYM_KEY.encode(), card.cert)],
        )
    assert _sessions(db_url, card) == (0, 1)
    assert strict.get("/v1/me", headers=bearer(token)).status_code == 401
    assert _sessions(db_url, card) == (1, 1)


def test_check_store_is_pure() -> None:
    ca = TestCA()
    now = datetime.now(UTC)
    with pytest.raises(Exception, match="no CRL"):
        check_store(TrustStore((ca.cert,)), now)
    check_store(TrustStore((ca.cert,), (ca.crl(),)), now)
    with pytest.raises(Exception, match="nextUpdate"):
        check_store(TrustStore((ca.cert,), (ca.crl(),)), now + timedelta(days=2))
    check_store(TrustStore((ca.cert,), (), allow_no_crl=True), now)


# ------------------------------------------------------------- bugs found by fuzzing


def test_challenge_cleanup_runs_and_never_fails(client: TestClient, db_url: str) -> None:
    """It used to run 1 time in 256 (nonce byte 0) and then fail with a 500 (timestamp
    compared with ``now() - '1 day'``), so old challenges were never removed."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO fare_auth_challenges (nonce, expires_at) VALUES"
            " ('\\x00aa', now() - interval '2 days'), ('\\x00bb', now() - interval '1 minute')"
        )
    fresh_rate_limit(client)
    assert client.post("/v1/auth/challenge").status_code == 200
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE expires_at < now()), count(*) FROM fare_auth_challenges"
        ).fetchone()
    assert row is not None and row[0] == 0 and row[1] >= 1


@pytest.mark.parametrize("month", ["2026-12%0A", "2026-12%0D%0A", "2026-12%0Ax", "２０２６-12"])
def test_month_with_trailing_newline_is_refused(
    client: TestClient, keys: Credentials, month: str
) -> None:
    r = client.get(
        f"/v1/operators/gunmachuo/statements/{month}",
        params={"format": "csv"},
        headers={"X-API-Key": keys.operator},
    )
    assert r.status_code == 422 and r.json()["type"].endswith("bad-month"), r.text
    assert "content-disposition" not in r.headers


def test_statement_filename_is_the_parsed_month(client: TestClient, keys: Credentials) -> None:
    r = client.get(
        "/v1/operators/gunmachuo/statements/2026-12",
        params={"format": "csv"},
        headers={"X-API-Key": keys.operator},
    )
    assert r.status_code == 200
    assert (
        r.headers["content-disposition"] == 'attachment; filename="statement-gunmachuo-2026-12.csv"'
    )


def test_parse_month_is_a_full_match() -> None:
    from datetime import date

    from mobility.fares.settlement import parse_month

    assert parse_month("2026-12") == date(2026, 12, 1)
    for bad in ("2026-12\n", "2026-12\r\n", " 2026-12", "2026-13", "2026-1", "２０２６-12", ""):
        with pytest.raises(ValueError):
            parse_month(bad)
