"""Rendering the council's PDF takes CPU seconds; it runs in a worker thread, so the API
keeps answering other requests meanwhile (a real uvicorn server, real database). Without the
``report`` extra the report is a 503 problem naming it."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from core.roles import role_url
from core.settings import Settings
from tests.api.live import serve
from tests.fiveg import known_set
from tests.support.credentials import api_keys

REPORTS = 3
REPORT = "/v1/fiveg/trials/known-bus-trial/report"


@pytest.fixture(scope="module")
def api(settings: Settings, db_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    known_set.insert_direct(db_url, known_set.samples())
    creds = api_keys(db_url)
    admin, council = creds.headers("admin"), creds.headers("council")
    app_settings = settings.model_copy(update={"database_url": role_url(db_url, "api")})
    with serve(create_app(app_settings, domain_routers=("fiveg.http",))) as base:
        r = httpx.put(
            f"{base}/v1/fiveg/trials/known-bus-trial",
            json=known_set.trial_definition(),
            headers=admin,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        yield base, council


def test_healthz_stays_fast_while_reports_render(api: tuple[str, dict[str, str]]) -> None:
    base, council = api
    with httpx.Client(base_url=base, timeout=120) as c:
        c.get(REPORT, headers=council).raise_for_status()  # warm: fonts, imports
        t0 = time.perf_counter()
        c.get(REPORT, headers=council).raise_for_status()
        render_s = time.perf_counter() - t0

    statuses: list[int] = []
    start = threading.Barrier(REPORTS + 1)

    def render() -> None:
        with httpx.Client(base_url=base, timeout=120) as rc:
            start.wait()
            statuses.append(rc.get(REPORT, headers=council).status_code)

    workers = [threading.Thread(target=render) for _ in range(REPORTS)]
    for w in workers:
        w.start()
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=120) as hc:
        hc.get("/healthz").raise_for_status()  # connection open before the renders start
        start.wait()
        while any(w.is_alive() for w in workers):
            t = time.perf_counter()
            assert hc.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - t)
    for w in workers:
        w.join()

    assert statuses == [200] * REPORTS
    # Rendered on the event loop, each probe would wait for a whole render (or all three).
    assert len(latencies) >= 5, (latencies, render_s)
    assert max(latencies) < render_s / 2, (max(latencies), render_s)
    assert statistics.median(latencies) < render_s / 10, (statistics.median(latencies), render_s)


def test_without_the_report_extra_the_report_is_a_503_naming_it(
    api: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, council = api
    monkeypatch.delitem(sys.modules, "fiveg.report", raising=False)
    for name in ("matplotlib", "matplotlib.dates", "matplotlib.figure", "reportlab"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    r = httpx.get(f"{base}{REPORT}", headers=council, timeout=60)
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("report-unavailable")
    assert "pip install 'mebuku[report]'" in problem["detail"]
