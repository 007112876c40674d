"""The portal's pages over real HTTP handling and a real database: sign-in with a card,
MyTaku figures after an operator's submission, cards, rides, statement, stops and fares,
language and display choices, CSRF and cookies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from api.app import create_app
from core.settings import Settings
from mobility.fares import devcard
from tests.portal.conftest import (
    NONCE,
    OPERATOR,
    TAXI,
    Keys,
    card_answer,
    csrf_of,
    fresh_limits,
    resident_id,
    ride_body,
    yesterday_at,
)

CARD = "0B0E0000000A1F01"


@contextmanager
def device(client: TestClient, base_url: str = "http://testserver") -> Iterator[TestClient]:
    """Another browser (its own cookies) on the same app and event loop as ``client``."""
    saved, saved_base = dict(client.cookies), client.base_url
    client.cookies.clear()
    client.base_url = base_url
    try:
        yield client
    finally:
        client.cookies.clear()
        client.cookies.update(saved)
        client.base_url = saved_base


MAX_PAGE = 100_000


def sign_in_with_card(client: TestClient, ca: devcard.DevCA, name: str) -> None:
    """The production flow: the page's nonce, answered by the card (app)."""
    fresh_limits(client)
    page = client.get("/my/signin")
    assert page.status_code == 200, page.text
    nonce = NONCE.search(page.text)
    assert nonce
    cert, sig = card_answer(ca, name, nonce.group(1))
    r = client.post(
        "/my/signin",
        data={
            "csrf": csrf_of(page.text),
            "nonce": nonce.group(1),
            "certificate": cert,
            "signature": sig,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/my/"


@pytest.fixture(scope="module")
def senior(client: TestClient, dev_ca: devcard.DevCA, keys: Keys) -> int:
    """A 78-year-old resident signed in on ``client`` with a linked card."""
    sign_in_with_card(client, dev_ca, "portal-senior")
    rid = resident_id(client)
    r = client.post(
        f"/v1/admin/residents/{rid}/facts",
        json={"kind": "birth_date", "value": "1948-05-01", "note": "counter"},
        headers={"X-API-Key": keys.admin},
    )
    assert r.status_code == 201, r.text
    page = client.get("/my/cards")
    r = client.post(
        "/my/cards",
        data={"csrf": csrf_of(page.text), "idm": "0B 0E 00 00 00 0A 1F 01"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return rid


def test_signed_out_pages_send_to_sign_in_and_sign_in_is_japanese(client: TestClient) -> None:
    with device(client) as c:
        for path in ("/my/", "/my/rides", "/my/cards", "/my/notices"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/my/signin", path
        r = c.get("/my/signin")
    assert r.status_code == 200
    assert '<html lang="ja"' in r.text and "マイナンバーカード" in r.text
    assert "テストカード" in r.text  # development authority configured: the dev button
    assert "https://" not in r.text  # no third-party requests
    assert r.headers["content-security-policy"].startswith("default-src 'self'")


def test_sign_out_ends_the_session_at_once(client: TestClient, dev_ca: devcard.DevCA) -> None:
    with device(client) as c:
        sign_in_with_card(c, dev_ca, "portal-cookie")
        page = c.get("/my/")
        assert page.status_code == 200 and "マイタク" in page.text
        token = c.cookies.get("mebuku_portal")
        assert token
        r = c.post("/my/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert r.status_code == 303
        # the token stops working even if the browser kept it
        c.cookies.set("mebuku_portal", token)
        assert c.get("/my/", follow_redirects=False).status_code == 303


def test_cookie_attributes_over_tls(client: TestClient, dev_ca: devcard.DevCA) -> None:
    with device(client, "https://portal.example") as c:
        fresh_limits(c)
        page = c.get("/my/signin")
        nonce = NONCE.search(page.text)
        assert nonce
        cert, sig = card_answer(dev_ca, "portal-tls", nonce.group(1))
        form = {
            "csrf": csrf_of(page.text),
            "nonce": nonce.group(1),
            "certificate": cert,
            "signature": sig,
        }
        r = c.post("/my/signin", data=form, follow_redirects=False)
    set_cookie = r.headers["set-cookie"].lower()
    assert "mebuku_portal=" in set_cookie
    for attr in ("httponly", "samesite=strict", "secure", "path=/"):
        assert attr in set_cookie, set_cookie


def test_post_without_the_csrf_token_is_refused(client: TestClient, senior: int) -> None:
    r = client.post("/my/cards", data={"idm": "0B0E0000000A1F02"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/my/cards", data={"idm": "0B0E0000000A1F02", "csrf": "forged-0123456789abc"})
    assert r.status_code == 403
    assert "1F02" not in client.get("/my/cards").text


def test_a_wrong_signature_is_refused(client: TestClient, dev_ca: devcard.DevCA) -> None:
    with device(client) as c:
        fresh_limits(c)
        page = c.get("/my/signin")
        nonce = NONCE.search(page.text)
        assert nonce
        cert, _sig = card_answer(dev_ca, "portal-bad", nonce.group(1))
        other = devcard.sign_nonce(dev_ca, "portal-senior", nonce.group(1))
        form = {
            "csrf": csrf_of(page.text),
            "nonce": nonce.group(1),
            "certificate": cert,
            "signature": other,
        }
        r = c.post("/my/signin", data=form, follow_redirects=False)
        assert r.status_code == 401 and "サインインできませんでした" in r.text
        assert "mebuku_portal" not in c.cookies
        # the nonce was used up by the failed attempt: a replay with a good signature fails
        form["signature"] = _sig
        assert c.post("/my/signin", data=form, follow_redirects=False).status_code == 401


def test_mytaku_figures_change_after_an_operator_submits_a_ride(
    client: TestClient, senior: int, keys: Keys
) -> None:
    before = client.get("/my/")
    left = re.search(r'id="left-year">(\d+)<', before.text)
    assert left, before.text
    assert "75歳以上" in before.text
    r = client.post(
        f"/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("P-1", CARD, yesterday_at(10)),
        headers={"X-API-Key": keys.taxi},
    )
    assert r.status_code == 200, r.text
    assert r.json()["riders"][0]["subsidy_yen"] == 900
    after = client.get("/my/")
    now_left = re.search(r'id="left-year">(\d+)<', after.text)
    assert now_left and int(now_left.group(1)) == int(left.group(1)) - 1
    assert 'id="subsidy-year">900<' in after.text
    assert "マイタクが運賃の一部を支払いました。" in after.text
    # a ride outside the hours: not subsidised, and the page says why in plain words
    r = client.post(
        f"/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("P-2", CARD, yesterday_at(22)),
        headers={"X-API-Key": keys.taxi},
    )
    assert r.json()["riders"][0]["subsidy_yen"] == 0
    assert "マイタクの対象時間外" in client.get("/my/").text


def test_rides_month_by_month_and_the_statement_pdf(
    client: TestClient, senior: int, keys: Keys
) -> None:
    when = yesterday_at(9)
    tap = {
        "record_id": "PB-1",
        "route_id": "新前橋駅西口線_A",
        "origin_stop_id": "g033_01",
        "destination_stop_id": "m003_02",
        "tap_on_at": when.isoformat(),
        "tap_off_at": when.replace(minute=20).isoformat(),
        "card": CARD,
    }
    r = client.post(
        f"/v1/operators/{OPERATOR}/bus-taps", json=tap, headers={"X-API-Key": keys.operator}
    )
    assert r.status_code == 200, r.text
    fare, disc = r.json()["fare_yen"], r.json()["discount_yen"]
    assert disc > 0
    month = when.strftime("%Y-%m")
    page = client.get(f"/my/rides?month={month}")
    assert page.status_code == 200
    assert "表町" in page.text and "中央前橋駅前" in page.text  # stop names, not codes
    assert "シニア割引" in page.text
    assert f"{fare - disc} 円" in page.text
    pdf = client.get(f"/my/rides/statement.pdf?month={month}")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(BytesIO(pdf.content)).pages)
    assert "利用明細" in text and "表町" in text and f"住民番号: {senior}" in text
    assert client.get("/my/rides?month=2026-13").status_code == 400


def test_cards_link_report_lost_unlink(client: TestClient, senior: int) -> None:
    page = client.get("/my/cards")
    assert "1F01" in page.text and "3 枚" in page.text  # the rule, with the policy's number
    form = {"csrf": csrf_of(page.text), "idm": "0B0E0000000A1F02"}
    assert client.post("/my/cards", data=form, follow_redirects=False).status_code == 303
    page = client.get("/my/cards")
    ids = re.findall(r'action="/my/cards/(\d+)/lost"', page.text)
    assert len(ids) == 2
    # lost needs the confirmation tick
    r = client.post(f"/my/cards/{ids[1]}/lost", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 422
    confirmed = {"csrf": csrf_of(page.text), "confirm": "yes"}
    r = client.post(f"/my/cards/{ids[1]}/lost", data=confirmed, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/my/cards?done=lost")
    assert "紛失届済み" in page.text and "カードを紛失として利用停止にしました" in page.text
    # a lost card cannot be linked again, by anyone
    assert client.post("/my/cards", data=form).status_code == 409
    # a bad number is explained, not a crash
    r = client.post("/my/cards", data={"csrf": csrf_of(page.text), "idm": "not a card"})
    assert r.status_code == 422 and "16桁" in r.text


def test_another_residents_card_cannot_be_ended(
    client: TestClient, senior: int, dev_ca: devcard.DevCA
) -> None:
    mine = re.findall(r'action="/my/cards/(\d+)/lost"', client.get("/my/cards").text)[0]
    with device(client) as other:
        sign_in_with_card(other, dev_ca, "portal-other")
        p2 = other.get("/my/cards")
        r = other.post(f"/my/cards/{mine}/unlink", data={"csrf": csrf_of(p2.text)})
        assert r.status_code == 404
    assert f'action="/my/cards/{mine}/lost"' in client.get("/my/cards").text


FARE_Q = {"from": "表町", "to": "中央前橋駅前"}


def test_stops_next_buses_and_fare_without_signing_in(client: TestClient) -> None:
    with device(client) as anon:
        r = anon.get("/stops/", params={"q": "表町"})
        assert r.status_code == 200 and "/stops/g033_01" in r.text
        # The two poles of 表町 (no platform in the feed) by where their buses go, no code.
        links = dict(re.findall(r'<a href="/stops/(g033_0\d)">([^<]*)</a>', r.text))
        assert links == {
            "g033_01": "表町（高崎駅、新前橋駅西口 方面）",
            "g033_02": "表町（前橋駅、前橋駅前 方面）",
        }
        assert "g033" not in re.sub(r'href="[^"]*"', "", r.text)
        stop = anon.get("/stops/g033_01")
        assert stop.status_code == 200
        assert "表町（高崎駅、新前橋駅西口 方面） の次のバス" in stop.text
        station = anon.get("/stops/", params={"q": "前橋駅"}).text
        assert "前橋駅（降車専用）" in station and "前橋駅（5番のりば）" in station
        circle = anon.get("/stops/", params={"q": "天神町"}).text
        assert "天神町（のりば 1）" in circle and "天神町（のりば 2）" in circle
        en = anon.get("/stops/", params={"q": "表町"}, headers={"Accept-Language": "en"})
        assert "表町 (towards 高崎駅, 新前橋駅西口)" in en.text
        assert "時刻表" in stop.text or "本日のバスはもうありません" in stop.text
        fare = anon.get("/stops/fare", params=FARE_Q)
        assert fare.status_code == 200
        assert re.search(r"運賃: (\d+) 円", fare.text), fare.text
        assert "サインインすると" in fare.text and "お支払いは" not in fare.text
        assert anon.get("/stops/nowhere").status_code == 404
        unknown = anon.get("/stops/fare", params={"from": "表", "to": "中央"})
        assert unknown.status_code == 200 and "/stops/g033_01" in unknown.text


def test_fare_with_my_discount(client: TestClient, senior: int) -> None:
    mine = client.get("/stops/fare", params=FARE_Q)
    assert "シニア割引" in mine.text and "お支払いは" in mine.text


def test_language_and_display_are_remembered_per_device(client: TestClient) -> None:
    with device(client) as c:
        r = c.get("/my/lang", params={"to": "en", "next": "/stops/"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/stops/"
        page = c.get("/stops/")
        assert '<html lang="en"' in page.text and "Bus stops and fares" in page.text
        # no open redirect
        r = c.get(
            "/my/lang", params={"to": "ja", "next": "https://evil.example/"}, follow_redirects=False
        )
        assert r.headers["location"] == "/my/"
        disp = c.get("/my/display")
        form = {
            "csrf": csrf_of(disp.text),
            "text": "larger",
            "contrast": "on",
            "easy": "on",
            "lang": "ja",
            "next": "/stops/",
        }
        assert c.post("/my/display", data=form, follow_redirects=False).status_code == 303
        page = c.get("/stops/")
        assert 'class="text-larger contrast"' in page.text and '<html lang="ja"' in page.text
        assert "バス停と お金" in page.text  # easy Japanese


def test_easy_japanese_wording(client: TestClient, senior: int) -> None:
    normal = client.get("/my/").text
    client.cookies.set("mebuku_display", "normal.0.1")
    try:
        easy = client.get("/my/").text
    finally:
        client.cookies.delete("mebuku_display")
    assert "今日 乗れる 回数" in easy and "今日 乗れる 回数" not in normal
    assert "今日の残り回数" in normal


def test_notice_settings_are_stored(client: TestClient, senior: int) -> None:
    page = client.get("/my/notices")
    assert page.status_code == 200
    form = {
        "csrf": csrf_of(page.text),
        "rides-nearly-used": "on",
        "rides-nearly-used-threshold": "10",
        "bus-late": "on",
        "bus-late-threshold": "999",
    }
    assert client.post("/my/notices", data=form, follow_redirects=False).status_code == 303
    page = client.get("/my/notices?done=saved")
    assert 'id="n-rides" name="rides-nearly-used" value="on" checked' in page.text
    assert 'id="n-receipt" name="ride-receipt" value="on">' in page.text
    assert 'name="bus-late-threshold" min="1" max="120" value="120"' in page.text
    stop = client.get("/stops/g033_01")
    form = {"csrf": csrf_of(stop.text), "stop_id": "g033_01", "action": "save"}
    assert client.post("/my/stops", data=form, follow_redirects=False).status_code == 303
    assert "/stops/g033_01" in client.get("/my/notices").text


def test_every_page_is_small(client: TestClient, senior: int) -> None:
    css = client.get("/my/static/portal.css").content
    js = client.get("/my/static/portal.js").content
    paths = [
        "/my/",
        "/my/rides",
        "/my/cards",
        "/my/notices",
        "/my/display",
        "/stops/?q=前橋",
        "/stops/g033_01",
        "/stops/fare?from=表町&to=中央前橋駅前",
    ]
    for path in paths:
        r = client.get(path)
        assert r.status_code == 200, path
        assert len(r.content) + len(css) + len(js) < MAX_PAGE, path
    with device(client) as anon:
        assert len(anon.get("/my/signin").content) + len(css) + len(js) < MAX_PAGE


def test_no_dev_button_without_the_dev_authority(portal_settings: Settings) -> None:
    prod = portal_settings.model_copy(update={"environment": "production"})
    with TestClient(create_app(prod)) as c:
        page = c.get("/my/signin")
        assert page.status_code == 200 and "テストカード" not in page.text
        r = c.post("/my/signin/dev", data={"csrf": csrf_of(page.text), "card": "x"})
        assert r.status_code == 404


def test_the_dev_button_signs_in_with_the_test_card_authority(client: TestClient) -> None:
    with device(client) as c:
        fresh_limits(c)
        page = c.get("/my/signin")
        form = {"csrf": csrf_of(page.text), "card": "portal-dev"}
        r = c.post("/my/signin/dev", data=form, follow_redirects=False)
        assert r.status_code == 303 and c.get("/my/").status_code == 200
