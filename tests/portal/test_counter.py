"""Counter assistance: city staff open a resident's view with the resident's card present;
time-limited, audited, and the statement printed at the counter says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import BytesIO

import psycopg
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from portal import counter
from tests.portal.conftest import NONCE, Keys, card_answer, csrf_of, fresh_limits
from tests.portal.test_pages import device


def start_counter(c: TestClient, key: str) -> TestClient:
    fresh_limits(c)
    page = c.get("/my/counter")
    r = c.post(
        "/my/counter/start",
        data={"csrf": csrf_of(page.text), "api_key": key},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return c


def test_extension_never_passes_an_hour() -> None:
    t0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert counter.extended_until(t0, t0 + timedelta(minutes=5)) == t0 + timedelta(minutes=20)
    assert counter.extended_until(t0, t0 + timedelta(minutes=55)) == t0 + timedelta(hours=1)


def test_only_staff_keys_start_a_counter_session(client: TestClient, keys: Keys) -> None:
    with device(client) as c:
        page = c.get("/my/counter")
        assert "職員用APIキー" in page.text
        r = c.post("/my/counter/start", data={"csrf": csrf_of(page.text), "api_key": keys.operator})
        assert r.status_code == 403 and "職員用のキーではありません" in r.text
        assert "mebuku_counter" not in c.cookies


def test_counter_view_with_the_residents_card(
    client: TestClient, keys: Keys, dev_ca: object, db_url: str
) -> None:
    with device(client) as c:
        start_counter(c, keys.admin)
        page = c.get("/my/counter")
        nonce = NONCE.search(page.text)
        assert nonce and "窓口セッション" in page.text
        # signed out pages are not the resident's yet
        assert c.get("/my/", follow_redirects=False).status_code == 303
        cert, sig = card_answer(dev_ca, "counter-resident", nonce.group(1))  # type: ignore[arg-type]
        r = c.post(
            "/my/counter/card",
            data={
                "csrf": csrf_of(page.text),
                "nonce": nonce.group(1),
                "certificate": cert,
                "signature": sig,
            },
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/my/"
        home = c.get("/my/")
        assert home.status_code == 200 and "窓口での手続き（担当: admin:" in home.text
        assert "data-counter-ends=" in home.text and "15分延長する" in home.text
        rid = int(home.text.split('id="resident-number">')[1].split("<")[0])
        month = datetime.now(UTC).strftime("%Y-%m")
        pdf = c.get(f"/my/rides/statement.pdf?month={month}")
        text = PdfReader(BytesIO(pdf.content)).pages[0].extract_text()
        assert "市役所窓口で印刷" in text
        # extend, then end: the view closes at once
        r = c.post(
            "/my/counter/extend",
            data={"csrf": csrf_of(home.text), "next": "/my/cards"},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/my/cards"
        r = c.post("/my/signout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
        assert r.headers["location"] == "/my/counter"
        assert c.get("/my/", follow_redirects=False).status_code == 303
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT action, detail FROM portal_counter_audit WHERE resident_id = %s"
            " ORDER BY audit_id",
            [rid],
        ).fetchall()
        actions = [a for a, _d in rows]
        assert actions[0] == "card-presented" and actions[-1] == "end"
        assert {"view", "statement", "extend"} <= set(actions)
        assert ("view", "GET /my/") in rows
        starts = conn.execute(
            "SELECT count(*) FROM portal_counter_audit WHERE action = 'start'"
        ).fetchone()
        assert starts is not None and starts[0] >= 1
    # append-only, also for the API's database role
    from core.roles import role_url

    with psycopg.connect(role_url(db_url, "api")) as conn, pytest.raises(psycopg.Error):
        conn.execute("UPDATE portal_counter_audit SET detail = 'x'")


def test_an_expired_counter_view_sends_back_to_the_counter(
    client: TestClient, keys: Keys, db_url: str
) -> None:
    with device(client) as c:
        start_counter(c, keys.admin)
        page = c.get("/my/counter")
        r = c.post(
            "/my/counter/card",
            data={"csrf": csrf_of(page.text), "card": "counter-late"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert c.get("/my/").status_code == 200
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE portal_counter_sessions SET expires_at = now() - interval '1 s'"
                " WHERE ended_at IS NULL"
            )
        r = c.get("/my/cards", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/my/counter?ended=1"
        assert "窓口での表示を終了しました" in c.get("/my/counter?ended=1").text
