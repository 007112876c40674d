"""API keys (stored as digests, scoped, revocable) and the `mebuku operators` / `api` CLI."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from typer.testing import CliRunner, Result

from api.cli import operators_app
from api.keys import check_scope, create_api_key, list_api_keys, new_key
from core.settings import get_settings
from core.web import Role
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY
from tests.support.wait import wait_until


def test_scope_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "en")  # the CLI's messages: the process language
    assert check_scope("operator", "gunma-chuo") is Role.OPERATOR
    assert check_scope("council", None) is Role.COUNCIL
    with pytest.raises(ValueError, match="needs an operator id"):
        check_scope("operator", None)
    with pytest.raises(ValueError, match="not scoped"):
        check_scope("admin", "gunma-chuo")
    with pytest.raises(ValueError, match="residents sign in"):
        check_scope("resident", None)
    with pytest.raises(ValueError, match="unknown role"):
        check_scope("root", None)
    with pytest.raises(ValueError, match="operator id"):
        check_scope("operator", "bad id; drop table")
    monkeypatch.setenv("MEBUKU_LANG", "ja")
    with pytest.raises(ValueError, match="市民はマイナンバーカードでサインイン"):
        check_scope("resident", None)


def test_a_key_id_never_looks_like_an_individual_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id with twelve digits in a row would be refused by the request screen in a path."""
    drawn = iter(["3141592653589793", "0123456789ab0123", "ab01234567890123"])
    monkeypatch.setattr("api.keys.secrets.token_hex", lambda _n: next(drawn))
    key_id, key = new_key()
    assert key_id == "0123456789ab0123"
    assert key.startswith(f"mbk_{key_id}_")


def test_only_the_digest_is_stored(db_url: str) -> None:
    key = create_api_key(db_url, "operator", "kan-etsu", label="dispatch desk")
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT * FROM api_keys").fetchall()
        assert not any(key.encode() in repr(r).encode() for r in rows)
        assert not any(key.split("_", 2)[2] in repr(r) for r in rows)
        digest = conn.execute(
            "SELECT secret_sha256 FROM api_keys WHERE key_id = %s", [key.split("_")[1]]
        ).fetchone()
        assert digest == (hashlib.sha256(key.encode()).digest(),)
        info = [k for k in list_api_keys(conn) if k.operator_id == "kan-etsu"]
    assert [(k.role, k.label) for k in info] == [(Role.OPERATOR, "dispatch desk")]


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """`mebuku operators ...` in-process, against this module's database."""
    monkeypatch.setenv("MEBUKU_DATABASE_URL", db_url)
    monkeypatch.setenv("MEBUKU_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("MEBUKU_LANG", "ja")  # the CLI's default, whatever the machine's locale
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(operators_app, list(args))

    yield run
    get_settings.cache_clear()


def test_operators_create_list_revoke(cli: Callable[..., Result]) -> None:
    made = cli("create", "--role", "operator", "--operator-id", "7070001000969")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("mbk_")
    key_id = key.split("_")[1]
    listed = cli("list")
    assert f"{key_id}\toperator\tgunmachuo" in listed.stdout  # the alias resolved
    assert key not in listed.output  # shown once only
    assert cli("revoke", key_id).exit_code == 0
    assert key_id not in cli("list").stdout
    assert key_id in cli("list", "--all").stdout
    assert cli("revoke", key_id).exit_code == 1
    bad = cli("create", "--role", "operator")
    assert bad.exit_code == 2 and "--operator-id（事業者ID）が必要です" in bad.output
    stray = cli("create", "--role", "operator", "--operator-id", "gunma-chuo")
    assert stray.exit_code == 2
    assert "事業者 'gunma-chuo' は core/operators.toml にありません" in stray.output


def test_operators_cli_speaks_english_when_asked(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "en")
    stray = cli("create", "--role", "operator", "--operator-id", "gunma-chuo")
    assert stray.exit_code == 2 and "'gunma-chuo' is not in core/operators.toml" in stray.output


@pytest.mark.parametrize("workers", [1, 2])
def test_mebuku_api_serves(db_url: str, settings, workers: int) -> None:
    """Served as configured (one process, or worker processes that set up logging
    themselves), with the access log on and masked in every process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MEBUKU_DATABASE_URL": db_url,
        "MEBUKU_MQTT_URL": settings.mqtt_url,
        "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
    }
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "core.cli", "api", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", str(workers)),
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def answer() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return None

        r = wait_until(answer, 30, every=0.2)
        assert r is not None, "mebuku api did not come up"
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz?note=query-secret").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "uvicorn.access: 127.0.0.1" in out and '"GET /readyz HTTP/1.1" 200' in out, out
    assert "query-secret" not in out
