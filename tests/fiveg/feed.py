"""Feed sample sets through the real path: MQTT (QoS 1) -> `mebuku ingest` -> fiveg_radio.

The ingestor runs as a subprocess subscribed only to this test's own site
(``maebashi/5g/<site>/#``), so ingestors of other tests on the shared broker never mix in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from core.embedded import EmbeddedMosquitto
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY
from tests.support.wait import wait_until

RADIO_KEYS = (
    "rsrp_dbm", "rsrq_db", "sinr_db", "dl_mbps", "ul_mbps", "rtt_ms", "jitter_ms",
    "loss_pct", "cell_id", "pci", "band", "lat", "lon",
)  # fmt: skip


def radio_payload(row: dict[str, Any]) -> bytes:
    doc: dict[str, Any] = {"ts": row["ts"].astimezone(UTC).isoformat()}
    doc.update({k: row[k] for k in RADIO_KEYS if row.get(k) is not None})
    return json.dumps(doc).encode()


@contextmanager
def ingestor(db_url: str, broker: EmbeddedMosquitto, site: str) -> Iterator[None]:
    env = {
        **os.environ,
        "MEBUKU_DATABASE_URL": db_url,
        "MEBUKU_MQTT_URL": broker.url,
        "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        "MEBUKU_METRICS_PORT": "0",
    }
    group = f"fiveg{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "ingest", "--group", group,
         "--topic", f"maebashi/5g/{site}/#"],
        env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(broker: EmbeddedMosquitto) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fiveg-pub-{uuid.uuid4().hex[:8]}")
    host, port = broker.url.removeprefix("mqtt://").rsplit(":", 1)
    c.connect(host, int(port))
    c.loop_start()
    return c


def _count(db_url: str, sql: str, params: list[Any]) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


def publish_and_wait(
    db_url: str,
    broker: EmbeddedMosquitto,
    site: str,
    radio: list[dict[str, Any]],
    senml: list[tuple[str, list[dict[str, Any]]]] = (),  # type: ignore[assignment]
    timeout: float = 60.0,
) -> None:
    """Wait for the ingestor's subscription (a probe row lands), then publish everything
    with QoS 1 and wait until every row is queryable."""
    c = _client(broker)
    try:
        deadline = time.monotonic() + timeout
        probe = {"ts": datetime.now(UTC), "rsrp_dbm": -90.0}

        def probe_stored() -> bool:
            if _count(db_url, "SELECT count(*) FROM fiveg_radio WHERE device_id = 'probe'", []):
                return True
            c.publish(f"maebashi/5g/{site}/probe/radio", radio_payload(probe), qos=1)
            return False

        if not wait_until(probe_stored, timeout, every=0.3):
            raise TimeoutError("ingestor did not subscribe")
        infos = [
            c.publish(f"maebashi/5g/{site}/{r['device_id']}/radio", radio_payload(r), qos=1)
            for r in radio
        ]
        infos += [
            c.publish(f"maebashi/5g/{site}/{dev}/senml", json.dumps(pack).encode(), qos=1)
            for dev, pack in senml
        ]
        for i in infos:
            i.wait_for_publish(timeout=30)
        devices = sorted({r["device_id"] for r in radio})
        want_radio = len(radio)
        want_senml = sum(len(p) for _, p in senml)
        sensor_devs = sorted({d for d, _ in senml})

        def stored() -> tuple[int, int]:
            got = _count(
                db_url, "SELECT count(*) FROM fiveg_radio WHERE device_id = ANY(%s)", [devices]
            )
            got_s = _count(
                db_url, "SELECT count(*) FROM fiveg_sensor WHERE device_id = ANY(%s)", [sensor_devs]
            )
            return got, got_s

        def all_stored() -> bool:
            got, got_s = stored()
            return got >= want_radio and got_s >= want_senml

        if not wait_until(all_stored, max(0.0, deadline - time.monotonic()), every=0.2):
            got, got_s = stored()
            raise TimeoutError(f"only {got}/{want_radio} radio, {got_s}/{want_senml} senml")
    finally:
        c.loop_stop()
        c.disconnect()
