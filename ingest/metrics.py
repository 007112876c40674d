"""Prometheus metrics of one ingest worker (own registry, so several can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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

    def serve(self, port: int) -> None:
        """Expose /metrics on ``port`` (0: no endpoint)."""
        if port:
            start_http_server(port, registry=self.registry)
