"""Prometheus metrics of one ingest worker (own registry, so several can share a process),
served with the worker's health endpoint on the metrics port."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# (HTTP status, JSON body) of GET /healthz
HealthCheck = Callable[[], tuple[int, dict[str, Any]]]

LAG_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1,
    1.5,
    2,
    3,
    5,
    10,
    30,
    60,
    300,
)


class IngestMetrics:
    """The ingest worker's metrics in a registry of its own, so two workers in one test process do
    not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "mebuku_ingest_messages", "MQTT messages received", ["stream"], registry=r
        )
        self.rows = Counter("mebuku_ingest_rows", "Rows inserted", ["table"], registry=r)
        self.duplicates = Counter(
            "mebuku_ingest_duplicate_rows",
            "Rows already stored (redeliveries)",
            ["table"],
            registry=r,
        )
        self.rejects = Counter(
            "mebuku_ingest_rejects", "Messages sent to ingest_rejects", ["reason"], registry=r
        )
        self.acks = Counter("mebuku_ingest_acks", "Messages acknowledged after commit", registry=r)
        self.db_retries = Counter(
            "mebuku_ingest_db_retries",
            "Batches retried after a temporary database error",
            registry=r,
        )
        self.batch_size = Histogram(
            "mebuku_ingest_batch_size",
            "Messages per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )
        self.flush_seconds = Histogram(
            "mebuku_ingest_flush_seconds", "Time to write and commit one batch", registry=r
        )
        self.lag_seconds = Histogram(
            "mebuku_ingest_lag_seconds",
            "Commit time minus the message's own timestamp",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.qos0_dropped = Counter(
            "mebuku_ingest_qos0_dropped",
            "QoS 0 messages dropped because the inbox was full (QoS 1 never is)",
            registry=r,
        )
        self.queue_depth = Gauge(
            "mebuku_ingest_queue_depth", "Messages received, not yet committed", registry=r
        )
        self.connected = Gauge(
            "mebuku_ingest_mqtt_connected", "1 while connected to the broker", registry=r
        )

        self.oldest_unacked = Gauge(
            "mebuku_ingest_oldest_unacked_seconds",
            "Age of the oldest message received and not yet acknowledged (0: none)",
            registry=r,
        )
        self.since_commit = Gauge(
            "mebuku_ingest_seconds_since_commit",
            "Seconds since the last committed batch (or since start)",
            registry=r,
        )
        self.waiting = Gauge(
            "mebuku_ingest_waiting_messages",
            "Messages received and not yet acknowledged (inbox and batch being written)",
            registry=r,
        )
        self.backlog_bytes = Gauge(
            "mebuku_ingest_backlog_bytes",
            "Payload bytes held for messages not yet acknowledged",
            registry=r,
        )
        self.stalled = Gauge(
            "mebuku_ingest_stalled",
            "1 while messages wait, nothing commits and the database answers",
            registry=r,
        )
        self.poison_batches = Counter(
            "mebuku_ingest_poison_batches",
            "Batches split after failing repeatedly while the database answered",
            registry=r,
        )
        self.backpressure_seconds = Counter(
            "mebuku_ingest_backpressure_seconds",
            "Time the MQTT loop waited because the backlog was over its byte budget",
            registry=r,
        )
        self.writer_restarts = Counter(
            "mebuku_ingest_writer_restarts",
            "Times the writer process died and was started again",
            registry=r,
        )

    def observe_lags(self, counts: Sequence[int], total: float) -> None:
        """Add a batch's lags, bucketed by the writer process (``LAG_BUCKETS`` plus +Inf),
        at once: one ``observe`` per message would cost the MQTT process's GIL."""
        h = self.lag_seconds
        for bucket, n in zip(h._buckets, counts, strict=True):
            if n:
                bucket.inc(n)
        h._sum.inc(total)

    def serve(self, port: int, health: HealthCheck | None = None) -> ThreadingHTTPServer | None:
        """Expose /metrics and /healthz on ``port`` (0: no endpoint)."""
        if not port:
            return None
        server = ThreadingHTTPServer(("", port), _handler(self.registry, health))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="ingest-metrics", daemon=True).start()
        return server


def _handler(
    registry: CollectorRegistry, health: HealthCheck | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                status, body = health() if health else (200, {"status": "ok"})
                self._send(status, "application/json", json.dumps(body).encode())
            elif path in ("/metrics", "/"):
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                self._send(404, "text/plain", b"not found: /metrics or /healthz\n")

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # health checks every few seconds would flood the log

    return Handler
