"""A small, recent data set for the dashboards' panel test: the real feed, four buses on
two routes (two on each, so there are headways) driving now and over the last 35 minutes
(scenario generator), written to bus_telemetry and run through the real worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from core.resources import default_gtfs
from mobility.gtfs.importer import import_feed
from mobility.vehicles.schedule import load_schedule, local_date, service_day_epoch
from mobility.vehicles.tracker import Fix, TrackerConfig
from mobility.vehicles.worker import StateWorker, WorkerConfig
from tests.support.replay import copy_fixes
from tests.support.scenario import drive_trip

ROUTES = ("スマーク線_A", "前橋高崎線_A")


def _mode_schedule(manual_s: int) -> Callable[[float], str]:
    """Manual driving for the first ``manual_s`` of every 15 minutes, else autonomous."""
    return lambda t: "manual" if int(t) % 900 < manual_s else "autonomous"


def seed(url: str) -> None:
    feed = default_gtfs()
    import_feed(url, feed)
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        schedule = load_schedule(conn)
        rows: list[Fix] = []
        day0 = service_day_epoch(local_date(now))
        for r, route in enumerate(ROUTES):
            # The trip of this route whose timetable is nearest to now, so it matches.
            active = schedule.active_services(local_date(now))
            plan = min(
                (
                    p
                    for p in schedule.trips.values()
                    if p.route_id == route and p.service_id in active
                ),
                key=lambda p: abs(day0 + p.start_s - (now - 1200)),
            )
            half = min(1500.0, 0.5 * (plan.end_s - plan.start_s))
            # Re-time this trip in the seed's copy of the feed so that its timetable is
            # now: the real one may have no bus at this hour, and the tracker believes a
            # bus's trip only near that trip's timetable.
            shift = round(now - half - 360 - day0) - plan.start_s
            conn.execute(
                "UPDATE gtfs_stop_times SET arrival_s = arrival_s + %s,"
                " departure_s = departure_s + %s"
                " WHERE feed_version = gtfs_current_version() AND trip_id = %s",
                [shift, shift, plan.trip_id],
            )
            for k in range(2):
                # Two buses on one trip pattern 6 minutes apart, both still driving now.
                vid = f"seed-{r}-{k}"
                depart = now - half - 360 + k * 360
                sc = drive_trip(
                    plan,
                    vid,
                    depart,
                    seed=r * 10 + k,
                    fix_every_s=5.0,
                    cruise_mps=8.0 + 1.5 * k,
                    dwell_s=15 + 10 * k,
                    layover_s=600,
                    after_s=0,
                    mode=_mode_schedule(120 * (k + 1)),
                )
                rows.extend(f for f in sc.fixes if f.ts <= now)
        with conn.cursor() as cur:
            copy_fixes(cur, rows, lambda f: datetime.fromtimestamp(f.ts, UTC))
    worker = StateWorker(url, TrackerConfig(overspeed_mps=9.0), WorkerConfig(batch=10_000))
    try:
        while worker.run_once() >= worker.config.batch:
            pass
        worker.predictions_once()  # learn, sample the predictions issued now
    finally:
        worker.close()
    with psycopg.connect(url, autocommit=True) as conn:
        # Scored samples for the accuracy panel: as if each arrival had been predicted
        # five minutes ahead, 30 s too late.
        conn.execute(
            "INSERT INTO mobility_prediction_samples (vehicle_id, issued_at, trip_id,"
            " service_date, stop_sequence, stop_id, route_id, predicted_at, horizon_s,"
            " uncertainty_s, actual_at, error_s)"
            " SELECT vehicle_id, date_trunc('minute', ts - interval '5 minutes'), trip_id,"
            " service_date, stop_sequence, stop_id, route_id, ts + interval '30 seconds',"
            " 330, 40, ts, -30 FROM vehicle_events"
            " WHERE type = 'arrival' AND trip_id IS NOT NULL AND service_date IS NOT NULL"
            " ON CONFLICT DO NOTHING"
        )
