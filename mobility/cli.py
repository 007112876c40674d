"""``mebuku gtfs`` (import, status) and ``mebuku mobility`` (worker, analytics)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType

import psycopg
import typer
from rich.console import Console

from core import tables
from core.i18n import L_, Lang
from core.i18n import cli_gettext as _
from core.settings import get_settings

log = logging.getLogger(__name__)
console = Console(stderr=True)
gtfs_app = typer.Typer(help=_("Static GTFS / GTFS-JP timetables."), no_args_is_help=True)
app = typer.Typer(
    help=_("Bus operations: vehicle state worker and analytics."), no_args_is_help=True
)


@gtfs_app.command(
    "import",
    help=_(
        "Load a feed as a new version (atomic); a broken feed is refused, naming file/line/field."
    ),
)
def gtfs_import(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help=_("GTFS(-JP) zip")),
    force: bool = typer.Option(False, help=_("Import even when this file is already current.")),
) -> None:
    """Load a feed as a new version (atomic); a broken feed is refused, naming file/line/field."""
    from mobility.gtfs.importer import import_feed
    from mobility.gtfs.parser import FeedError

    s = get_settings()
    started = time.perf_counter()
    try:
        v = import_feed(s.require_database_url(), path, force=force)
    except FeedError as e:
        console.print("[red]" + _("feed refused:") + "[/] ", e.describe(_), markup=True)
        raise typer.Exit(1) from None
    took = time.perf_counter() - started
    if v.unchanged:
        console.print(
            _("version {id} is already this file ({sha}); nothing to do").format(
                id=v.id, sha=v.sha256[:12]
            )
        )
        return
    console.print(
        "[green]"
        + _("imported {file} as version {id} in {seconds:.2f} s").format(
            file=path.name, id=v.id, seconds=took
        )
        + "[/]"
    )
    for name, n in sorted(v.row_counts.items()):
        console.print(f"  {name:<22} {n:>8,}")
    for note in v.warnings:
        console.print("[yellow]" + _("warning:") + "[/]", note)


@gtfs_app.command(
    "status",
    help=_("The current and previous feed versions, and a warning when the current one expires."),
)
def gtfs_status() -> None:
    """The current and previous feed versions, and a warning when the current one expires."""
    from mobility.gtfs.freshness import current_feed_span, expiry_warning
    from mobility.gtfs.importer import JST

    s = get_settings()
    table = tables.table(
        _("version"), _("current"), _("source"), _("imported at"), _("valid"), "stop_times"
    )
    with psycopg.connect(s.require_database_url()) as conn:
        span = current_feed_span(conn)
        for r in conn.execute(
            "SELECT id, is_current, source, imported_at, feed_start_date, feed_end_date,"
            " row_counts->>'stop_times.txt' FROM gtfs_feed_versions ORDER BY id DESC"
        ):
            table.add_row(
                str(r[0]),
                _("yes") if r[1] else "",
                r[2],
                r[3].isoformat(timespec="seconds"),
                f"{r[4]} .. {r[5]}",
                r[6] or "0",
            )
    tables.console().print(table)
    if span is None:
        console.print("[yellow]" + _("warning:") + "[/]", _("no GTFS feed imported"))
    elif note := expiry_warning(*span, datetime.now(JST).date()):
        console.print("[yellow]" + _("warning:") + "[/]", note)


@app.command(
    "worker",
    help=_("Keep vehicle state and detect events from new bus_telemetry rows until SIGTERM."),
)
def worker(  # noqa: PLR0913 (each argument is one command-line option)
    metrics_port: int = typer.Option(
        None, help=_("Prometheus port (default MEBUKU_MOBILITY_METRICS_PORT, 9109; 0 disables).")
    ),
    poll_ms: int = typer.Option(100, help=_("Polling interval for new telemetry.")),
    off_route_after_s: float = typer.Option(30, help=_("Seconds > 60 m off the shape to alert.")),
    overspeed_kmh: float = typer.Option(50, help=_("Overspeed alert limit.")),
    offline_after_s: float = typer.Option(120, help=_("Silence before a vehicle is offline.")),
    bunching_share: float = typer.Option(0.5, help=_("Bunching: headway under this share.")),
    assign_margin_min: float = typer.Option(
        30, help=_("Believe a bus's trip only within this many minutes of its timetable.")
    ),
    max_fix_age_h: float = typer.Option(
        6.0,
        help=_(
            "Ignore fixes stamped more than this many hours before they arrived "
            "(bounds each poll to recent chunks on TimescaleDB; 0 = no bound, for replays)."
        ),
    ),
) -> None:
    """Keep vehicle state and detect events from new bus_telemetry rows until SIGTERM."""
    from mobility.vehicles.metrics import MobilityMetrics
    from mobility.vehicles.tracker import TrackerConfig
    from mobility.vehicles.worker import StateWorker, WorkerConfig

    s = get_settings().require("database_url")
    metrics = MobilityMetrics()
    metrics.serve(s.mobility_metrics_port if metrics_port is None else metrics_port)
    w = StateWorker(
        s.require_database_url(),
        TrackerConfig(
            off_route_after_s=off_route_after_s,
            overspeed_mps=overspeed_kmh / 3.6,
            offline_after_s=offline_after_s,
            bunching_share=bunching_share,
            assign_margin_s=assign_margin_min * 60,
        ),
        WorkerConfig(
            poll_s=poll_ms / 1000,
            max_fix_age=timedelta(hours=max_fix_age_h) if max_fix_age_h > 0 else None,
            prediction_window=timedelta(days=s.prediction_window_days),
        ),
        metrics=metrics,
    )

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info(L_("signal %s: stopping"), signal.Signals(signum).name)
        w.stop()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    thread = threading.Thread(target=w.run, name="mobility-worker")
    thread.start()
    thread.join()
    w.close()


@app.command(
    "performance",
    help=_("Per route: on-time departures, delay, headway regularity, dwell, trips run/scheduled."),
)
def performance(
    day: str = typer.Argument(..., help=_("Service day YYYY-MM-DD (Asia/Tokyo)")),
    early_s: float = typer.Option(60, help=_("On time if at most this early.")),
    late_s: float = typer.Option(300, help=_("On time if at most this late.")),
) -> None:
    """Per route: on-time departures, delay, headway regularity, dwell, trips run/scheduled."""
    from mobility.analytics.adherence import route_performance

    s = get_settings()
    with psycopg.connect(s.require_database_url()) as conn:
        rows = route_performance(conn, date.fromisoformat(day), early_s=early_s, late_s=late_s)
        names: dict[str, str] = dict(
            conn.execute(
                "SELECT r.route_id, coalesce(r.route_long_name, r.route_short_name, r.route_id)"
                " FROM gtfs_routes r JOIN gtfs_feed_versions v ON v.id = r.feed_version"
                " WHERE v.is_current"
            ).fetchall()
        )
    t = tables.table(
        _("route"),
        _("departures"),
        _("on-time performance"),
        _("mean delay (s)"),
        _("90th percentile delay (s)"),
        _("dwell (s)"),
        _("headway variation (CV)"),
        _("trips run / scheduled"),
    )
    for r in rows:
        t.add_row(
            names.get(r.route_id, r.route_id),
            str(r.departures),
            f"{(r.on_time_share or 0) * 100:.1f} %",
            f"{r.mean_delay_s or 0:.0f}",
            f"{r.p90_delay_s or 0:.0f}",
            f"{r.mean_dwell_s or 0:.0f}",
            f"{r.headway_cv or 0:.2f}",
            f"{r.trips_run}/{r.trips_scheduled}",
        )
    tables.console().print(t)


@app.command(
    "autonomy", help=_("Autonomous share of distance and time, takeovers per 100 km by cause.")
)
def autonomy(day: str = typer.Argument(..., help=_("Day YYYY-MM-DD (Asia/Tokyo)"))) -> None:
    """Autonomous share of distance and time, takeovers per 100 km by cause."""
    from mobility.analytics.autonomy import autonomy_kpis
    from mobility.dashboard import CAUSES

    s = get_settings()
    with psycopg.connect(s.require_database_url()) as conn:
        rows = autonomy_kpis(conn, date.fromisoformat(day))
    t = tables.table(
        _("vehicle"),
        "km",
        _("autonomous share of distance"),
        _("autonomous share of time"),
        _("takeovers per 100 km"),
        _("by cause"),
        _("obstacle stops"),
        _("remote interventions"),
    )
    for k in rows:
        t.add_row(
            k.vehicle_id,
            f"{k.distance_m / 1000:.1f}",
            f"{(k.autonomous_distance_share or 0) * 100:.1f} %",
            f"{(k.autonomous_time_share or 0) * 100:.1f} %",
            f"{k.takeovers_per_100km() or 0:.1f}",
            ", ".join(
                f"{_(CAUSES.get(c, c))}: {n}" for c, n in sorted(k.takeovers_by_cause.items())
            ),
            str(k.obstacle_stops),
            str(k.remote_interventions),
        )
    tables.console().print(t)


@app.command(
    "road-distance",
    help=_("Drivable distance between two points (road graph from settings or the feed's shapes)."),
)
def road_distance(
    origin: str = typer.Argument(..., help=_("lat,lon")),
    destination: str = typer.Argument(..., help=_("lat,lon")),
) -> None:
    """Drivable distance between two points (road graph from settings or the feed's shapes)."""
    from core.extras import MissingExtraError
    from mobility.network import load_road_graph, road_distance_m

    def point(text: str) -> tuple[float, float]:
        lat, lon = (float(x) for x in text.split(","))
        return lat, lon

    s = get_settings()
    try:
        with psycopg.connect(s.require_database_url()) as conn:
            graph = load_road_graph(s.road_graph_path, None if s.road_graph_path else conn)
    except MissingExtraError as e:  # an OSM file without osmnx installed: one line
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{road_distance_m(graph, point(origin), point(destination)):.0f} m")


vehicles_app = typer.Typer(
    help=_("The bus vehicle registry (who may publish on maebashi/bus/...)."), no_args_is_help=True
)
app.add_typer(vehicles_app, name="vehicles")


@vehicles_app.command(
    "add", help=_("Register a vehicle; then `mebuku broker acl` and `mebuku broker passwd` for it.")
)
def vehicles_add(
    vehicle_id: str = typer.Argument(..., help=_("Vehicle id = its broker user name.")),
    operator: str = typer.Option(..., "--operator", help=_("Operator (GTFS agency_id).")),
    label: str = typer.Option("", help=_("A note, e.g. the plate number.")),
) -> None:
    """Register a vehicle; then `mebuku broker acl` and `mebuku broker passwd` for it."""
    from mobility.vehicles.registry import VehicleError, add_vehicle

    s = get_settings()
    with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
        try:
            v = add_vehicle(conn, vehicle_id, operator, label)
        except VehicleError as e:
            console.print(f"[red]{e}[/]")
            raise typer.Exit(1) from None
    console.print(
        _("registered {vehicle} ({operator})").format(vehicle=v.vehicle_id, operator=v.operator_id)
    )


@vehicles_app.command(
    "retire", help=_("Take a vehicle off the broker (at the next `mebuku broker acl`).")
)
def vehicles_retire(vehicle_id: str = typer.Argument(...)) -> None:
    """Take a vehicle off the broker (at the next `mebuku broker acl`)."""
    from mobility.vehicles.registry import retire_vehicle

    s = get_settings()
    with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
        if not retire_vehicle(conn, vehicle_id):
            console.print(
                "[red]" + _("no active vehicle {vehicle!r}").format(vehicle=vehicle_id) + "[/]"
            )
            raise typer.Exit(1)
    console.print(_("retired {vehicle}").format(vehicle=vehicle_id))


@vehicles_app.command("list", help=_("Registered vehicles."))
def vehicles_list(all_: bool = typer.Option(False, "--all", help=_("Include retired."))) -> None:
    """Registered vehicles."""
    from mobility.vehicles.registry import list_vehicles

    s = get_settings()
    with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
        rows = list_vehicles(conn, include_retired=all_)
    t = tables.table(_("vehicle"), _("operator"), _("label"), _("registered"), _("retired"))
    for v in rows:
        t.add_row(
            v.vehicle_id,
            v.operator_id,
            v.label,
            v.registered_at.isoformat(timespec="seconds"),
            v.retired_at.isoformat(timespec="seconds") if v.retired_at else "",
        )
    tables.console().print(t)


def _cli_lang(lang: str | None) -> Lang:
    """The output language: --lang, MEBUKU_LANG, the locale, else Japanese."""
    from core.i18n import as_lang, process_lang

    if lang:
        chosen = as_lang(lang)
        if chosen is None:
            raise typer.BadParameter(_("lang is ja or en"))
        return chosen
    return get_settings().lang or process_lang()


@app.command(
    "evaluate",
    help=_(
        "Arrival predictions on simulated days: MBTA-bin accuracy of timetable, "
        "carry-forward and engine, and the engine's throughput."
    ),
)
def evaluate_predictions(
    train_days: int = typer.Option(14, min=1, max=120, help=_("Simulated days to learn from.")),
    test_days: int = typer.Option(3, min=1, max=60, help=_("Held-out simulated days to score.")),
    seed: int = typer.Option(1, help=_("Run seed: a new seed is a new city and new days.")),
    lang: str = typer.Option(None, help=_("ja or en (default: MEBUKU_LANG, the locale, else ja)")),
) -> None:
    """Arrival predictions on simulated days: MBTA-bin accuracy of timetable,
    carry-forward and engine, and the engine's throughput."""
    from mobility.predictions.evaluate import EvalConfig, evaluate
    from mobility.predictions.report import evaluation_report
    from mobility.predictions.sim import bundled_network

    chosen = _cli_lang(lang)
    cfg = EvalConfig(train_days=train_days, test_days=test_days, seed=seed)
    res = evaluate(bundled_network(), cfg)
    for line in evaluation_report(res, chosen):
        typer.echo(line)


@app.command(
    "accuracy",
    help=_("Accuracy of the issued arrival predictions (MBTA bins) by route, hour and horizon."),
)
def prediction_accuracy(
    days: int = typer.Option(7, min=1, max=366, help=_("The last this many days.")),
    route: str = typer.Option(None, help=_("Only this route (route_id).")),
    lang: str = typer.Option(None, help=_("ja or en (default: MEBUKU_LANG, the locale, else ja)")),
) -> None:
    """Accuracy of the issued arrival predictions (MBTA bins) by route, hour and horizon."""
    from datetime import UTC

    from mobility.predictions.accuracy import accuracy_report, load_accuracy, score

    chosen = _cli_lang(lang)
    s = get_settings()
    end = datetime.now(UTC)
    with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
        score(conn, end)
        acc = load_accuracy(conn, end - timedelta(days=days), end, route)
    for line in accuracy_report(acc, chosen):
        typer.echo(line)
