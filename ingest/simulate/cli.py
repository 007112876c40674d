"""`mebuku simulate`: publish simulated Maebashi traffic to the configured broker."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import typer

from core.i18n import L_
from core.i18n import cli_gettext as _
from core.logging import redact_url
from core.settings import get_settings
from ingest.simulate.city import City, CityConfig
from ingest.simulate.faults import Faults
from ingest.simulate.feed import DEFAULT_GTFS
from ingest.simulate.publisher import Publisher

log = logging.getLogger(__name__)


def simulate(  # noqa: PLR0913 (each argument is one command-line option)
    shuttles: int = typer.Option(2, help=_("Autonomous shuttles on 前橋駅 - 中央前橋駅.")),
    buses: int = typer.Option(6, help=_("City buses on GTFS-JP routes.")),
    phones_per_bus: int = typer.Option(1, help=_("5G test phones riding each bus.")),
    fixed_phones: int = typer.Option(2, help=_("Fixed 5G test phones per theme site.")),
    sensors: int = typer.Option(1, help=_("SenML field sensors per site.")),
    period: float = typer.Option(1.0, help=_("Seconds between telemetry reports per bus.")),
    radio_period: float = typer.Option(5.0, help=_("Seconds between radio reports per phone.")),
    status_period: float = typer.Option(
        60.0, min=0.0, help=_("Seconds between heartbeats per 5G device (0 = none).")
    ),
    duration: float = typer.Option(0.0, help=_("Simulated seconds to run; 0 = until stopped.")),
    speed: float = typer.Option(1.0, help=_("Time warp (1 = real time, 0 = as fast as possible).")),
    rate: float = typer.Option(0.0, help=_("Cap on messages per second (0 = no cap).")),
    start: str = typer.Option(None, help=_("Simulated start (RFC 3339; default now).")),
    duplicates: float = typer.Option(0.0, help=_("Share of messages sent twice.")),
    out_of_order: float = typer.Option(0.0, help=_("Share of messages delayed behind later ones.")),
    malformed: float = typer.Option(0.0, help=_("Share of messages made invalid.")),
    off_route: float = typer.Option(0.1, help=_("Probability of a detour per city-bus trip.")),
    seed: int = typer.Option(1, help=_("Random seed (same seed, same traffic).")),
    gtfs: Path = typer.Option(DEFAULT_GTFS, help=_("GTFS-JP zip with the routes to drive.")),
    qos: int = typer.Option(1, help=_("MQTT QoS of published messages.")),
    timetable: bool = typer.Option(
        True,
        "--timetable/--loop",
        help=_(
            "Run the trips in service now by the feed's calendar (default), or loop "
            "each bus over one route from the start time."
        ),
    ),
    all_routes: bool = typer.Option(
        False, help=_("Timetable mode: all routes, not only those serving Maebashi.")
    ),
) -> None:
    """Publish realistic simulated buses, 5G phones and SenML sensors (with heartbeats)
    over MQTT."""
    s = get_settings()
    broker = s.mqtt  # a missing MEBUKU_MQTT_URL is one line and exit 2, before any work
    try:
        t0 = datetime.fromisoformat(start) if start else datetime.now(UTC)
    except ValueError:
        raise typer.BadParameter(
            _("--start is a date and time such as 2026-04-01T09:00:00+09:00")
        ) from None
    if t0.tzinfo is None:
        raise typer.BadParameter(_("--start needs a UTC offset (e.g. +09:00)"))
    cfg = CityConfig(
        shuttles=shuttles,
        buses=buses,
        phones_per_bus=phones_per_bus,
        fixed_phones_per_site=fixed_phones,
        sensors_per_site=sensors,
        telemetry_period_s=period,
        radio_period_s=radio_period,
        status_period_s=status_period,
        off_route_per_trip=off_route,
        faults=Faults(duplicates, out_of_order, malformed),
        seed=seed,
        gtfs_path=gtfs,
        timetable=timetable,
        all_routes=all_routes,
    )
    until = t0 + timedelta(seconds=duration) if duration > 0 else None
    city = City(cfg, t0)
    for note in city.notes:
        log.warning("%s", note)
    stop = threading.Event()

    def _signal(signum: int, _f: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    log.info(
        L_("simulating %d shuttles, %d buses from %s (speed %s) to %s"),
        shuttles,
        buses,
        t0.isoformat(),
        speed,
        redact_url(s.mqtt_url),
    )
    with Publisher(broker, qos=qos) as pub:
        stats = pub.run(city.messages(until), speed=speed, rate=rate, stop=stop)
    log.info(L_("published %d messages in %.1fs"), stats.published, stats.seconds)


# `simulate` is a top-level command (entry point): its help is its docstring, in the locale.
simulate.__doc__ = _(
    "Publish realistic simulated buses, 5G phones and SenML sensors (with heartbeats) over MQTT."
)
