"""The development card authority (`mebuku dev card`) and the demo's residents: refused
outside development; its cards sign in through the real API; the seed puts a bus discount
and a MyTaku subsidy in the operators' statements through the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.roles import role_url
from mobility.fares import settlement
from mobility.fares.devcard import DevCA, init_ca, issue_card, revoke_card, sign_nonce
from mobility.fares.devseed import TOKEN_RESIDENT, seed_residents
from mobility.gtfs.importer import import_feed
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY, make_settings
from tests.mobility.feeds import REAL_FEED


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env={**clean, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dev_card_refuses_unless_development(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    out = _cli("dev", "card", "init", "--dir", str(ca))
    assert out.returncode == 2
    assert "refused: development-only; set MEBUKU_ENVIRONMENT=development" in out.stderr
    assert "Traceback" not in out.stderr and not ca.exists()
    ok = _cli("dev", "card", "init", "--dir", str(ca), MEBUKU_ENVIRONMENT="development")
    assert ok.returncode == 0, ok.stderr
    assert f"MEBUKU_JPKI_CRL={ca / 'crl.pem'}" in ok.stdout
    for f in ("ca.key", "ca.crt", "crl.pem"):
        assert (ca / f).stat().st_mode & 0o777 == 0o600


def test_a_dev_card_signs_in_and_its_revocation_ends_the_session(
    tmp_path: Path, db_url: str
) -> None:
    ca = DevCA(tmp_path / "ca")
    assert init_ca(ca) and not init_ca(ca)  # made once, kept afterwards
    issue_card(ca, "alice")
    s = make_settings(
        role_url(db_url, "api"), jpki_trust_anchors=ca.cert_path, jpki_crl=ca.crl_path
    )
    with TestClient(create_app(s)) as client:
        nonce = client.post("/v1/auth/challenge").json()["nonce"]
        pem = issue_card(ca, "alice").read_text()
        r = client.post(
            "/v1/auth/session",
            json={"nonce": nonce, "certificate": pem, "signature": sign_nonce(ca, "alice", nonce)},
        )
        assert r.status_code == 200, r.text
        h = {"Authorization": f"Bearer {r.json()['token']}"}
        assert client.get("/v1/me", headers=h).status_code == 200
        revoke_card(ca, "alice")
        assert client.get("/v1/me", headers=h).status_code == 401


@pytest.mark.anyio
async def test_seed_puts_a_bus_discount_and_a_mytaku_subsidy_in_statements(
    tmp_path: Path, db_url: str
) -> None:
    import_feed(db_url, REAL_FEED)
    ca = DevCA(tmp_path / "ca")
    init_ca(ca)
    now = datetime.now(UTC)
    key = TEST_PSEUDONYM_KEY.encode()

    async def seed() -> object:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            return await seed_residents(
                conn, key, ca, days=30, window=timedelta(days=14), now=now, count=12
            )

    rep = await seed()
    assert rep is not None
    assert rep.bus_discounted > 0 and rep.taxi_subsidised > 0  # type: ignore[attr-defined]
    assert await seed() is None  # once per database
    assert (ca.folder / "cards" / f"{TOKEN_RESIDENT}.crt").exists()
    kinds: dict[str, set[str]] = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        months = {(now - timedelta(days=back)).date().replace(day=1) for back in range(32)}
        for month in months:
            for st in settlement.monthly_statements(conn, month):
                kinds.setdefault(st.operator_id, set()).update(str(line[4]) for line in st.lines)
    assert "bus_discount" in kinds.get("gunmachuo", set()), kinds
    assert "mytaku" in kinds["demo-taxi"]
