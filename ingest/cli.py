"""`mebuku ingest`: run one ingest worker until SIGTERM/SIGINT (then flush and exit)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import typer

from core.i18n import L_
from core.i18n import cli_gettext as _
from core.settings import get_settings
from ingest.fields import Limits
from ingest.worker import IngestWorker, WorkerConfig

log = logging.getLogger(__name__)


def ingest(  # noqa: PLR0913 (each argument is one command-line option)
    group: str = typer.Option(
        "",
        help=_(
            "Shared-subscription group ($share/GROUP/...) so N workers split the load. "
            "Default: none, a plain subscription, which is the zero-loss choice for a single "
            "worker on Mosquitto 2.0 (its shared subscriptions lose messages across broker "
            "restarts; see ingest/README.md)."
        ),
    ),
    instance: int = typer.Option(
        0, help=_("Worker number within the group (part of the client id).")
    ),
    client_id: str = typer.Option(
        None,
        help=_(
            "Fixed MQTT client id, so a restarted worker resumes its persistent session "
            "(default mebuku-ingest-GROUP-INSTANCE, GROUP 'main' without a group)."
        ),
    ),
    topic_filter: str = typer.Option("maebashi/#", "--topic", help=_("Topic filter.")),
    batch_size: int = typer.Option(2000, help=_("Most messages per transaction.")),
    batch_wait_ms: int = typer.Option(100, help=_("Longest wait to fill a batch.")),
    receive_maximum: int = typer.Option(
        10000,
        help=_("MQTT 5 Receive Maximum: unacknowledged messages the broker may send us."),
    ),
    max_backlog_mb: int = typer.Option(
        64,
        help=_("Payload MiB held unacknowledged before the MQTT loop waits for the writer."),
    ),
    writer_restarts: int = typer.Option(
        5,
        help=_(
            "Times in a row the writer process (parse + COPY) may die and be started "
            "again before the worker stops with exit status 1."
        ),
    ),
    metrics_port: int = typer.Option(
        None, help=_("Prometheus port (default MEBUKU_METRICS_PORT; 0 disables).")
    ),
) -> None:
    """Ingest MQTT telemetry and 5G measurements into the database (zero loss)."""
    s = get_settings().require("database_url", "mqtt_url")
    cfg = WorkerConfig(
        database_url=s.require_database_url(),
        mqtt=s.mqtt,
        client_id=client_id or f"mebuku-ingest-{group or 'main'}-{instance}",
        group=group,
        topic_filter=topic_filter,
        batch_size=batch_size,
        batch_wait=batch_wait_ms / 1000,
        receive_maximum=receive_maximum,
        metrics_port=s.metrics_port if metrics_port is None else metrics_port,
        max_payload_bytes=s.ingest_max_payload_bytes,
        max_backlog_bytes=max_backlog_mb * 1024 * 1024,
        poison_retries=s.ingest_poison_retries,
        stall_seconds=s.ingest_stall_seconds,
        heartbeat_interval=min(5.0, s.ingest_stall_seconds / 3),
        limits=Limits.from_settings(s),
        writer_restarts=writer_restarts,
    )
    worker = IngestWorker(cfg)
    stop = threading.Event()

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info(L_("signal %s: flushing and stopping"), signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    worker.start()
    log.info(
        L_("ingest worker %s running (metrics port %s)"), cfg.client_id, cfg.metrics_port or "off"
    )
    while not stop.wait(0.5) and not worker.failed.is_set():
        pass
    worker.stop()
    if worker.failed.is_set():  # the writer process kept dying: let the supervisor see it
        raise typer.Exit(1)


# `ingest` is a top-level command (entry point): its help is its docstring, in the locale.
ingest.__doc__ = _("Ingest MQTT telemetry and 5G measurements into the database (zero loss).")
