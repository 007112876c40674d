"""Stall detection: a worker whose batch cannot commit says so, and recovers.

A real worker, a real Mosquitto and PostgreSQL; another connection holds an exclusive
lock on bus_telemetry so the worker's INSERT waits (no error, nothing commits). Within
the stall window the worker's /healthz answers 503, its gauge says stalled, its heartbeat
row says stalled and the API's /readyz fails; once the lock goes, everything is healthy
and every message is stored.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import drop_database
from core.embedded import free_port
from core.settings import Settings
from ingest.simulate.publisher import Publisher
from ingest.worker import IngestWorker, WorkerConfig
from tests.conftest import make_settings, new_database
from tests.ingest.helpers import wait_until


@pytest.fixture
def own_db(pg_server, migrated_template) -> Iterator[str]:
    name = new_database(pg_server, migrated_template)
    yield pg_server.url(name)
    drop_database(pg_server.url(), name)


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def telemetry(i: int) -> bytes:
    ts = datetime.now(UTC) - timedelta(minutes=30) + timedelta(seconds=i)
    return json.dumps({"ts": int(ts.timestamp() * 1000), "lat": 36.39, "lon": 139.06}).encode()


def test_blocked_commit_is_reported_stalled_then_healthy(
    settings: Settings, own_db: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MEBUKU_LANG", "ja")  # the worker's reason: its process language
    port = free_port()
    seg = uuid.uuid4().hex[:8]
    w = IngestWorker(
        WorkerConfig(
            database_url=own_db,
            mqtt=settings.mqtt,
            client_id=f"test-stall-{seg}",
            group="",
            topic_filter=f"maebashi/bus/{seg}/#",
            session_expiry=60,
            metrics_port=port,
            stall_seconds=2.0,
            heartbeat_interval=0.5,
        )
    )
    health = f"http://127.0.0.1:{port}/healthz"
    metrics = f"http://127.0.0.1:{port}/metrics"
    topic = f"maebashi/bus/{seg}/telemetry"
    app = create_app(make_settings(own_db, settings.mqtt_url), domain_routers=())

    def stored() -> int:
        with psycopg.connect(own_db, autocommit=True) as c:
            row = c.execute(
                "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s", [seg]
            ).fetchone()
        return int(row[0]) if row else 0

    w.start()
    locker = psycopg.connect(own_db)
    try:
        assert w.subscribed.wait(10)
        with Publisher(settings.mqtt) as pub:
            pub.publish(topic, telemetry(0))
        assert wait_until(lambda: stored() == 1, 30)
        assert get(health)[0] == 200

        locker.execute("LOCK TABLE bus_telemetry IN ACCESS EXCLUSIVE MODE")
        with Publisher(settings.mqtt) as pub:
            for i in range(1, 11):
                pub.publish(topic, telemetry(i))
        assert wait_until(lambda: get(health)[0] == 503, 20), get(health)
        _status, body = get(health)
        assert body["status"] == "stalled" and body["waiting"] == 10
        assert body["oldest_unacked_seconds"] > 2 and body["database_reachable"] is True
        assert "秒間コミットがありません" in body["reason"]  # the process language (Japanese)
        assert wait_until(lambda: metric(metrics, "mebuku_ingest_stalled") == 1, 5)
        assert metric(metrics, "mebuku_ingest_oldest_unacked_seconds") > 2

        with TestClient(app) as api:

            def api_says_stalled() -> bool:
                r = api.get("/readyz")
                return r.status_code == 503 and "が停滞しています" in r.json()["checks"].get(
                    "ingest", ""
                )

            assert wait_until(api_says_stalled, 10), api.get("/readyz").json()

            locker.rollback()  # the lock goes: the batch commits
            assert wait_until(lambda: stored() == 11, 30)
            assert wait_until(lambda: get(health)[0] == 200, 10), get(health)
            assert get(health)[1]["status"] == "ok"
            assert wait_until(lambda: metric(metrics, "mebuku_ingest_stalled") == 0, 5)
            assert wait_until(lambda: api.get("/readyz").status_code == 200, 10)
            assert api.get("/readyz").json()["checks"]["ingest"] == "ok"
    finally:
        locker.close()
        w.stop()
    with psycopg.connect(own_db, autocommit=True) as c:  # a clean stop removes the heartbeat
        assert c.execute("SELECT count(*) FROM ingest_heartbeat").fetchone() == (0,)


def test_silent_worker_fails_readiness(settings: Settings, own_db: str):
    """A heartbeat that stopped (the worker died without cleaning up) fails /readyz."""
    with psycopg.connect(own_db, autocommit=True) as c:
        c.execute(
            "INSERT INTO ingest_heartbeat (worker_id, updated_at, started_at, stall_seconds)"
            " VALUES ('dead-worker', now() - interval '5 minutes', now() - interval '1 hour', 60)"
        )
    app = create_app(make_settings(own_db, settings.mqtt_url), domain_routers=())
    with TestClient(app) as api:
        r = api.get("/readyz")
        en = api.get("/readyz", headers={"Accept-Language": "en"})
    assert r.status_code == 503
    assert r.json()["checks"]["ingest"].startswith("dead-worker が無応答です：")
    assert en.json()["checks"]["ingest"].startswith("dead-worker silent: no heartbeat for")


def test_backlog_byte_budget_holds_messages_at_the_broker(settings: Settings, own_db: str):
    """Over the byte budget the worker stops taking messages (they wait at the broker);
    when commits resume, every message is stored."""
    seg = uuid.uuid4().hex[:8]
    w = IngestWorker(
        WorkerConfig(
            database_url=own_db,
            mqtt=settings.mqtt,
            client_id=f"test-budget-{seg}",
            group="",
            topic_filter=f"maebashi/bus/{seg}/#",
            session_expiry=60,
            max_backlog_bytes=20_000,
            keepalive=60,  # waits of up to 30 s per message while over budget
        )
    )
    topic = f"maebashi/bus/{seg}/telemetry"

    def payload(i: int) -> bytes:  # about 2 KB each
        ts = datetime.now(UTC) - timedelta(minutes=30) + timedelta(seconds=i)
        doc = {"ts": int(ts.timestamp() * 1000), "lat": 36.39, "lon": 139.06, "trip_id": "x" * 60}
        return json.dumps({**doc, "route_id": "r" * 60}).encode().ljust(2000)

    def stored() -> int:
        with psycopg.connect(own_db, autocommit=True) as c:
            row = c.execute(
                "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s", [seg]
            ).fetchone()
        return int(row[0]) if row else 0

    w.start()
    locker = psycopg.connect(own_db)
    try:
        assert w.subscribed.wait(10)
        locker.execute("LOCK TABLE bus_telemetry IN ACCESS EXCLUSIVE MODE")
        with Publisher(settings.mqtt) as pub:
            for i in range(100):
                pub.publish(topic, payload(i))
        reg = w.metrics.registry
        waited = "mebuku_ingest_backpressure_seconds_total"
        assert wait_until(lambda: w.status().waiting >= 10, 20), w.status()
        assert w._backlog_bytes <= 20_000 + 2000  # the budget, plus the one let in
        assert w.status().waiting <= 11
        locker.rollback()
        assert wait_until(lambda: stored() == 100, 60), stored()
        assert (reg.get_sample_value(waited) or 0) > 0
    finally:
        locker.close()
        w.stop()
