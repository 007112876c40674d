"""A NUL character anywhere the app reads text is one 422 problem, in the client's language,
before any route (PostgreSQL text cannot hold it: it used to be a 500 deep in a handler)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.screen import has_nul


def test_nul_is_found_in_every_place_text_comes_from() -> None:
    assert has_nul("/stops/\x00", b"", b"", "")
    assert has_nul("/stops/fare", b"from=zz&to=%00", b"", "")
    assert has_nul("/my/cards", b"", b"idm=%00", "application/x-www-form-urlencoded")
    assert has_nul("/v1/fares/quote", b"", b'{"a": "x\\u0000"}', "application/json")
    assert has_nul("/v1/fares/quote", b"", b'{"a": "x\\U0000"}', "application/json")
    assert not has_nul("/v1/fares/quote", b"q=100%", b'{"a": "%00"}', "application/json")
    assert not has_nul("/upload", b"", b"PK\x03\x04\x00\x00", "application/zip")


def test_a_nul_in_a_portal_query_is_a_422_problem_not_a_500(client: TestClient) -> None:
    r = client.get("/stops/fare", params={"from": "zz", "to": "\x00"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith("/nul-character")
    assert body["title"] == "文字列に NUL 文字は使えません"
    r = client.post(
        "/v1/fares/quote",
        content=b'{"mode": "bus", "from_stop": "a\\u0000"}',
        headers={"Content-Type": "application/json", "Accept-Language": "en"},
    )
    assert r.status_code == 422
    assert r.json()["title"] == "Text may not contain a NUL character"
    assert r.headers["content-language"] == "en"


def test_the_my_number_refusal_speaks_the_clients_language(client: TestClient) -> None:
    ja = client.get("/v1/stops/g033_01/arrivals", params={"note": "123456789018"})
    assert ja.status_code == 422
    assert ja.json()["title"] == "個人番号（マイナンバー）は受け付けません"
    en = client.get(
        "/v1/stops/g033_01/arrivals",
        params={"note": "123456789018"},
        headers={"Accept-Language": "en"},
    )
    assert en.status_code == 422 and en.json()["title"] == "Individual Numbers are not accepted"
