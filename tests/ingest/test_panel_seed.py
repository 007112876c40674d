"""The panel seed fills every stream with recent rows (and some rejects); re-runnable."""

from __future__ import annotations

import psycopg

from ingest.dashboard import dashboards
from tests.support.seed.ingest import seed


def test_seed_gives_recent_rows_in_every_stream_and_can_run_twice(db_url: str):
    seed(db_url)
    with psycopg.connect(db_url) as c:

        def recent() -> dict[str, int]:
            out = {}
            for t in ("bus_telemetry", "bus_events", "fiveg_radio", "fiveg_sensor"):
                row = c.execute(
                    f"SELECT count(*) FROM {t} WHERE ts > now() - interval '6 hours'"
                ).fetchone()
                out[t] = row[0] if row else 0
            row = c.execute("SELECT count(*) FROM ingest_rejects").fetchone()
            out["ingest_rejects"] = row[0] if row else 0
            return out

        first = recent()
        assert all(n > 0 for n in first.values()), first
        lag = c.execute(
            "SELECT max(received_at - ts) FROM bus_telemetry WHERE ts > now() - interval '1 hour'"
        ).fetchone()
        assert lag is not None and lag[0].total_seconds() < 2
    seed(db_url)  # same minute: nothing new; a later minute: only the new minute's rows
    with psycopg.connect(db_url) as c:
        row = c.execute("SELECT count(*) FROM bus_telemetry").fetchone()
        assert row is not None and first["bus_telemetry"] <= row[0] < 2 * first["bus_telemetry"]


def test_dashboard_is_in_the_operators_folder():
    ((folder, d),) = dashboards()
    assert folder == "operators" and d["uid"] == "mebuku-ingest-health"
    sql = " ".join(t["rawSql"] for p in d["panels"] for t in p["targets"])
    for table in ("bus_telemetry", "fiveg_radio", "fiveg_sensor", "bus_events", "ingest_rejects"):
        assert table in sql
