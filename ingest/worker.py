"""The ingest worker: MQTT 5 persistent session in, batched idempotent writes out.

Two processes. This one runs paho's network loop, whose callback only notes each message
(a deque append); a dispatcher thread hands batches (by size or time) to the writer
process (``ingest/pipeline.py``), which parses them and writes each in one transaction,
and acknowledges a batch's messages (manual acks, in the order received) only when the
writer reports its commit. Parsing and COPY never hold this process's GIL, so the network
loop runs close to a bare consumer's speed. A writer that dies is started again and gets
every unacknowledged batch again (ON CONFLICT drops what had committed); one that keeps
dying makes the worker fail (``failed``, ``/healthz`` 503, ``mebuku ingest`` exits 1).

Memory stays flat during an outage: payloads above the size limit are cut to a 4 KiB stub
on arrival, the broker never has more than Receive Maximum unacknowledged QoS 1 messages
out to us, and the network thread waits while the unacknowledged payload bytes are over
their budget.

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
import multiprocessing as mp
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.i18n import L_
from core.i18n import cli_gettext as _
from core.settings import MqttAddress
from ingest.fields import Limits
from ingest.metrics import IngestMetrics
from ingest.pipeline import (
    GENERATION,
    MID,
    PAYLOAD,
    QOS,
    RECEIVED,
    Inbound,
    LogSetup,
    RawInbound,
    StoreConfig,
    Summary,
    parse_item,
    serve,
)
from ingest.writer import PAYLOAD_PREFIX, WriteResult, classify

__all__ = ["Inbound", "IngestWorker", "Status", "WorkerConfig", "parse_item"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything one worker process needs, so `mebuku ingest`, tests and benchmarks start
    the same worker with their own addresses and bounds."""

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
    # The writer process dying this many times in a row (no commit in between) makes
    # the worker fail instead of restarting it again.
    writer_restarts: int = 5
    # What the parser accepts (times within retention and skew); `mebuku ingest` passes
    # Limits.from_settings. The bare default bounds the past at 2000 only (replays).
    limits: Limits = field(default_factory=Limits)

    @property
    def subscription(self) -> str:
        """The topic to subscribe to: a shared subscription when grouped, so several
        workers split the stream instead of each writing every message."""
        return f"$share/{self.group}/{self.topic_filter}" if self.group else self.topic_filter


@dataclass(frozen=True)
class Status:
    """What the health endpoint, the gauges and the heartbeat report."""

    waiting: int
    oldest_unacked: float  # seconds; 0 when nothing waits
    since_commit: float
    db_reachable: bool
    stalled: bool
    reason: str


# Batches handed to the writer and not yet reported committed: one being written, one
# waiting in the pipe, so the writer never idles while the network loop gathers the next.
WRITER_WINDOW = 2


class IngestWorker:
    """One ingest worker: the MQTT process's side (paho, dispatcher, acks, health) and
    the writer process it starts and supervises."""

    def __init__(self, cfg: WorkerConfig, metrics: IngestMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or IngestMetrics()
        # Received, not yet handed to the writer. The network thread appends, the
        # dispatcher pops (deque operations are atomic: no lock on the hot path).
        # QoS 1 is bounded by Receive Maximum; QoS 0 beyond the limit is dropped
        # (at-most-once by definition), counted and logged.
        self.pending: deque[RawInbound] = deque()
        self.qos0_limit = max(cfg.receive_maximum, 1) * 2
        # Handed to the writer, not yet committed: (seq, batch), oldest first.
        self._inflight: deque[tuple[int, list[RawInbound]]] = deque()
        self._inflight_msgs = 0
        self._seq = 0
        # Payload bytes received and not yet acknowledged = received - released; each
        # counter has one writing thread. Over budget, the network thread waits for the
        # dispatcher, at most half a keepalive per message so pings go out.
        self._received_bytes = 0
        self._released_bytes = 0
        self._budget = threading.Condition(threading.Lock())
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
        self.failed = threading.Event()  # the writer process kept dying: stop, exit 1
        self._gave_up = False
        self._mp = mp.get_context("spawn")  # the writer inherits no socket or thread
        self._stopping = self._mp.Event()  # tells the writer to stop retrying soon
        self._proc: BaseProcess | None = None
        self._to_writer: Connection | None = None
        self._from_writer: Connection | None = None
        self._crashes = 0  # writer deaths since its last commit
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="ingest-dispatch", daemon=True
        )
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
            log.error(L_("broker refused connection: %s"), rc)
            return
        self.metrics.connected.set(1)
        log.info(
            L_("connected to %s:%s as %s (session present: %s), subscribing %s"),
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
            log.error(L_("broker refused subscription %s: %s"), self.cfg.subscription, codes)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self._gen_lock:
            self._gen += 1
        self.subscribed.clear()
        self.metrics.connected.set(0)
        if not self._stopped.is_set():
            log.warning(L_("disconnected from broker: %s (reconnecting)"), rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self._draining.is_set():
            return  # not acknowledged: the broker redelivers it to the next session
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        qos = msg.qos
        if qos == 0 and len(self.pending) + self._inflight_msgs >= self.qos0_limit:
            self.metrics.qos0_dropped.inc()
            log.warning(L_("inbox full: dropping a QoS 0 message on %s (publish at QoS 1)"), topic)
            return
        payload = msg.payload
        size = len(payload)
        if size > self.cfg.max_payload_bytes:
            # keep 4 KiB and the digest, drop the rest now: it is never parsed or stored
            digest = hashlib.sha256(payload).digest()
            payload, n = bytes(payload[:PAYLOAD_PREFIX]), PAYLOAD_PREFIX
        else:
            payload, n, digest = bytes(payload), size, None
        if self._received_bytes - self._released_bytes + n > self.cfg.max_backlog_bytes:
            self._wait_for_budget(n)
        self._received_bytes += n
        self.pending.append((topic, payload, msg.mid, qos, time.time(), self._gen, size, digest))

    @property
    def _backlog_bytes(self) -> int:
        """Payload bytes received and not yet acknowledged."""
        return self._received_bytes - self._released_bytes

    def _wait_for_budget(self, n: int) -> None:
        """Wait while ``n`` more bytes would exceed the budget (bounded, see __init__)."""
        if not self._backlog_bytes:
            return  # always let one message in, however large
        t0 = time.monotonic()
        with self._budget:
            self._budget.wait_for(
                lambda: (
                    self._backlog_bytes + n <= self.cfg.max_backlog_bytes or self._draining.is_set()
                ),
                timeout=max(self.cfg.keepalive / 2, 1.0),
            )
        self.metrics.backpressure_seconds.inc(time.monotonic() - t0)

    def _release(self, n: int) -> None:
        self._released_bytes += n
        with self._budget:
            self._budget.notify_all()

    # Writer process (dispatcher thread) --------------------------------------------------

    def _store_config(self) -> StoreConfig:
        c = self.cfg
        return StoreConfig(
            database_url=c.database_url,
            max_payload_bytes=c.max_payload_bytes,
            poison_retries=c.poison_retries,
            drain_timeout=c.drain_timeout,
            limits=c.limits,
            log=LogSetup.of_this_process(),
        )

    def _start_writer(self) -> None:
        """Start the writer process and wait until it is ready for batches."""
        to_r, to_w = self._mp.Pipe(duplex=False)
        from_r, from_w = self._mp.Pipe(duplex=False)
        proc = self._mp.Process(
            target=serve,
            args=(to_r, from_w, self._store_config(), self._stopping),
            name="mebuku-ingest-writer",
            daemon=True,
        )
        proc.start()
        to_r.close()
        from_w.close()
        self._proc, self._to_writer, self._from_writer = proc, to_w, from_r
        try:
            ready = from_r.poll(60) and from_r.recv() == ("ready",)
        except (EOFError, OSError):
            ready = False
        if not ready:
            proc.join(1)
            raise RuntimeError(
                f"the ingest writer process did not start (exit code {proc.exitcode})"
            )

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (for operators and tests)."""
        return self._proc.pid if self._proc is not None else None

    def _dispatch_loop(self) -> None:
        try:
            while not self._finished():
                self._send_batches()
                self._wait_writer(min(self.cfg.batch_wait, 0.02))
        except Exception:  # only a bug gets here
            log.exception(L_("ingest dispatcher failed; messages stay unacknowledged"))
            self.failed.set()
        finally:
            self._stop_writer()

    def _finished(self) -> bool:
        if self.failed.is_set() or self._gave_up:
            return True
        return self._draining.is_set() and not self.pending and not self._inflight

    def _due(self) -> bool:
        """Whether the pending messages make a batch now (full, old enough, or stopping)."""
        p = self.pending
        if not p:
            return False
        if len(p) >= self.cfg.batch_size or self._draining.is_set():
            return True
        return time.time() - p[0][RECEIVED] >= self.cfg.batch_wait

    def _send_batches(self) -> None:
        while len(self._inflight) < WRITER_WINDOW and self._due():
            n = min(self.cfg.batch_size, len(self.pending))
            pop = self.pending.popleft
            batch = [pop() for _ in range(n)]
            self._seq += 1
            self._inflight.append((self._seq, batch))
            self._inflight_msgs += n
            assert self._to_writer is not None
            try:
                self._to_writer.send((self._seq, batch))
            except OSError:
                return  # the writer died: _wait_writer restarts it and sends this again

    def _wait_writer(self, timeout: float) -> None:
        """Handle what the writer reported; restart it if it died."""
        assert self._from_writer is not None and self._proc is not None
        ready = wait([self._from_writer, self._proc.sentinel], timeout)
        if not ready:
            return
        try:
            while self._from_writer.poll():
                self._on_report(self._from_writer.recv())
        except (EOFError, OSError):
            pass
        if self._gave_up:
            return  # the writer stopped on its own: it could not reach the database in time
        if self._proc.sentinel in ready or not self._proc.is_alive():
            self._writer_died()

    def _on_report(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "done":
            seq, batch = self._inflight.popleft()
            if seq != msg[1]:  # cannot happen: the writer reports in order
                raise RuntimeError(f"writer reported batch {msg[1]}, expected {seq}")
            self._committed(batch, msg[2])
        elif kind == "db":
            self._db_reachable = bool(msg[1])
        elif kind == "gave_up":
            log.warning(
                L_("stopping with %d uncommitted messages (broker keeps them)"),
                len(self.pending) + self._inflight_msgs,
            )
            self._gave_up = True

    def _writer_died(self) -> None:
        """Start a new writer and send it every unacknowledged batch, or fail."""
        assert self._proc is not None
        self._proc.join(5)
        code = self._proc.exitcode
        self._crashes += 1
        self.metrics.writer_restarts.inc()
        if self._draining.is_set() or self._crashes > self.cfg.writer_restarts:
            log.error(
                L_(
                    "the ingest writer process died (exit code %s), %d times without a commit "
                    "in between: stopping; %d messages stay unacknowledged at the broker"
                ),
                code,
                self._crashes,
                len(self.pending) + self._inflight_msgs,
            )
            self.failed.set()
            return
        log.error(
            L_(
                "the ingest writer process died (exit code %s); starting a new one and sending "
                "it the %d unacknowledged batches again"
            ),
            code,
            len(self._inflight),
        )
        for conn in (self._to_writer, self._from_writer):
            if conn is not None:
                conn.close()
        time.sleep(min(0.5 * 2 ** (self._crashes - 1), 10.0))
        self._start_writer()
        assert self._to_writer is not None
        for seq, batch in self._inflight:
            self._to_writer.send((seq, batch))

    def _stop_writer(self) -> None:
        """Ask the writer to finish (the batches before this are done) and wait for it."""
        if self._proc is None or self._to_writer is None:
            return
        with contextlib.suppress(OSError):
            self._to_writer.send(None)
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._to_writer.close()
        if self._from_writer is not None:
            self._from_writer.close()

    def _committed(self, batch: list[RawInbound], s: Summary) -> None:
        """A batch's transaction committed: acknowledge its messages, then count."""
        self._last_commit = s.committed
        self._crashes = 0
        self._db_reachable = True
        self._ack(batch)
        self._inflight_msgs -= len(batch)
        self._release(sum(len(m[PAYLOAD]) for m in batch))
        self._observe(len(batch), s)

    def _ack(self, batch: list[RawInbound]) -> None:
        ack = self.client.ack
        with self._gen_lock:
            gen = self._gen
            for m in batch:
                if m[QOS] > 0 and m[GENERATION] == gen:
                    ack(m[MID], m[QOS])
                    self.acked += 1
        self.metrics.acks.inc(len(batch))

    def _observe(self, n: int, s: Summary) -> None:
        m = self.metrics
        res = s.result
        self.totals.add(res)
        m.batch_size.observe(n)
        m.flush_seconds.observe(s.seconds)
        m.queue_depth.set(len(self.pending) + self._inflight_msgs)
        for stream, k in s.streams.items():
            m.messages.labels(stream).inc(k)
        for table, k in res.inserted.items():
            m.rows.labels(table).inc(k)
        for table, k in res.duplicates.items():
            m.duplicates.labels(table).inc(k)
        for reason, k in res.rejects.items():
            m.rejects.labels(reason).inc(k)
        m.observe_lags(s.lag_counts, s.lag_sum)
        if s.retries:
            m.db_retries.inc(s.retries)
        if s.poison:
            m.poison_batches.inc(s.poison)

    # Stall detection ----------------------------------------------------------------------

    def _oldest(self) -> float | None:
        """Receipt time of the oldest unacknowledged message (None: nothing waits)."""
        with contextlib.suppress(IndexError):  # the dispatcher may pop meanwhile
            return self._inflight[0][1][0][RECEIVED]
        with contextlib.suppress(IndexError):
            return self.pending[0][RECEIVED]
        return None

    def status(self) -> Status:
        """Waiting messages, the oldest one's age, time since the last commit, stalled?"""
        now = time.time()
        first = self._oldest()
        waiting = len(self.pending) + self._inflight_msgs
        oldest = max(now - first, 0.0) if first is not None else 0.0
        since = max(now - self._last_commit, 0.0)
        quiet = min(oldest, since)
        stalled = waiting > 0 and quiet > self.cfg.stall_seconds and self._db_reachable
        # Why, for the operator: in the worker's process language (its /healthz and the
        # heartbeat row /readyz shows); "ok" stays the machine word.
        if self.failed.is_set():
            stalled = True
            reason = _("the writer process keeps dying: the worker stopped (see its log)")
        elif stalled:
            reason = _(
                "{waiting} messages waiting, the oldest for {oldest:.0f} s, and nothing "
                "committed for {since:.0f} s while the database answers"
            ).format(waiting=waiting, oldest=oldest, since=since)
        elif not self._db_reachable:
            reason = _("database unreachable: messages wait at the broker until it is back")
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
            "acknowledged": self.acked,
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
                    log.debug(L_("heartbeat not written: %s"), e)
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
                _("{reason} (host {host})").format(reason=st.reason, host=socket.gethostname()),
            ],
        )

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer process, then the threads, then connect to the broker."""
        self._start_writer()
        self._http = self.metrics.serve(self.cfg.metrics_port, self.health)
        self._dispatcher.start()
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
        self._stopping.set()
        with self._budget:
            self._budget.notify_all()
        if self._dispatcher.is_alive():
            self._dispatcher.join(self.cfg.drain_timeout + 20)
        else:
            self._stop_writer()
        self._stopped.set()
        self._heartbeat.join(10)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
        log.info(
            L_("stopped: %d rows inserted, %d duplicates, %d rejects, %d acks"),
            sum(self.totals.inserted.values()),
            sum(self.totals.duplicates.values()),
            sum(self.totals.rejects.values()),
            self.acked,
        )
