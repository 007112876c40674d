"""A small simulated data set for the dashboard panel test (rides in the last 6 hours)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import psycopg

from mobility.fares.rules import JST, fiscal_year


def seed(url: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO fare_residents SELECT FROM generate_series(1, 5) RETURNING *")
        rids = [int(r[0]) for r in cur.fetchall()]
        for i, rid in enumerate(rids):
            # seed-only pseudonyms (not keyed hashes of real IDs)
            h = hashlib.sha256(f"panel-seed-card-{rid}".encode()).digest()
            cur.execute(
                "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, %s, %s)",
                [h, f"{i:04X}", rid],
            )
            for k in range(2):
                when = now - timedelta(minutes=30 + 50 * i + 20 * k)
                rec = f"seed-{rid}-{k}"
                day = when.astimezone(JST).date()
                flags = ["card-in-two-taxis"] if (i, k) == (0, 1) else []
                cur.execute(
                    "INSERT INTO fare_taxi_rides (operator_id, record_id, vehicle_id, pickup_at,"
                    " dropoff_at, pickup_lon, pickup_lat, dropoff_lon, dropoff_lat,"
                    " meter_fare_yen, riders, flags, policy_version) VALUES (%s, %s, 'seed-taxi',"
                    " %s, %s, 139.0729, 36.3837, 139.0745, 36.3922, 1400, 1, %s,"
                    " 'mytaku-2022-04')",
                    ["demo-taxi", rec, when, when + timedelta(minutes=12), flags],
                )
                cur.execute(
                    "INSERT INTO fare_taxi_riders (operator_id, record_id, position, idm_hash,"
                    " resident_id, pickup_at, dropoff_at, subsidy_yen, reason)"
                    " VALUES (%s, %s, 0, %s, %s, %s, %s, 700, 'subsidised')",
                    ["demo-taxi", rec, h, rid, when, when + timedelta(minutes=12)],
                )
                cur.execute(
                    "INSERT INTO fare_ledger (period, operator_id, source, record_id,"
                    " resident_id, kind, amount_yen, ride_at, service_day, fiscal_year,"
                    " policy_version, posted_at) VALUES (%s, 'demo-taxi', 'taxi', %s, %s,"
                    " 'mytaku', 700, %s, %s, %s, 'mytaku-2022-04', %s)",
                    [
                        datetime.now(JST).date().replace(day=1),
                        rec,
                        rid,
                        when,
                        day,
                        fiscal_year(day),
                        when,
                    ],
                )
