"""The ingest worker: MQTT 5 persistent session in, batched idempotent writes out.

The paho network thread only enqueues. A writer thread takes batches (by size or time),
parses them, writes them in one transaction and only then acknowledges each message
(manual acks), in the order received. Memory stays flat during an outage: the broker
never has more than Receive Maximum unacknowledged QoS 1 messages out to us, and the
writer does not acknowledge while the database is away.

Messages received on an earlier connection are never acknowledged on a later one (their
packet ids may have been reused); the broker redelivers them and the idempotent insert
drops the copy.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.settings import MqttAddress
from ingest.metrics import IngestMetrics
from ingest.parse import parse_message
from ingest.rows import Reject, Rows
from ingest.writer import Item, WriteResult, classify, prepare, write_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    database_url: str
    mqtt: MqttAddress
    client_id: str
    group: str = "ingest"
    topic_filter: str = "maebashi/#"
    batch_size: int = 2000
    batch_wait: float = 0.1
    receive_maximum: int = 10000
    session_expiry: int = 7 * 24 * 3600
    keepalive: int = 30
    metrics_port: int = 0
    drain_timeout: float = 30.0

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{self.topic_filter}" if self.group else self.topic_filter


class Inbound(NamedTuple):
    topic: str
    payload: bytes
    mid: int
    qos: int
    received: float
    generation: int


def _stream(topic: str) -> str:
    parts = topic.split("/")
    return parts[-1] if parts[0] == "maebashi" and len(parts) in (4, 5) else "other"


def parse_item(m: Inbound) -> Item:
    try:
        parsed = parse_message(m.topic, m.payload, datetime.fromtimestamp(m.received, UTC))
    except Exception as e:  # a parser bug must not stop the pipeline
        log.exception("parser failed on %s", m.topic)
        parsed = Reject("parser_error", repr(e)[:200])
    return Item(m.topic, m.payload, parsed)


class IngestWorker:
    def __init__(self, cfg: WorkerConfig, metrics: IngestMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or IngestMetrics()
        # Never blocks the network thread (a blocked callback holds paho's callback lock,
        # which ack() may need). QoS 1 is bounded by Receive Maximum; QoS 0 beyond the
        # limit is dropped (at-most-once by definition), counted and logged.
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.qos0_limit = max(cfg.receive_maximum, 1) * 2
        self._gen = 0
        self._gen_lock = threading.Lock()
        self._draining = threading.Event()
        self._stopped = threading.Event()
        self.subscribed = threading.Event()  # set once the broker granted the subscription
        self._conn: psycopg.Connection | None = None
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self.client = self._make_client()
        self.totals = WriteResult()
        self.acked = 0

    # MQTT side (network thread) -------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        a = self.cfg.mqtt
        if a.username:
            c.username_pw_set(a.username, a.password)
        if a.tls:
            c.tls_set()
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        return c

    def _connect_properties(self) -> Properties:
        p = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        p.SessionExpiryInterval = self.cfg.session_expiry
        p.ReceiveMaximum = min(max(self.cfg.receive_maximum, 1), 65535)
        return p

    def _on_connect(self, c: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            log.error("broker refused connection: %s", rc)
            return
        self.metrics.connected.set(1)
        log.info(
            "connected to %s:%s as %s (session present: %s), subscribing %s",
            self.cfg.mqtt.host,
            self.cfg.mqtt.port,
            self.cfg.client_id,
            flags.session_present,
            self.cfg.subscription,
        )
        c.subscribe(self.cfg.subscription, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        if all(not rc.is_failure for rc in codes):
            self.subscribed.set()
        else:
            log.error("broker refused subscription %s: %s", self.cfg.subscription, codes)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._gen_lock:
            self._gen += 1
        self.subscribed.clear()
        self.metrics.connected.set(0)
        if not self._stopped.is_set():
            log.warning("disconnected from broker: %s (reconnecting)", rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self._draining.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        if msg.qos == 0 and self.inbox.qsize() >= self.qos0_limit:
            self.metrics.qos0_dropped.inc()
            log.warning("inbox full: dropping a QoS 0 message on %s (publish at QoS 1)", topic)
            return
        self.inbox.put(Inbound(topic, bytes(msg.payload), msg.mid, msg.qos, time.time(), self._gen))
        self.metrics.messages.labels(_stream(topic)).inc()

    # Database side (writer thread) -----------------------------------------------------

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.cfg.database_url, connect_timeout=5, application_name="mebuku-ingest"
            )
            prepare(self._conn)
        return self._conn

    def _drop_db(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _take(self) -> list[Inbound]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.cfg.batch_wait
        while len(batch) < self.cfg.batch_size:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0 or self._draining.is_set():
                    break
                try:
                    batch.append(self.inbox.get(timeout=min(left, 0.02)))
                except queue.Empty:
                    continue
        return batch

    def _store(self, items: list[Item]) -> WriteResult | None:
        """Write with retries; None if we gave up because the worker is stopping."""
        delay = 0.2
        give_up_at: float | None = None
        while True:
            try:
                return write_batch(self._db(), items)
            except Exception as e:
                if isinstance(e, psycopg.Error) and classify(e) == "split":
                    raise  # write_batch isolates these; reaching here is a bug
                self._drop_db()
                self.metrics.db_retries.inc()
                log.warning("database unavailable (%s); retrying in %.1fs", e, delay)
                if self._draining.is_set():
                    give_up_at = give_up_at or time.monotonic() + self.cfg.drain_timeout
                    if time.monotonic() > give_up_at:
                        return None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _write_loop(self) -> None:
        while not (self._draining.is_set() and self.inbox.empty()):
            batch = self._take()
            if not batch:
                continue
            t0 = time.perf_counter()
            items = [parse_item(m) for m in batch]
            try:
                res = self._store(items)
            except Exception:
                log.exception("unexpected error writing a batch; messages stay unacknowledged")
                self._drop_db()
                time.sleep(1)
                continue
            if res is None:
                log.warning("stopping with %d uncommitted messages (broker keeps them)", len(batch))
                break
            committed = time.time()
            self._ack(batch)
            self._observe(batch, items, res, time.perf_counter() - t0, committed)
        self._drop_db()

    def _ack(self, batch: list[Inbound]) -> None:
        with self._gen_lock:
            gen = self._gen
            for m in batch:
                if m.qos > 0 and m.generation == gen:
                    self.client.ack(m.mid, m.qos)
                    self.acked += 1
        self.metrics.acks.inc(len(batch))

    def _observe(
        self,
        batch: list[Inbound],
        items: list[Item],
        res: WriteResult,
        seconds: float,
        committed: float,
    ) -> None:
        m = self.metrics
        self.totals.add(res)
        m.batch_size.observe(len(batch))
        m.flush_seconds.observe(seconds)
        m.queue_depth.set(self.inbox.qsize())
        for table, n in res.inserted.items():
            m.rows.labels(table).inc(n)
        for table, n in res.duplicates.items():
            m.duplicates.labels(table).inc(n)
        for reason, n in res.rejects.items():
            m.rejects.labels(reason).inc(n)
        for it in items:
            if isinstance(it.parsed, Rows) and it.parsed.rows:
                ts = it.parsed.rows[0][it.parsed.table.columns.index("ts")]
                m.lag_seconds.observe(max(committed - ts.timestamp(), 0.0))

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.metrics.serve(self.cfg.metrics_port)
        self._writer.start()
        self.client.connect_async(
            self.cfg.mqtt.host,
            self.cfg.mqtt.port,
            keepalive=self.cfg.keepalive,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Flush what was received, acknowledge it, then disconnect."""
        self._draining.set()
        self._writer.join(self.cfg.drain_timeout + 10)
        self._stopped.set()
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
        log.info(
            "stopped: %d rows inserted, %d duplicates, %d rejects, %d acks",
            sum(self.totals.inserted.values()),
            sum(self.totals.duplicates.values()),
            sum(self.totals.rejects.values()),
            self.acked,
        )
