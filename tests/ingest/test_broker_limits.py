"""The broker bounds payloads: a real Mosquitto started with the configuration the demo
and the tests use refuses a 10 MB publish (it disconnects the sender and forwards
nothing), while a payload at the limit and normal traffic on other connections go on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.embedded import EmbeddedMosquitto, mqtt_max_packet_size, server_dir
from tests.conftest import REPO_ROOT
from tests.ingest.helpers import wait_until

LIMIT = 262144  # MEBUKU_INGEST_MAX_PAYLOAD_BYTES default
TOPIC = "maebashi/bus/av-01/telemetry"


@pytest.fixture
def broker() -> Iterator[EmbeddedMosquitto]:
    root = server_dir("mebuku-limit-mqtt-")
    b = EmbeddedMosquitto(root, max_payload_bytes=LIMIT)
    try:  # stopped even when start() fails half-way
        b.start()
        yield b
    finally:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


class Client:
    """A paho client that records its CONNACK, disconnects and received messages."""

    def __init__(self, b: EmbeddedMosquitto, protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> None:
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack: Any = None
        self.received: list[tuple[str, int]] = []
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"lim-{uuid.uuid4().hex[:8]}", protocol=protocol
        )
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *_a: self.disconnected.set()
        self.c.on_message = lambda _c, _u, m: self.received.append((m.topic, len(m.payload)))
        self.c.reconnect_delay_set(60, 120)  # no quick reconnect hiding the disconnect
        self.c.connect("127.0.0.1", b.port)
        self.c.loop_start()
        assert self.connected.wait(10), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, _rc: Any, props: Any) -> None:
        self.connack = props
        self.connected.set()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_ten_megabyte_publish_is_refused_and_traffic_goes_on(broker: EmbeddedMosquitto) -> None:
    sub = Client(broker)
    subscribed = threading.Event()
    sub.c.on_subscribe = lambda *_a: subscribed.set()
    sub.c.subscribe("maebashi/#", qos=1)
    assert subscribed.wait(10)
    try:
        for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
            big = Client(broker, protocol)
            if protocol == mqtt.MQTTv5:  # MQTT 5 clients are told the limit in CONNACK
                assert big.connack.MaximumPacketSize == mqtt_max_packet_size(LIMIT)
            info = big.c.publish(TOPIC, b"x" * 10_000_000, qos=1)
            assert big.disconnected.wait(30), "the broker kept a client sending 10 MB"
            assert not info.is_published()  # never acknowledged
            big.close()
        assert "disconnected due to oversize packet" in broker.log_file.read_text()

        ok = Client(broker)  # another connection: the broker is fine
        ok.c.publish(TOPIC, b"y" * LIMIT, qos=1).wait_for_publish(10)  # at the limit: passes
        ok.c.publish(TOPIC, b'{"small": 1}', qos=1).wait_for_publish(10)
        assert wait_until(lambda: len(sub.received) >= 2, 10), sub.received
        ok.close()
        assert sorted(n for _, n in sub.received) == [12, LIMIT]  # the 10 MB never arrived
        assert broker.running
    finally:
        sub.close()


def test_compose_broker_gets_the_same_packet_limit(tmp_path: Path) -> None:
    """deploy/mosquitto/entrypoint.sh appends max_packet_size from the environment with
    the same headroom as the embedded broker."""
    script = (REPO_ROOT / "deploy" / "mosquitto" / "entrypoint.sh").read_text()
    (line,) = [ln for ln in script.splitlines() if "max_packet_size" in ln and "echo" in ln]
    conf = tmp_path / "mosquitto.conf"
    line = re.sub(r">> \S+$", f">> {conf}", line)
    for env, limit in (({}, LIMIT), ({"MEBUKU_INGEST_MAX_PAYLOAD_BYTES": "65536"}, 65536)):
        conf.write_text("")
        base = {k: v for k, v in os.environ.items() if k != "MEBUKU_INGEST_MAX_PAYLOAD_BYTES"}
        subprocess.run(["sh", "-c", line], check=True, env={**base, **env})
        assert conf.read_text() == f"max_packet_size {mqtt_max_packet_size(limit)}\n"
