"""The ingest worker's writer process: parse and store batches, report each commit.

The MQTT process (``ingest/worker.py``) keeps paho's network loop free of parsing and
database work: it hands batches of raw messages to this process over a pipe and
acknowledges a batch only when this process reports that its transaction committed. So
the two share no GIL, and ack-after-commit holds whichever process dies: if this one is
killed, its batches were not acknowledged and the MQTT process sends them again to a new
writer (ON CONFLICT drops what had committed); if the MQTT process is killed, this one
sees the pipe close and exits, and the broker redelivers everything unacknowledged.

Protocol. MQTT process -> writer: ``(seq, [Inbound, ...])`` per batch, ``None`` to stop
after the batches before it. Writer -> MQTT process: ``("done", seq, Summary)`` after a
batch's commit, ``("db", reachable)`` when the database comes or goes during retries,
``("gave_up", seq)`` when stopping while the database stays away.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any, Final, NamedTuple

import psycopg
from pythonjsonlogger.json import JsonFormatter

from core.i18n import L_
from core.logging import RedactSecrets, setup_logging
from ingest.fields import Limits
from ingest.metrics import LAG_BUCKETS
from ingest.parse import parse_message
from ingest.rows import Reject, Rows
from ingest.writer import Item, WriteResult, classify, describe, prepare, write_batch

log = logging.getLogger(__name__)

# bucket i of the lag histogram holds lags <= LAG_BOUNDS[i] (the last one is +Inf)
LAG_BOUNDS = (*LAG_BUCKETS, float("inf"))


# A message as the MQTT process holds it: a plain tuple in Inbound's field order. Plain
# tuples cost a quarter of a NamedTuple to build in paho's callback and a tenth to pickle
# across the pipe; the writer process turns them into Inbound.
RawInbound = tuple[str, bytes, int, int, float, int, int, bytes | None]
PAYLOAD: Final = 1
MID: Final = 2
QOS: Final = 3
RECEIVED: Final = 4
GENERATION: Final = 5


class Inbound(NamedTuple):
    """One received message as a plain tuple: cheap to queue and to pickle to the writer."""

    topic: str
    payload: bytes  # the first PAYLOAD_PREFIX bytes when the payload was over the limit
    mid: int
    qos: int
    received: float
    generation: int
    size: int  # of the whole payload
    sha256: bytes | None = None  # of the whole payload, set only when it was cut


@dataclass(frozen=True)
class LogSetup:
    """The MQTT process's logging (level, text or JSON, secrets to redact), redone in the
    writer process, which starts with none."""

    level: int = logging.INFO
    fmt: str = "text"
    secrets: tuple[str, ...] = ()

    @classmethod
    def of_this_process(cls) -> LogSetup:
        """Read the root logger's set-up (as ``core.logging.setup_logging`` made it)."""
        root = logging.getLogger()
        fmt, secrets = "text", set[str]()
        for h in root.handlers:
            if isinstance(h.formatter, JsonFormatter):
                fmt = "json"
            for f in h.filters:
                if isinstance(f, RedactSecrets):
                    secrets |= f.secrets
        return cls(root.level, fmt, tuple(sorted(secrets)))

    def apply(self) -> None:
        """Set the same up in this (new) process."""
        setup_logging(logging.getLevelName(self.level), self.fmt, self.secrets)


@dataclass(frozen=True)
class StoreConfig:
    """What the writer process needs (picklable: it crosses the process boundary)."""

    database_url: str
    max_payload_bytes: int = 262_144
    poison_retries: int = 5
    drain_timeout: float = 30.0
    limits: Limits = field(default_factory=Limits)
    log: LogSetup = field(default_factory=LogSetup)


@dataclass
class Summary:
    """One committed batch, for the MQTT process's metrics and stall detection."""

    result: WriteResult
    streams: Counter[str]
    lag_counts: list[int]  # per LAG_BOUNDS bucket
    lag_sum: float
    retries: int
    poison: int
    committed: float  # time.time() of the commit
    seconds: float  # parse + write + commit


def stream_of(topic: str) -> str:
    """The metrics label of a topic: its last level for maebashi topics, else "other"."""
    parts = topic.split("/")
    return parts[-1] if parts[0] == "maebashi" and len(parts) in (4, 5) else "other"


def parse_item(m: Inbound, max_payload: int = 262_144, limits: Limits | None = None) -> Item:
    """Parse one message into rows or a reject; never raises (a parser bug is a reject)."""
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
        log.exception(L_("parser failed on %s"), m.topic)
        parsed = Reject("parser_error", repr(e)[:200])
    return Item(m.topic, m.payload, parsed)


def lag_histogram(items: list[Item], committed: float) -> tuple[list[int], float]:
    """Commit time minus each stored message's own ``ts``, bucketed like the histogram."""
    counts = [0] * len(LAG_BOUNDS)
    total = 0.0
    for it in items:
        p = it.parsed
        if isinstance(p, Rows) and p.rows:
            ts = p.rows[0][p.table.columns.index("ts")]
            lag = max(committed - ts.timestamp(), 0.0)
            counts[bisect.bisect_left(LAG_BOUNDS, lag)] += 1
            total += lag
    return counts, total


class Store:
    """Parse a batch and write it with retries; the poison budget splits what keeps failing.

    Failures are retried only while they mean the database is away; after
    ``poison_retries`` failures while the database answers, the batch is written in
    poison mode, where every failure splits it down to the message to reject.
    """

    def __init__(
        self, cfg: StoreConfig, stopping: Event, report: Any = None, parent: int = 0
    ) -> None:
        self.cfg = cfg
        self.stopping = stopping  # set by the MQTT process when it drains for a stop
        self.report = report or (lambda _msg: None)  # sends ("db", reachable)
        self.parent = parent  # the MQTT process; when it is gone, stop retrying
        self.reachable = True
        self.retries = 0
        self.poison = 0
        self._conn: psycopg.Connection | None = None

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.cfg.database_url, connect_timeout=5, application_name="mebuku-ingest"
            )
            prepare(self._conn)
        return self._conn

    def close(self) -> None:
        """Drop the connection (it is opened again on the next write)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _set_reachable(self, ok: bool) -> None:
        if ok != self.reachable:
            self.report(("db", ok))
        self.reachable = ok

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
        self._set_reachable(ok)
        return ok

    def _orphaned(self) -> bool:
        return bool(self.parent) and os.getppid() != self.parent

    def store(self, items: list[Item]) -> WriteResult | None:
        """Write with retries; None if we gave up because the worker is stopping."""
        delay = 0.2
        strikes = 0
        give_up_at: float | None = None
        while True:
            poison = strikes >= self.cfg.poison_retries
            if poison:
                self.poison += 1
                log.error(
                    L_(
                        "a batch of %d messages failed %d times while the database answers: "
                        "splitting it to find the message that breaks it"
                    ),
                    len(items),
                    strikes,
                )
            try:
                res = write_batch(self._db, items, poison=poison, healthy=self.db_healthy)
                self._set_reachable(True)
                return res
            except Exception as e:
                self.close()
                self.retries += 1
                if poison:
                    strikes = 0  # the database went away mid-split: start counting again
                if classify(e) == "retry" and not self.db_healthy():
                    log.warning(
                        L_("database unavailable (%s); retrying in %.1fs"), describe(e), delay
                    )
                else:
                    strikes += 1
                    log.warning(
                        L_(
                            "batch of %d failed while the database answers (%s); attempt %d of %d "
                            "before splitting it"
                        ),
                        len(items),
                        describe(e),
                        strikes,
                        self.cfg.poison_retries,
                    )
                if self.stopping.is_set() or self._orphaned():
                    give_up_at = give_up_at or time.monotonic() + self.cfg.drain_timeout
                    if time.monotonic() > give_up_at or self._orphaned():
                        return None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def run(self, batch: list[Inbound]) -> Summary | None:
        """Parse and store one batch; its Summary once committed, None if given up."""
        t0 = time.perf_counter()
        self.retries = self.poison = 0
        items = [parse_item(m, self.cfg.max_payload_bytes, self.cfg.limits) for m in batch]
        res = self.store(items)
        if res is None:
            return None
        committed = time.time()
        counts, total = lag_histogram(items, committed)
        streams = Counter(stream_of(m.topic) for m in batch)
        seconds = time.perf_counter() - t0
        return Summary(res, streams, counts, total, self.retries, self.poison, committed, seconds)


def _reader(conn: Connection, inbox: queue.SimpleQueue[Any]) -> None:
    """Take batches off the pipe at once, so the MQTT process never waits on a send."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = None  # the MQTT process is gone: stop (nothing here was acknowledged)
        inbox.put(msg)
        if msg is None:
            return


def serve(inbox: Connection, outbox: Connection, cfg: StoreConfig, stopping: Event) -> None:
    """The writer process's main loop (``multiprocessing`` target)."""
    cfg.log.apply()
    parent = os.getppid()
    outbox.send(("ready",))
    batches: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_reader, args=(inbox, batches), daemon=True).start()
    store = Store(cfg, stopping, outbox.send, parent)
    try:
        while (msg := batches.get()) is not None:
            seq, raw = msg
            summary = store.run([Inbound._make(m) for m in raw])
            if summary is None:
                outbox.send(("gave_up", seq))
                return
            outbox.send(("done", seq, summary))
    except (BrokenPipeError, EOFError, OSError):
        pass  # the MQTT process is gone: what we committed is redelivered and dropped
    finally:
        store.close()
