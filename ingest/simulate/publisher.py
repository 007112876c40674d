"""Publishing simulated messages over MQTT 5 at QoS 1, paced by simulated time or rate.

Keeps fewer than ``max_outstanding`` messages unacknowledged (paho queues the rest in
memory, and packet ids wrap at 65,535).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import MqttAddress
from ingest.simulate.messages import SimMessage


@dataclass
class PublishStats:
    """How many messages were sent and acknowledged, for the publisher's report."""

    published: int = 0
    acked: int = 0
    seconds: float = 0.0


class Publisher:
    """An MQTT 5 client that bounds unacknowledged messages, so a simulator in time warp
    cannot run unboundedly ahead of the broker (paho's own queue is left unlimited)."""

    def __init__(
        self,
        mqtt_addr: MqttAddress,
        client_id: str = "",
        qos: int = 1,
        max_outstanding: int = 5000,
    ) -> None:
        self.qos = qos
        self.max_outstanding = max_outstanding
        self.stats = PublishStats()
        self._cond = threading.Condition()
        self._connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if mqtt_addr.username:
            c.username_pw_set(mqtt_addr.username, mqtt_addr.password)
        if mqtt_addr.tls:
            c.tls_set()
        c.max_inflight_messages_set(min(max_outstanding, 65000))
        c.max_queued_messages_set(0)
        c.on_publish = self._on_publish
        c.on_connect = lambda *_a: self._connected.set()
        c.on_disconnect = lambda *_a: self._connected.clear()
        c.reconnect_delay_set(1, 5)
        self.client = c
        self.addr = mqtt_addr

    def _on_publish(self, *_a: Any) -> None:
        with self._cond:
            self.stats.acked += 1
            self._cond.notify_all()

    def __enter__(self) -> Publisher:
        self.client.connect(self.addr.host, self.addr.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(15):
            raise ConnectionError(f"no MQTT connection to {self.addr.host}:{self.addr.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.drain()
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> None:
        """Send one message, waiting first while too many are unacknowledged (QoS > 0)."""
        if self.qos > 0:
            with self._cond:
                while self.stats.published - self.stats.acked >= self.max_outstanding:
                    self._cond.wait(1.0)
        self.client.publish(topic, payload, qos=self.qos)
        self.stats.published += 1
        if self.qos == 0:
            self.stats.acked += 1

    def drain(self, timeout: float = 120) -> bool:
        """Wait until every message was acknowledged by the broker."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.stats.acked < self.stats.published:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    def run(
        self,
        msgs: Iterable[SimMessage],
        *,
        speed: float = 1.0,
        rate: float = 0.0,
        stop: threading.Event | None = None,
    ) -> PublishStats:
        """Publish ``msgs``; ``speed`` > 0 paces them by simulated time (1 = real time),
        ``rate`` > 0 caps messages per second; both 0 = as fast as possible."""
        t0 = time.monotonic()
        sim0: datetime | None = None
        for i, m in enumerate(msgs):
            if stop is not None and stop.is_set():
                break
            if speed > 0:
                sim0 = sim0 or m.ts
                due = t0 + (m.ts - sim0).total_seconds() / speed
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
            if rate > 0 and (wait := t0 + i / rate - time.monotonic()) > 0:
                time.sleep(wait)
            self.publish(m.topic, m.payload)
        self.stats.seconds = time.monotonic() - t0
        return self.stats
