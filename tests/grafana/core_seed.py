"""Recent rows in core's shared time-series tables, for panels that read them directly.

Used by the panel test only when a table has no recent rows after the packages' own
seed functions (tests/support/seed/) ran (the ingest seed normally provides them).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import psycopg


def seed_core_tables(url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        recent = conn.execute(
            "SELECT count(*) FROM bus_telemetry WHERE ts > now() - interval '6 hours'"
        ).fetchone()
        if recent and recent[0] == 0:
            rows = []
            for v, vehicle in enumerate(("maebashi-av-01", "gunma-chuo-1021")):
                for i in range(36):
                    ts = now - timedelta(minutes=10 * i + v)
                    rows.append(
                        (
                            vehicle,
                            ts,
                            i,
                            36.3895 + 0.001 * i,
                            139.0634 + 0.001 * v,
                            5.5,
                            ts + timedelta(seconds=0.4 + 0.1 * (i % 5)),
                        )
                    )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO bus_telemetry (vehicle_id, ts, seq, lat, lon, speed_mps,"
                    " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    rows,
                )
        rejects = conn.execute(
            "SELECT count(*) FROM ingest_rejects WHERE received_at > now() - interval '6 hours'"
        ).fetchone()
        if rejects and rejects[0] == 0:
            for i, reason in enumerate(
                ("invalid JSON", "schema: lat out of range", "invalid JSON")
            ):
                payload = f"bad payload {i}".encode()
                conn.execute(
                    "INSERT INTO ingest_rejects (received_at, topic, payload, payload_sha256,"
                    " reason) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [
                        now - timedelta(minutes=20 * i),
                        "maebashi/bus/maebashi-av-01/telemetry",
                        payload,
                        hashlib.sha256(payload).digest(),
                        reason,
                    ],
                )
