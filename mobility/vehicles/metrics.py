"""Prometheus metrics of the mobility worker (own registry, like the ingest worker's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)


class MobilityMetrics:
    """The mobility worker's metrics in a registry of its own, so two workers in one test process do
    not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fixes = Counter("mebuku_mobility_fixes", "Telemetry fixes processed", registry=r)
        self.events = Counter(
            "mebuku_mobility_events", "Vehicle events detected", ["type"], registry=r
        )
        self.latency = Histogram(
            "mebuku_mobility_state_latency_seconds",
            "Vehicle state committed minus the telemetry row's received_at",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.message_to_state = Histogram(
            "mebuku_mobility_message_to_state_seconds",
            "Vehicle state committed minus the telemetry message's own timestamp (whole path)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "mebuku_mobility_errors", "Fixes skipped or database errors", ["kind"], registry=r
        )
        self.vehicles = Gauge(
            "mebuku_mobility_vehicles", "Vehicles by status", ["status"], registry=r
        )
        self.feed_version = Gauge(
            "mebuku_mobility_feed_version", "GTFS feed version the tracker uses", registry=r
        )

    def serve(self, port: int) -> None:
        """Serve the metrics for Prometheus; port 0 disables it."""
        if port:
            start_http_server(port, registry=self.registry)
