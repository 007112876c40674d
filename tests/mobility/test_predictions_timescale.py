"""The predictions' tables on TimescaleDB: the rollup reads hypertable events, the samples
are a hypertable and are scored there."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core import migrator
from mobility.gtfs.importer import import_feed
from mobility.predictions.accuracy import score
from mobility.predictions.evaluate import simulate
from mobility.predictions.sim import bundled_network, observations
from mobility.predictions.store import load_rows, refresh
from mobility.vehicles.schedule import local_date
from tests.conftest import make_settings
from tests.mobility.feeds import REAL_FEED
from tests.mobility.test_predictions_db import write_events

pytestmark = pytest.mark.timescale


def test_rollup_and_scoring_on_timescaledb(timescale_url: str) -> None:
    migrator.migrate(timescale_url, make_settings(timescale_url))
    import_feed(timescale_url, REAL_FEED)
    day = local_date(time.time()) - timedelta(days=3)
    blocks = simulate(bundled_network(), day, 77, 2)
    trav, dwells = observations(blocks)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        hyper = {
            r[0]
            for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        }
        assert {"vehicle_events", "mobility_prediction_samples"} <= hyper
        write_events(conn, blocks, day, "ts")
        done = refresh(conn)
        assert done.observations == len(trav) + len(dwells)
        assert len(load_rows(conn)) == done.cells > 0
        run = blocks[0].runs[0]
        stop = run.trip.stops[3]
        issued = datetime.fromtimestamp(run.arrivals[3] - 300, UTC)
        conn.execute(
            "INSERT INTO mobility_prediction_samples (vehicle_id, issued_at, trip_id,"
            " service_date, stop_sequence, stop_id, route_id, predicted_at, horizon_s)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 300)",
            [
                f"ts-{blocks[0].vehicle_id}",
                issued,
                run.trip.trip_id,
                day,
                stop.sequence,
                stop.stop_id,
                run.trip.route_id,
                issued + timedelta(seconds=330),
            ],
        )
        assert score(conn, issued + timedelta(hours=1)) == 1
        err = conn.execute("SELECT error_s FROM mobility_prediction_samples").fetchone()
    assert err is not None and err[0] == pytest.approx(-30, abs=1e-3)
