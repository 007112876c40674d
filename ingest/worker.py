"""The ingest worker: MQTT 5 persistent session in, batched idempotent writes out.

The paho network thread only enqueues. A writer thread takes batches (by size or time),
parses them, writes them in one transaction and only then acknowledges each message
(manual acks), in the order received. Memory stays flat during an outage: payloads above
the size limit are cut to a 4 KiB stub on arrival, the broker never has more than Receive
Maximum unacknowledged QoS 1 messages out to us, and the network thread waits while the
unacknowledged payload bytes are over their budget.

Failures are retried only while they look like an outage; a batch that keeps failing
while the database answers a health query is split down to the message that breaks it
(``ingest/writer.py``). A heartbeat thread records, on its own connection, how old the
oldest unacknowledged message is and when the last commit was, so a stall is visible in
``/healthz``, Prometheus and the API's ``/readyz``.

Messages received on an earlier connection are never acknowledged on a later one (their
packet ids may have been reused); the broker redelivers them and the idempotent insert
drops the copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
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
from ingest.fields import Limits
from ingest.metrics import IngestMetrics
from ingest.parse import parse_message
from ingest.rows import Reject, Rows
from ingest.writer import (
    PAYLOAD_PREFIX,
    Item,
    WriteResult,
    classify,
    describe,
    prepare,
    write_batch,
)

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
    # issue 10: payload bound, backlog byte budget, poison budget, stall window
    max_payload_bytes: int = 262_144
    max_backlog_bytes: int = 64 * 1024 * 1024
    poison_retries: int = 5
    stall_seconds: float = 60.0
    heartbeat_interval: float = 5.0
    # What the parser accepts (times within retention and skew); `mebuku ingest` passes
    # Limits.from_settings. The bare default bounds the past at 2000 only (replays).
    limits: Limits = field(default_factory=Limits)

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{self.topic_filter}" if self.group else self.topic_filter


class Inbound(NamedTuple):
    topic: str
    payload: bytes  # the first PAYLOAD_PREFIX bytes when the payload was over the limit
    mid: int
    qos: int
    received: float
    generation: int
    size: int  # of the whole payload
    sha256: bytes | None = None  # of the whole payload, set only when it was cut


@dataclass(frozen=True)
class Status:
    """What the health endpoint, the gauges and the heartbeat report."""

    waiting: int
    oldest_unacked: float  # seconds; 0 when nothing waits
    since_commit: float
    db_reachable: bool
    stalled: bool
    reason: str


def _stream(topic: str) -> str:
    parts = topic.split("/")
    return parts[-1] if parts[0] == "maebashi" and len(parts) in (4, 5) else "other"


def parse_item(m: Inbound, max_payload: int = 262_144, limits: Limits | None = None) -> Item:
    if m.sha256 is not None:  # cut on arrival: never parsed, only its size and digest kept
        detail = (
            f"payload of {m.size} bytes exceeds {max_payload} (MEBUKU_INGEST_MAX_PAYLOAD_BYTES)"
        )
        return Item(m.topic, m.payload, Reject("too_large", detail), m.size, m.sha256)
    try:
        parsed = parse_message(
            m.topic, m.payload, datetime.fromtimestamp(m.received, UTC), limits=limits or Limits()
        )
    except Exception as e:  # a parser bug must not stop the pipeline
        log.exception("parser failed on %s", m.topic)
        parsed = Reject("parser_error", repr(e)[:200])
    return Item(m.topic, m.payload, parsed)


class IngestWorker:
    def __init__(self, cfg: WorkerConfig, metrics: IngestMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or IngestMetrics()
        # QoS 1 is bounded by Receive Maximum; QoS 0 beyond the limit is dropped
        # (at-most-once by definition), counted and logged.
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.qos0_limit = max(cfg.receive_maximum, 1) * 2
        # Payload bytes received and not yet acknowledged. Over budget, the network
        # thread waits for the writer, at most half a keepalive per message so pings go
        # out (ack() from the writer only queues the PUBACK: no lock is held against it).
        self._backlog_bytes = 0
        self._backlog_cond = threading.Condition(threading.Lock())
        self._stream_counters: dict[str, Any] = {}  # labels() lookups cost on the hot path
        self._batch_first: float | None = None  # receipt time of the batch being written
        self._batch_len = 0
        self._started_at = time.time()
        self._last_commit = self._started_at
        self._db_reachable = True
        self._http: Any = None
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="ingest-heartbeat", daemon=True
        )
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
        payload = msg.payload
        size = len(payload)
        if size > self.cfg.max_payload_bytes:
            # keep 4 KiB and the digest, drop the rest now: it is never parsed or stored
            m = Inbound(
                topic,
                bytes(payload[:PAYLOAD_PREFIX]),
                msg.mid,
                msg.qos,
                time.time(),
                self._gen,
                size,
                hashlib.sha256(payload).digest(),
            )
        else:
            m = Inbound(topic, bytes(payload), msg.mid, msg.qos, time.time(), self._gen, size)
        self._reserve(len(m.payload))
        self.inbox.put(m)
        stream = _stream(topic)
        counter = self._stream_counters.get(stream)
        if counter is None:
            counter = self._stream_counters[stream] = self.metrics.messages.labels(stream)
        counter.inc()

    def _reserve(self, n: int) -> None:
        """Count ``n`` backlog bytes; wait first while over budget (bounded, see __init__)."""
        with self._backlog_cond:
            if self._backlog_bytes and self._backlog_bytes + n > self.cfg.max_backlog_bytes:
                t0 = time.monotonic()
                self._backlog_cond.wait_for(
                    lambda: (
                        self._backlog_bytes + n <= self.cfg.max_backlog_bytes
                        or self._draining.is_set()
                    ),
                    timeout=max(self.cfg.keepalive / 2, 1.0),
                )
                self.metrics.backpressure_seconds.inc(time.monotonic() - t0)
            self._backlog_bytes += n

    def _release(self, n: int) -> None:
        with self._backlog_cond:
            self._backlog_bytes -= n
            self._backlog_cond.notify_all()

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

    def db_healthy(self) -> bool:
        """The health query: a fresh connection answers and our tables are there.

        A batch that keeps failing while this is true is poison, not an outage. The
        tables are part of it so that a database not migrated yet is waited for, not
        mistaken for bad messages.
        """
        try:
            with psycopg.connect(self.cfg.database_url, connect_timeout=3, autocommit=True) as c:
                row = c.execute(
                    "SELECT to_regclass('bus_telemetry') IS NOT NULL"
                    " AND to_regclass('bus_events') IS NOT NULL"
                    " AND to_regclass('fiveg_radio') IS NOT NULL"
                    " AND to_regclass('fiveg_sensor') IS NOT NULL"
                    " AND to_regclass('ingest_rejects') IS NOT NULL"
                ).fetchone()
            ok = bool(row and row[0])
        except Exception:
            ok = False
        self._db_reachable = ok
        return ok

    def _store(self, items: list[Item]) -> WriteResult | None:
        """Write with retries; None if we gave up because the worker is stopping.

        After ``poison_retries`` failures while the database answers, the batch is
        written in poison mode: every failure splits it, down to the message to reject.
        """
        delay = 0.2
        strikes = 0
        give_up_at: float | None = None
        while True:
            poison = strikes >= self.cfg.poison_retries
            if poison:
                self.metrics.poison_batches.inc()
                log.error(
                    "a batch of %d messages failed %d times while the database answers: "
                    "splitting it to find the message that breaks it",
                    len(items),
                    strikes,
                )
            try:
                res = write_batch(self._db, items, poison=poison, healthy=self.db_healthy)
                self._db_reachable = True
                return res
            except Exception as e:
                self._drop_db()
                self.metrics.db_retries.inc()
                if poison:
                    strikes = 0  # the database went away mid-split: start counting again
                if classify(e) == "retry" and not self.db_healthy():
                    log.warning("database unavailable (%s); retrying in %.1fs", describe(e), delay)
                else:
                    strikes += 1
                    log.warning(
                        "batch of %d failed while the database answers (%s); attempt %d of %d "
                        "before splitting it",
                        len(items),
                        describe(e),
                        strikes,
                        self.cfg.poison_retries,
                    )
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
            self._batch_first, self._batch_len = batch[0].received, len(batch)
            t0 = time.perf_counter()
            try:
                items = [parse_item(m, self.cfg.max_payload_bytes, self.cfg.limits) for m in batch]
                res = self._store(items)
            except Exception:  # only a bug gets here: _store retries or splits everything
                log.exception("unexpected error writing a batch; messages stay unacknowledged")
                self._drop_db()
                time.sleep(1)
                self._requeue(batch)
                continue
            if res is None:
                log.warning("stopping with %d uncommitted messages (broker keeps them)", len(batch))
                break
            committed = time.time()
            self._last_commit = committed
            self._ack(batch)
            self._batch_first, self._batch_len = None, 0
            self._release(sum(len(m.payload) for m in batch))
            self._observe(batch, items, res, time.perf_counter() - t0, committed)
        self._drop_db()

    def _requeue(self, batch: list[Inbound]) -> None:
        """Put a batch back in front of the inbox (kept in order, still unacknowledged)."""
        with self.inbox.mutex:
            self.inbox.queue.extendleft(reversed(batch))
            self.inbox.not_empty.notify()

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

    # Stall detection ----------------------------------------------------------------------

    def status(self) -> Status:
        now = time.time()
        first = self._batch_first
        if first is None:
            with self.inbox.mutex:
                first = self.inbox.queue[0].received if self.inbox.queue else None
        waiting = self.inbox.qsize() + self._batch_len
        oldest = max(now - first, 0.0) if first is not None else 0.0
        since = max(now - self._last_commit, 0.0)
        quiet = min(oldest, since)
        stalled = waiting > 0 and quiet > self.cfg.stall_seconds and self._db_reachable
        if stalled:
            reason = (
                f"{waiting} messages waiting, the oldest for {oldest:.0f} s, and nothing "
                f"committed for {since:.0f} s while the database answers"
            )
        elif not self._db_reachable:
            reason = "database unreachable: messages wait at the broker until it is back"
        else:
            reason = "ok"
        return Status(waiting, oldest, since, self._db_reachable, stalled, reason)

    def health(self) -> tuple[int, dict[str, Any]]:
        """GET /healthz: 503 only when stalled (a database outage is not the worker's fault)."""
        st = self.status()
        body = {
            "status": "stalled" if st.stalled else "ok",
            "reason": st.reason,
            "waiting": st.waiting,
            "oldest_unacked_seconds": round(st.oldest_unacked, 3),
            "seconds_since_commit": round(st.since_commit, 3),
            "database_reachable": st.db_reachable,
            "mqtt_connected": self.client.is_connected(),
            "stall_seconds": self.cfg.stall_seconds,
        }
        return (503 if st.stalled else 200), body

    def _heartbeat_loop(self) -> None:
        """Gauges every second; a heartbeat row every ``heartbeat_interval`` seconds."""
        conn: psycopg.Connection | None = None
        next_beat = 0.0
        while not self._stopped.is_set():
            st = self.status()
            m = self.metrics
            m.oldest_unacked.set(st.oldest_unacked)
            m.since_commit.set(st.since_commit)
            m.waiting.set(st.waiting)
            m.backlog_bytes.set(self._backlog_bytes)
            m.stalled.set(1 if st.stalled else 0)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.cfg.heartbeat_interval
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(
                            self.cfg.database_url,
                            connect_timeout=3,
                            autocommit=True,
                            application_name="mebuku-ingest-heartbeat",
                            options="-c statement_timeout=5000 -c lock_timeout=2000",
                        )
                    self._beat(conn, st)
                    self._db_reachable = True
                except Exception as e:
                    log.debug("heartbeat not written: %s", e)
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    conn = None
                    if classify(e) == "retry":
                        self._db_reachable = False
            self._stopped.wait(min(1.0, self.cfg.heartbeat_interval))
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.execute(
                    "DELETE FROM ingest_heartbeat WHERE worker_id = %s", [self.cfg.client_id]
                )
                conn.close()

    def _beat(self, conn: psycopg.Connection, st: Status) -> None:
        conn.execute(
            "INSERT INTO ingest_heartbeat (worker_id, updated_at, started_at, last_commit_at,"
            " oldest_unacked_s, waiting, stalled, stall_seconds, reason)"
            " VALUES (%s, now(), to_timestamp(%s), to_timestamp(%s), %s, %s, %s, %s, %s)"
            " ON CONFLICT (worker_id) DO UPDATE SET updated_at = now(),"
            " started_at = EXCLUDED.started_at, last_commit_at = EXCLUDED.last_commit_at,"
            " oldest_unacked_s = EXCLUDED.oldest_unacked_s, waiting = EXCLUDED.waiting,"
            " stalled = EXCLUDED.stalled, stall_seconds = EXCLUDED.stall_seconds,"
            " reason = EXCLUDED.reason",
            [
                self.cfg.client_id,
                self._started_at,
                self._last_commit,
                st.oldest_unacked,
                st.waiting,
                st.stalled,
                self.cfg.stall_seconds,
                f"{st.reason} (host {socket.gethostname()})",
            ],
        )

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._http = self.metrics.serve(self.cfg.metrics_port, self.health)
        self._writer.start()
        self._heartbeat.start()
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
        with self._backlog_cond:
            self._backlog_cond.notify_all()
        self._writer.join(self.cfg.drain_timeout + 10)
        self._stopped.set()
        self._heartbeat.join(10)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
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
