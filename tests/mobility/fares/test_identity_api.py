"""My Number Card sign-in, renewal, enrolment support and the Individual Number refusal,
through the real API app on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from mobility.fares.mynumber import check_digit
from tests.mobility.fares.conftest import bearer, fresh_rate_limit, sign_in
from tests.mobility.fares.jpki import TestCA
from tests.support.credentials import Credentials


def _count(db_url: str, sql: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def test_enrol_then_sign_in_again_is_the_same_resident(
    client: TestClient, ca: TestCA, db_url: str
) -> None:
    card = ca.issue()
    first = sign_in(client, card)
    assert first["enrolled"] is True
    rid = client.get("/v1/me", headers=bearer(first["token"])).json()["resident_id"]
    again = sign_in(client, card, der=True)  # DER works as well as PEM
    assert again["enrolled"] is False
    assert client.get("/v1/me", headers=bearer(again["token"])).json()["resident_id"] == rid
    # only a keyed hash of issuer+serial is stored
    serial_hex = f"{card.cert.serial_number:x}".encode()
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT cert_hash FROM fare_resident_certs WHERE resident_id = %s", [rid]
        ).fetchall()
    assert len(rows) == 1 and len(rows[0][0]) == 32 and serial_hex not in bytes(rows[0][0])


def _attempt(client: TestClient, cert: str, sign: object, nonce: str | None = None) -> object:
    fresh_rate_limit(client)
    nonce = nonce or client.post("/v1/auth/challenge").json()["nonce"]
    return client.post(
        "/v1/auth/session",
        json={"nonce": nonce, "certificate": cert, "signature": sign(nonce)},  # type: ignore[operator]
    )


def test_refusals(client: TestClient, ca: TestCA, jpki_files: tuple[Path, Path]) -> None:
    card = ca.issue()
    # replayed nonce
    nonce = client.post("/v1/auth/challenge").json()["nonce"]
    assert _attempt(client, card.pem, card.sign, nonce).status_code == 200  # type: ignore[attr-defined]
    r = _attempt(client, card.pem, card.sign, nonce)
    assert r.status_code == 401 and r.json()["type"].endswith("certificate-challenge")  # type: ignore[attr-defined]
    # signature by another key
    other = ca.issue()
    r = _attempt(client, card.pem, other.sign)
    assert r.json()["type"].endswith("certificate-bad-signature")  # type: ignore[attr-defined]
    # a card from an untrusted CA
    rogue = TestCA("Test JPKI User Authentication CA").issue()  # same name, other key
    r = _attempt(client, rogue.pem, rogue.sign)
    assert r.json()["type"].endswith("certificate-untrusted")  # type: ignore[attr-defined]
    # expired
    old = ca.issue(valid_from=datetime.now(UTC) - timedelta(days=400), days=30)
    r = _attempt(client, old.pem, old.sign)
    assert r.json()["type"].endswith("certificate-expired")  # type: ignore[attr-defined]
    # revoked: the CRL file is replaced and picked up without a restart
    revoked = ca.issue()
    assert _attempt(client, revoked.pem, revoked.sign).status_code == 200  # type: ignore[attr-defined]
    ca.revoke(revoked)
    ca.write(jpki_files[0].parent)
    r = _attempt(client, revoked.pem, revoked.sign)
    assert r.status_code == 401 and r.json()["type"].endswith("certificate-revoked")  # type: ignore[attr-defined]
    # garbage certificate
    r = _attempt(client, "not a certificate", card.sign)
    assert r.status_code == 401  # type: ignore[attr-defined]


def test_auth_endpoints_are_rate_limited(client: TestClient) -> None:
    fresh_rate_limit(client)
    codes: list[int] = []
    while len(codes) < 40 and 429 not in codes:  # the bucket refills 1 per 6 s
        codes.append(client.post("/v1/auth/challenge").status_code)
    assert codes[:10] == [200] * 10 and codes[-1] == 429


def test_renewed_certificate_links_to_the_same_resident(client: TestClient, ca: TestCA) -> None:
    old, new = ca.issue(), ca.issue()
    s = sign_in(client, old)
    rid = client.get("/v1/me", headers=bearer(s["token"])).json()["resident_id"]
    fresh_rate_limit(client)
    nonce = client.post("/v1/auth/challenge").json()["nonce"]
    r = client.post(
        "/v1/auth/renew",
        json={
            "nonce": nonce,
            "certificate": old.pem,
            "signature": old.sign(nonce),
            "new_certificate": new.pem,
            "new_signature": new.sign(nonce),
        },
    )
    assert r.status_code == 200 and r.json() == {"linked": True}, r.text
    s2 = sign_in(client, new)
    assert s2["enrolled"] is False
    assert client.get("/v1/me", headers=bearer(s2["token"])).json()["resident_id"] == rid


def test_staff_link_certificate(client: TestClient, ca: TestCA, keys: Credentials) -> None:
    old, new = ca.issue(), ca.issue()
    rid = client.get("/v1/me", headers=bearer(sign_in(client, old)["token"])).json()["resident_id"]
    url = f"/v1/admin/residents/{rid}/certificates"
    r = client.post(url, json={"certificate": new.pem}, headers={"X-API-Key": keys.operator})
    assert r.status_code == 403
    r = client.post(url, json={"certificate": new.pem}, headers={"X-API-Key": keys.admin})
    assert r.status_code == 200 and r.json() == {"linked": True}
    s = sign_in(client, new)
    assert client.get("/v1/me", headers=bearer(s["token"])).json()["resident_id"] == rid
    admin = {"X-API-Key": keys.admin}
    found = client.post("/v1/admin/residents/lookup", json={"certificate": new.pem}, headers=admin)
    assert found.status_code == 200 and found.json() == {"resident_id": rid}
    stranger = client.post(
        "/v1/admin/residents/lookup", json={"certificate": ca.issue().pem}, headers=admin
    )
    assert stranger.status_code == 404


def test_individual_numbers_are_refused_everywhere(
    client: TestClient, ca: TestCA, keys: Credentials
) -> None:
    fake = "55566677788"
    fake += str(check_digit(fake))  # synthetic, built at run time
    card = ca.issue()
    token = sign_in(client, card)["token"]
    fresh_rate_limit(client)
    r = client.post(
        "/v1/auth/session",
        json={"nonce": "x", "certificate": "y", "signature": "z", "my_number": fake},
    )
    assert r.status_code == 422 and r.json()["type"].endswith("individual-number-refused")
    assert fake not in r.text
    r = client.get(f"/v1/me/rides?note={fake[:4]}-{fake[4:8]}-{fake[8:]}", headers=bearer(token))
    assert r.status_code == 422 and fake not in r.text
    r = client.post("/v1/me/cards", json={"idm": fake}, headers=bearer(token))
    assert r.status_code == 422 and fake not in r.text
    r = client.post(
        "/v1/admin/residents/1/facts",
        json={"kind": "birth_date", "value": "1950-01-01", "note": f"number {fake}"},
        headers={"X-API-Key": keys.admin},
    )
    assert r.status_code == 422 and fake not in r.text
