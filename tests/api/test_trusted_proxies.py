"""Rate limits key on the real client: behind a trusted reverse proxy each resident has
their own sign-in limit, and a client cannot escape its limit by forging X-Forwarded-For."""

from __future__ import annotations

from ipaddress import ip_network

import httpx
import pytest
from fastapi import APIRouter, Depends
from pydantic import ValidationError

from api.app import create_app
from core.settings import Settings
from core.web import auth_rate_limit, forwarded_client, public
from tests.api.live import serve
from tests.conftest import make_settings

LIMIT = 10  # auth_rate_limit: 10 a minute per client


def _sign_in_app(settings: Settings, trusted: list[str]) -> object:
    auth = APIRouter(prefix="/v1/auth", dependencies=[Depends(public), Depends(auth_rate_limit)])

    @auth.post("/challenge")
    async def challenge() -> dict[str, str]:
        return {"nonce": "n"}

    s = settings.model_copy(update={"api_trusted_proxies": trusted})
    return create_app(s, domain_routers=(), extra_routers=[auth])


def _codes(base: str, n: int, forwarded_for: str | None) -> list[int]:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    with httpx.Client(base_url=base, timeout=10) as c:
        return [c.post("/v1/auth/challenge", headers=headers).status_code for _ in range(n)]


def test_residents_behind_a_trusted_proxy_get_separate_limits(settings: Settings) -> None:
    # The test client connects from 127.0.0.1, standing in for the reverse proxy.
    app = _sign_in_app(settings, ["127.0.0.1/32"])
    with serve(app) as base:  # type: ignore[arg-type]
        first = _codes(base, LIMIT + 1, "198.51.100.7")
        second = _codes(base, LIMIT + 1, "198.51.100.8")
        # Resident 1 forges a left-hand entry each time: the proxy appended the real
        # address on the right, so it is still the same bucket.
        forged = [_codes(base, 1, f"203.0.113.{i}, 198.51.100.7")[0] for i in range(3)]
    assert first == [200] * LIMIT + [429]
    assert second == [200] * LIMIT + [429]  # not used up by the first resident
    assert forged == [429, 429, 429]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    app = _sign_in_app(settings, ["10.0.0.1"])  # 127.0.0.1 is not a trusted proxy
    with serve(app) as base:  # type: ignore[arg-type]
        codes = [_codes(base, 1, f"198.51.100.{i}")[0] for i in range(LIMIT + 2)]
    assert codes == [200] * LIMIT + [429, 429]


def test_default_believes_no_proxy(settings: Settings) -> None:
    assert settings.api_trusted_proxies == []
    app = _sign_in_app(settings, [])
    with serve(app) as base:  # type: ignore[arg-type]
        codes = [_codes(base, 1, f"198.51.100.{i}")[0] for i in range(LIMIT + 1)]
    assert codes[-1] == 429


TRUSTED = (ip_network("10.0.0.0/8"), ip_network("2001:db8::/48"))


@pytest.mark.parametrize(
    ("peer", "xff", "client"),
    [
        ("192.0.2.5", ["198.51.100.1"], "192.0.2.5"),  # untrusted peer: header ignored
        ("10.0.0.2", [], "10.0.0.2"),  # a proxy that sent no header
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # forged left part
        ("10.0.0.2", ["198.51.100.1, 10.1.1.1"], "198.51.100.1"),  # two trusted hops
        ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # two header lines
        ("10.0.0.2", ["garbage, 10.1.1.1"], "10.1.1.1"),  # stops at the last vouched hop
        ("10.0.0.2", ["198.51.100.1:4711"], "198.51.100.1"),
        ("2001:db8::1", ["[2001:db8:1::5]:443, 2001:db8::9"], "2001:db8:1::5"),
        ("::ffff:10.0.0.2", ["198.51.100.1"], "198.51.100.1"),  # IPv4-mapped peer
    ],
)
def test_forwarded_client(peer: str, xff: list[str], client: str) -> None:
    assert forwarded_client(peer, xff, TRUSTED) == client


def test_trusted_proxies_setting_refuses_junk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "en")  # settings errors speak the process language
    with pytest.raises(ValidationError, match="not an IP address or CIDR"):
        make_settings(None, api_trusted_proxies=["caddy"])
    assert make_settings(None, api_trusted_proxies=[" 172.30.0.0/24 "]).api_trusted_proxies == [
        "172.30.0.0/24"
    ]
