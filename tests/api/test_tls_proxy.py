"""The compose file's reverse proxy (deploy/caddy/Caddyfile, run by a real Caddy) in front
of the API: HTTPS only, and each resident behind it keeps their own sign-in limit, whatever
X-Forwarded-For they send. Skipped where Caddy is not installed (apt-get install caddy)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.embedded import free_port
from core.settings import Settings
from tests.api.live import serve
from tests.api.test_trusted_proxies import LIMIT, _sign_in_app
from tests.certs import make_server_cert
from tests.conftest import REPO_ROOT
from tests.support.wait import wait_until

CADDY = shutil.which("caddy")
pytestmark = pytest.mark.skipif(CADDY is None, reason="caddy is not installed")


@pytest.fixture
def proxied(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(https base URL of the proxy, CA file); the API trusts only the proxy's address."""
    cert = make_server_cert(tmp_path / "certs", "api")
    app = _sign_in_app(settings, ["127.0.0.1/32"])  # Caddy connects upstream from 127.0.0.1
    with serve(app) as api_base:  # type: ignore[arg-type]
        api_port = int(api_base.rsplit(":", 1)[1])
        port = free_port()
        conf = (REPO_ROOT / "deploy/caddy/Caddyfile").read_text()
        for old, new in (
            ("/certs/", f"{tmp_path}/certs/"),
            (":443 {", f":{port} {{"),
            ("reverse_proxy api:8000", f"reverse_proxy 127.0.0.1:{api_port}"),
        ):
            assert old in conf, f"the Caddyfile no longer has {old!r}"
            conf = conf.replace(old, new)
        (tmp_path / "Caddyfile").write_text(conf)
        env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
               "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
        log = (tmp_path / "caddy.log").open("wb")
        proc = subprocess.Popen(
            [str(CADDY), "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def listens() -> bool:
                assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                except OSError:
                    return False
                return True

            assert wait_until(listens, 30, every=0.05), "caddy did not listen"
            yield f"https://127.0.0.1:{port}", cert.ca
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


def _client(base: str, ca: Path, source: str) -> httpx.Client:
    """A client whose connections come from ``source`` (any 127.x address on Linux)."""
    transport = httpx.HTTPTransport(
        local_address=source, verify=ssl.create_default_context(cafile=str(ca))
    )
    return httpx.Client(base_url=base, transport=transport, timeout=10)


def test_residents_behind_the_proxy_keep_their_own_limits(proxied: tuple[str, Path]) -> None:
    base, ca = proxied
    with _client(base, ca, "127.0.0.2") as a, _client(base, ca, "127.0.0.3") as b:
        first = [a.post("/v1/auth/challenge").status_code for _ in range(LIMIT + 1)]
        # Resident A pretends to be someone else: the proxy replaces the header.
        forged = a.post("/v1/auth/challenge", headers={"X-Forwarded-For": "203.0.113.9"})
        other = b.post("/v1/auth/challenge")
        assert a.get("/healthz").http_version in ("HTTP/1.1", "HTTP/2")
    assert first == [200] * LIMIT + [429]
    assert forged.status_code == 429
    assert other.status_code == 200
    assert other.headers.get("strict-transport-security", "").startswith("max-age=")


def test_the_proxy_speaks_tls_only(proxied: tuple[str, Path]) -> None:
    base, _ca = proxied
    plain = base.replace("https://", "http://")
    r = httpx.get(f"{plain}/healthz", timeout=10)
    assert r.status_code == 400  # Caddy: "Client sent an HTTP request to an HTTPS server"
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
        httpx.get(f"{base}/healthz", timeout=10)
