"""The compose file's reverse proxy (deploy/caddy/Caddyfile, run by a real Caddy) in front
of the API and of Grafana: HTTPS only, and each resident behind it keeps their own sign-in
limit, whatever X-Forwarded-For they send. Grafana is reached only through the proxy's TLS
port (the compose file publishes no plain port for it, and its root_url is that HTTPS
address). The live tests are skipped where Caddy is not installed (apt-get install caddy);
no Grafana server runs on these machines, so a small real HTTP server answering Grafana's
health endpoint stands upstream in its place."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request

from core.embedded import free_port
from core.settings import Settings
from tests.api.live import serve
from tests.api.test_trusted_proxies import LIMIT, _sign_in_app
from tests.certs import make_server_cert
from tests.conftest import REPO_ROOT
from tests.support.wait import wait_until

CADDY = shutil.which("caddy")
needs_caddy = pytest.mark.skipif(CADDY is None, reason="caddy is not installed")
GRAFANA_TLS_PORT = 3443  # the Caddyfile's Grafana site


def _grafana_stand_in() -> FastAPI:
    """Answers like Grafana's /api/health and tells what the proxy forwarded."""
    app = FastAPI()

    @app.get("/api/health")
    def health(request: Request) -> dict[str, str]:
        return {
            "database": "ok",
            "forwarded_proto": request.headers.get("x-forwarded-proto", ""),
            "client": request.client.host if request.client else "",
        }

    return app


@pytest.fixture
def proxied(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(https base URL of the API site, CA file, https base URL of the Grafana site); the
    API trusts only the proxy's address."""
    cert = make_server_cert(tmp_path / "certs", "api")
    app = _sign_in_app(settings, ["127.0.0.1/32"])  # Caddy connects upstream from 127.0.0.1
    with serve(app) as api_base, serve(_grafana_stand_in()) as grafana_base:  # type: ignore[arg-type]
        api_port = int(api_base.rsplit(":", 1)[1])
        grafana_port = int(grafana_base.rsplit(":", 1)[1])
        port, gport = free_port(), free_port()
        conf = (REPO_ROOT / "deploy/caddy/Caddyfile").read_text()
        for old, new in (
            ("/certs/", f"{tmp_path}/certs/"),
            (":443 {", f":{port} {{"),
            ("reverse_proxy api:8000", f"reverse_proxy 127.0.0.1:{api_port}"),
            (f":{GRAFANA_TLS_PORT} {{", f":{gport} {{"),
            ("reverse_proxy grafana:3000", f"reverse_proxy 127.0.0.1:{grafana_port}"),
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

            def listens(p: int) -> bool:
                assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", p), 0.2).close()
                except OSError:
                    return False
                return True

            for p in (port, gport):
                up = functools.partial(listens, p)
                assert wait_until(up, 30, every=0.05), "caddy did not listen"
            yield f"https://127.0.0.1:{port}", cert.ca, f"https://127.0.0.1:{gport}"
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


@needs_caddy
def test_residents_behind_the_proxy_keep_their_own_limits(
    proxied: tuple[str, Path, str],
) -> None:
    base, ca, _ = proxied
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


@needs_caddy
@pytest.mark.parametrize("site", ["api", "grafana"])
def test_the_proxy_speaks_tls_only(proxied: tuple[str, Path, str], site: str) -> None:
    api, _ca, grafana = proxied
    base, path = (api, "/healthz") if site == "api" else (grafana, "/api/health")
    plain = base.replace("https://", "http://")
    r = httpx.get(f"{plain}{path}", timeout=10)
    assert r.status_code == 400  # Caddy: "Client sent an HTTP request to an HTTPS server"
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
        httpx.get(f"{base}{path}", timeout=10)


@needs_caddy
def test_grafana_is_served_through_the_tls_proxy(proxied: tuple[str, Path, str]) -> None:
    _api, ca, grafana = proxied
    with _client(grafana, ca, "127.0.0.4") as c:
        r = c.get("/api/health")
    assert r.status_code == 200, r.text
    assert r.json()["database"] == "ok"
    assert r.json()["forwarded_proto"] == "https"  # Grafana builds its links on HTTPS
    assert r.json()["client"] == "127.0.0.1"  # the proxy, not the browser, is connected
    assert r.headers.get("strict-transport-security", "").startswith("max-age=")


def _published(service: dict[str, object]) -> list[str]:
    return [str(p) for p in service.get("ports", []) or []]  # type: ignore[attr-defined]


def test_compose_publishes_grafana_only_through_the_tls_proxy() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    grafana = services["grafana"]
    # No plain HTTP on the host: not published at all, or on loopback only.
    assert all(p.startswith("127.0.0.1:") for p in _published(grafana)), _published(grafana)
    for name, svc in services.items():
        assert not any(p.split(":")[-2:] == ["3000", "3000"] and not p.startswith("127.0.0.1:")
                       for p in _published(svc)), name  # fmt: skip
    # The proxy publishes Grafana's TLS port and shares a network with Grafana only
    # (not the API's edge network, whose clients the API believes about X-Forwarded-For).
    assert f"{GRAFANA_TLS_PORT}:{GRAFANA_TLS_PORT}" in _published(services["proxy"])
    shared = set(services["proxy"]["networks"]) & set(grafana["networks"])
    assert shared and "edge" not in grafana["networks"]
    # Grafana's root_url is the proxy's HTTPS address, and its cookie is Secure.
    root_url = grafana["environment"]["GF_SERVER_ROOT_URL"]
    assert root_url.startswith("${GRAFANA_ROOT_URL:-https://"), root_url
    assert f":{GRAFANA_TLS_PORT}/" in root_url
    assert grafana["environment"]["GF_SECURITY_COOKIE_SECURE"] == "true"
    example = (REPO_ROOT / "deploy" / "env.example").read_text()
    assert f"GRAFANA_ROOT_URL=https://localhost:{GRAFANA_TLS_PORT}/" in example
    # The Caddyfile's Grafana site is TLS and proxies the unpublished Grafana.
    caddy = (REPO_ROOT / "deploy/caddy/Caddyfile").read_text()
    site = caddy.split(f":{GRAFANA_TLS_PORT} {{", 1)[1].split("\n}", 1)[0]
    assert "tls /certs/" in site and "reverse_proxy grafana:3000" in site
