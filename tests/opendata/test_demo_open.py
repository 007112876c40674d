"""Issue 16, item 6: `mebuku demo` publishes a first open-data release and its API serves
it under /open (a real demo process, real HTTP)."""

from __future__ import annotations

import json
import shutil
import signal
import urllib.request

import pytest

from core.embedded import server_dir
from tests.core.test_demo_supervision import READY_S, free_ports, running

pytestmark = pytest.mark.slow


def test_the_demo_publishes_a_release_and_serves_it_under_open() -> None:
    root = server_dir("mebuku-demo-open-")
    state = root / "state"
    ports = free_ports()
    try:
        with running(state, ports) as demo:
            demo.wait_ready(READY_S * 2)
            base = f"http://127.0.0.1:{ports['api-port']}/open"
            with urllib.request.urlopen(f"{base}/catalog.jsonld", timeout=10) as r:
                assert r.status == 200
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                catalogue = r.read().decode()
            assert "dcat:Catalog" in catalogue and f"{base}/releases/" in catalogue
            with urllib.request.urlopen(f"{base}/latest/mytaku_use.csv", timeout=10) as r:
                csv_text = r.read().decode("utf-8")
            assert csv_text.splitlines()[0].startswith("年月,町丁コード,町丁名")
            assert len(csv_text.splitlines()) > 1  # the demo's seeded rides are in it
            with urllib.request.urlopen(f"{base}/", timeout=10) as r:
                meta = json.loads(r.read())
            assert meta["k"] == 10 and meta["privacy_loss"]["epsilon_spent"] == 0
            assert (state / "opendata" / "LATEST").read_text().strip() == meta["release_id"]
            assert "最初のオープンデータを公開する" in demo.output()
            assert demo.stop(signal.SIGTERM) == 0, demo.output()[-3000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)
