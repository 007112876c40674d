"""Schemathesis against the live API: a real uvicorn server, the real database and broker.

Every operation is called with generated input under each credential (resident,
operator, council, admin); no response may be a 5xx, have an undocumented status or
content type, or break its documented schema. Domain routers present at test time are
included. The example count is kept small so this stays well under a minute.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from api.app import create_app
from api.plugins import import_optional
from core.roles import role_url
from core.settings import Settings
from tests.api.conftest import echo_router
from tests.api.live import serve
from tests.conftest import make_settings
from tests.support.credentials import Credentials

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}
WHO = ("resident_a", "operator", "council", "admin")
SIGN_OUT = frozenset({"/v1/auth/logout"})  # issue 11: called as resident_b only
MAX_EXAMPLES = int(os.environ.get("MEBUKU_SCHEMATHESIS_EXAMPLES", "6"))


def send(http: httpx.Client, kwargs: dict[str, Any]) -> httpx.Response:
    """Send schemathesis' requests-style kwargs with httpx.

    (schemathesis' own requests transport trips over urllib3-future, which grafana-client's
    niquests installs in place of urllib3.)
    """
    assert not kwargs.get("cookies"), "the API takes no cookies"
    data = kwargs.get("data")
    return http.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        content=data if isinstance(data, bytes | str) else None,
        data=data if isinstance(data, dict) else None,
    )


@pytest.fixture(scope="module")
def full_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The test settings plus what domain packages need to be fully configured.

    Card sign-in needs JPKI trust anchors; the fares package's test CA provides them.
    """
    extra: dict[str, Any] = {}
    jpki = import_optional("tests.mobility.fares.jpki")
    if jpki is not None and "jpki_trust_anchors" in Settings.model_fields:
        anchors, crl = jpki.TestCA().write(tmp_path_factory.mktemp("jpki"))
        extra = {"jpki_trust_anchors": anchors, "jpki_crl": crl}
    # As deployed: the API logs in as mebuku_api (core/roles/grants.toml).
    api_url = role_url(settings.require_database_url(), "api")
    return make_settings(api_url, settings.mqtt_url, **extra)


@pytest.fixture(scope="module")
def live_api(full_settings: Settings, creds: Credentials) -> Iterator[str]:
    with serve(create_app(full_settings, extra_routers=[echo_router()])) as url:
        yield url


def test_api_conforms_to_its_openapi(live_api: str, creds: Credentials) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    http = httpx.Client(timeout=30)
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: report, don't minimise
        )
        def exercise(case: Any) -> None:
            if case.headers:  # credentials are ours, not generated ones
                for name in [n for n in case.headers if n.lower() in CREDENTIAL_HEADERS]:
                    del case.headers[name]
            for who in WHO:
                if who.startswith("resident") and case.operation.path in SIGN_OUT:
                    who = "resident_b"  # signing resident_a out would end its session
                headers = creds.headers(who)
                response = send(http, case.as_transport_kwargs(live_api, headers))
                case.validate_response(response, checks=CHECKS, headers=headers)

        started = time.monotonic()
        try:
            exercise()
        except (Exception, BaseExceptionGroup) as e:  # collect every failure, report all
            failures[operation.label] = "".join(traceback.format_exception(e))[-3000:]
        timings[operation.label] = time.monotonic() - started
    http.close()
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])[:5]
    print("slowest operations:", ", ".join(f"{k} {v:.1f}s" for k, v in slowest))
    assert operations >= 5
    report = os.environ.get("MEBUKU_SCHEMATHESIS_REPORT")
    if report:
        Path(report).write_text("\n\n".join(f"{k}\n{v}" for k, v in failures.items()))
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
