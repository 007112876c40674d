"""The writer process (parse + COPY) and the acknowledgements it hands back.

The worker acknowledges a message only after the writer process reports its batch
committed. These tests kill that process (and the MQTT process) with SIGKILL against the
real Mosquitto and PostgreSQL and check that nothing is acknowledged before its commit,
nothing is lost or duplicated, a dead writer is started again, and a writer that keeps
dying stops the worker visibly (``failed``, ``/healthz`` 503, exit status 1) instead of
stalling it silently.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.db import drop_database
from core.settings import Settings
from ingest.metrics import IngestMetrics
from ingest.pipeline import Inbound, lag_histogram, parse_item, stream_of
from ingest.rows import Rows
from ingest.simulate.publisher import Publisher
from ingest.worker import IngestWorker, WorkerConfig
from tests.conftest import new_database
from tests.ingest.helpers import wait_until

BASE = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def own_db(pg_server: Any, migrated_template: Any) -> Iterator[str]:
    name = new_database(pg_server, migrated_template)
    yield pg_server.url(name)
    drop_database(pg_server.url(), name)


def worker(settings: Settings, db: str, segment: str, **kw: Any) -> IngestWorker:
    return IngestWorker(
        WorkerConfig(
            database_url=db,
            mqtt=settings.mqtt,
            client_id=f"test-writer-{segment}",
            group="",
            topic_filter=f"maebashi/bus/{segment}/#",
            session_expiry=60,
            batch_size=100,
            **kw,
        )
    )


def telemetry(i: int) -> bytes:
    ms = int((BASE + timedelta(seconds=i)).timestamp() * 1000)
    return json.dumps({"ts": ms, "seq": i, "lat": 36.39, "lon": 139.06}).encode()


def publish(settings: Settings, segment: str, n: int) -> None:
    with Publisher(settings.mqtt) as pub:
        for i in range(n):
            pub.publish(f"maebashi/bus/{segment}/telemetry", telemetry(i))


def stored(db: str, segment: str) -> int:
    with psycopg.connect(db, autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM bus_telemetry WHERE vehicle_id = %s", [segment]
        ).fetchone()
    return int(row[0]) if row else 0


def freeze_writer(w: IngestWorker) -> int:
    pid = w.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return pid


def test_killed_writer_is_restarted_and_nothing_is_acked_before_its_commit(
    settings: Settings, own_db: str
) -> None:
    seg = uuid.uuid4().hex[:8]
    w = worker(settings, own_db, seg)
    w.start()
    assert w.subscribed.wait(10)
    try:
        first = freeze_writer(w)  # batches reach it, nothing can commit
        publish(settings, seg, 500)
        assert wait_until(lambda: w.status().waiting == 500, 30), w.status()
        time.sleep(1.0)
        assert w.acked == 0 and stored(own_db, seg) == 0
        os.kill(first, signal.SIGKILL)  # mid-batch: its batches were never acknowledged
        assert wait_until(lambda: stored(own_db, seg) == 500, 60), stored(own_db, seg)
        assert wait_until(lambda: w.acked == 500, 10), w.acked
        assert w.writer_pid not in (None, first)
        reg = w.metrics.registry
        assert reg.get_sample_value("mebuku_ingest_writer_restarts_total") == 1
        assert w.status().waiting == 0 and not w.failed.is_set()
        assert w.health()[0] == 200
    finally:
        w.stop()
    assert stored(own_db, seg) == 500  # exactly once: ON CONFLICT dropped nothing twice


def test_writer_that_keeps_dying_fails_the_worker_and_the_broker_keeps_the_messages(
    settings: Settings, own_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "en")  # the reason this test reads is the English one
    seg = uuid.uuid4().hex[:8]
    w = worker(settings, own_db, seg, writer_restarts=0)
    w.start()
    assert w.subscribed.wait(10)
    try:
        pid = freeze_writer(w)
        publish(settings, seg, 200)
        assert wait_until(lambda: w.status().waiting == 200, 30), w.status()
        os.kill(pid, signal.SIGKILL)
        assert w.failed.wait(15)
        code, body = w.health()
        assert code == 503 and body["status"] == "stalled"
        assert "writer process" in body["reason"]
        assert w.acked == 0 and stored(own_db, seg) == 0
    finally:
        t0 = time.monotonic()
        w.stop()
        assert time.monotonic() - t0 < 20
    # the same session, resumed: the broker redelivers all 200
    again = worker(settings, own_db, seg)
    again.start()
    try:
        assert wait_until(lambda: stored(own_db, seg) == 200, 60), stored(own_db, seg)
        assert wait_until(lambda: again.acked == 200, 10), again.acked
    finally:
        again.stop()


def test_lags_bucketed_by_the_writer_equal_one_observe_per_message() -> None:
    """The writer buckets lags; the MQTT process adds them at once. Same histogram."""
    now = datetime.now(UTC).timestamp()
    ages = [0.001, 0.004, 0.02, 0.3, 0.75, 1.0, 4.0, 59.0, 299.0, 1000.0, 5000.0]
    msgs = [
        Inbound(
            "maebashi/bus/v1/telemetry",
            json.dumps({"ts": int((now - a) * 1000), "lat": 36.39, "lon": 139.06}).encode(),
            i,
            1,
            now,
            0,
            0,
        )
        for i, a in enumerate(ages)
    ]
    items = [parse_item(m) for m in msgs]
    assert all(isinstance(it.parsed, Rows) for it in items)
    one_by_one, at_once = IngestMetrics(), IngestMetrics()
    for it in items:
        assert isinstance(it.parsed, Rows)
        ts = it.parsed.rows[0][1]
        one_by_one.lag_seconds.observe(max(now - ts.timestamp(), 0.0))
    at_once.observe_lags(*lag_histogram(items, now))

    def samples(m: IngestMetrics) -> dict[str, float]:
        return {
            f"{s.name}{sorted(s.labels.items())}": s.value
            for metric in m.registry.collect()
            if metric.name == "mebuku_ingest_lag_seconds"
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    expected = samples(one_by_one)
    got = samples(at_once)
    assert expected.keys() == got.keys()
    for k, v in expected.items():
        assert got[k] == pytest.approx(v), k
    assert got["mebuku_ingest_lag_seconds_count[]"] == len(ages)


def test_stream_labels() -> None:
    assert stream_of("maebashi/bus/v1/telemetry") == "telemetry"
    assert stream_of("maebashi/5g/site/dev/senml") == "senml"
    assert stream_of("maebashi/bus/telemetry") == "other"
    assert stream_of("elsewhere/bus/v1/telemetry") == "other"


# --- `mebuku ingest` as a real process -------------------------------------------------


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and that run multiprocessing's spawn_main."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmd:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def cli_env(settings: Settings, own_db: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEBUKU_DATABASE_URL": own_db,
        "MEBUKU_MQTT_URL": settings.mqtt_url or "",
        "MEBUKU_METRICS_PORT": "0",
        "MEBUKU_LOG_LEVEL": "INFO",
        "MEBUKU_LANG": "en",  # the log lines these tests read are the English ones
    }


def start_cli(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", "ingest", *args],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def test_cli_exits_1_when_its_writer_keeps_dying(cli_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "ingest.log"
    seg = uuid.uuid4().hex[:8]
    p = start_cli(cli_env, log, "--client-id", f"cli-{seg}", "--writer-restarts", "0")
    try:
        assert wait_until(lambda: "running" in log.read_text(), 60), log.read_text()
        (writer,) = children(p.pid)
        os.kill(writer, signal.SIGKILL)
        assert p.wait(30) == 1, log.read_text()
        assert "writer process died" in log.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_writer_exits_when_the_mqtt_process_is_killed(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    seg = uuid.uuid4().hex[:8]
    p = start_cli(cli_env, log, "--client-id", f"cli-{seg}")
    writer = 0
    try:
        assert wait_until(lambda: "running" in log.read_text(), 60), log.read_text()
        (writer,) = children(p.pid)
        p.kill()
        p.wait()
        assert wait_until(lambda: not alive(writer), 15), "the writer outlived its worker"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if writer and alive(writer):
            os.kill(writer, signal.SIGKILL)
