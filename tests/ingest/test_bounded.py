"""Bounded resources: 10 MB payloads during a 30 s database outage keep memory flat.

The real `mebuku ingest` process, its own PostgreSQL and a Mosquitto that lets 10 MB
packets through (the production broker refuses them with max_packet_size; this proves
the ingestor's own limit). The RSS of the worker and its writer process is read from
/proc while thirty 10 MB
payloads and 300 valid messages arrive with the database stopped: before the limit it
held every payload (about 300 MB more); now each is cut to a 4 KiB stub on arrival.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from core import migrator
from core.db import create_database
from core.embedded import EmbeddedMosquitto, EmbeddedPostgres, server_dir
from core.settings import parse_mqtt_url
from ingest.simulate.publisher import Publisher
from tests.conftest import make_settings
from tests.ingest.helpers import wait_until

pytestmark = pytest.mark.slow

BIG = 10 * 1024 * 1024


@pytest.fixture
def pg() -> Iterator[EmbeddedPostgres]:
    root = server_dir("mebuku-bounded-pg-")
    server = EmbeddedPostgres(root)
    try:
        server.start()
        create_database(server.url(), "ingest")
        migrator.migrate(server.url("ingest"), make_settings(server.url("ingest")))
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker() -> Iterator[EmbeddedMosquitto]:
    root = server_dir("mebuku-bounded-mqtt-")
    b = EmbeddedMosquitto(root, max_payload_bytes=4 * BIG)  # lets 10 MB packets through
    try:
        b.start()
        yield b
    finally:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


def rss_mb(pid: int) -> float:
    """RSS of the worker plus its writer process (parse + COPY), which holds batches too."""
    return sum(_rss_mb(p) for p in [pid, *writer_processes(pid)])


def _rss_mb(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0  # a writer that just exited
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def writer_processes(pid: int) -> list[int]:
    """Children of ``pid`` started by multiprocessing's spawn (the writer process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmd:
                found.append(int(entry.name))
    return found


def count(url: str, sql: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as c:
            row = c.execute(sql).fetchone()
        return int(row[0]) if row else 0
    except psycopg.OperationalError:
        return -1


def telemetry(i: int) -> bytes:
    ts = datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=i)
    return json.dumps(
        {"ts": int(ts.timestamp() * 1000), "seq": i, "lat": 36.39, "lon": 139.06}
    ).encode()


def test_10mb_payloads_during_outage_keep_memory_flat(pg, broker, tmp_path: Path):
    db = pg.url("ingest")
    env = {
        **os.environ,
        "MEBUKU_DATABASE_URL": db,
        "MEBUKU_MQTT_URL": broker.url,
        "MEBUKU_METRICS_PORT": "0",
        "MEBUKU_LOG_FORMAT": "json",
    }
    log = tmp_path / "ingest.log"
    cmd = [sys.executable, "-m", "core.cli", "ingest", "--client-id", "bounded-test"]
    with log.open("ab") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        addr = parse_mqtt_url(broker.url)
        with Publisher(addr) as pub:  # warm up: the subscription is live once one lands
            for i in range(60):
                pub.publish("maebashi/bus/mem/telemetry", telemetry(100_000 + i))
                if wait_until(lambda: count(db, "SELECT count(*) FROM bus_telemetry") > 0, 1):
                    break
        assert len(writer_processes(proc.pid)) == 1
        baseline = rss_mb(proc.pid)
        peak = [baseline]
        sampling = threading.Event()

        def sample() -> None:
            while True:
                peak[0] = max(peak[0], rss_mb(proc.pid))
                if sampling.wait(0.1):  # until told to stop, every 0.1 s
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        bigs = [bytes([k]) * 16 + os.urandom(1024) + b"x" * (BIG - 1040) for k in range(30)]
        pg.stop()
        t_down = time.monotonic()
        try:
            with Publisher(addr, max_outstanding=64) as pub:
                for i in range(300):
                    pub.publish("maebashi/bus/mem/telemetry", telemetry(i))
                    if i % 10 == 0:
                        pub.publish("maebashi/bus/mem/telemetry", bigs[i // 10])
                assert pub.drain(120)
            time.sleep(max(0.0, 30 - (time.monotonic() - t_down)))  # the outage lasts 30 s
            assert proc.poll() is None, log.read_text()[-2000:]
        finally:
            pg.start()
        valid = "SELECT count(*) FROM bus_telemetry WHERE seq < 100000"
        assert wait_until(lambda: count(db, valid) == 300, 90), count(db, valid)
        too_large = "SELECT count(*) FROM ingest_rejects WHERE reason LIKE 'too_large:%'"
        assert wait_until(lambda: count(db, too_large) == 30, 30), count(db, too_large)
        sampling.set()
        sampler.join()
        growth = peak[0] - baseline
        print(f"worker + writer RSS: {baseline:.0f} MB, peak {peak[0]:.0f} MB (+{growth:.0f} MB)")
        # thirty payloads held would be +300 MB; one in flight (paho's read buffer as it
        # grows, the payload, a copy) is the most the worker may hold at a time: +50 MB
        # measured, the bound leaves room for allocator slack on a loaded machine
        assert growth < 120, f"RSS grew {growth:.0f} MB (baseline {baseline:.0f} MB)"
        with psycopg.connect(db) as c:
            rows = c.execute(
                "SELECT payload, payload_sha256, payload_size, reason FROM ingest_rejects"
                " WHERE reason LIKE 'too_large:%'"
            ).fetchall()
        digests = {hashlib.sha256(b).digest(): b for b in bigs}
        for payload, sha, size, reason in rows:
            assert size == BIG and len(payload) == 4096
            assert digests[sha][:4096] == payload
            assert f"{BIG} bytes exceeds 262144" in reason
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(60)
