"""Write simulated fixes into bus_telemetry as the ingestor would have stored them.

Used by the panel seed, the worker benchmark and tests, which need telemetry in the
table without going through MQTT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from mobility.vehicles.tracker import Fix

COPY_TELEMETRY = (
    "COPY bus_telemetry (vehicle_id, ts, lat, lon, speed_mps, heading_deg, odometer_m, mode,"
    " trip_id, route_id, received_at) FROM STDIN"
)


def copy_fixes(
    cur: psycopg.Cursor[Any], fixes: Iterable[Fix], received_at: Callable[[Fix], datetime]
) -> int:
    """COPY ``fixes`` (plain COPY: no duplicate handling); returns how many were written."""
    n = 0
    with cur.copy(COPY_TELEMETRY) as cp:
        for f in fixes:
            cp.write_row(
                (
                    f.vehicle_id,
                    datetime.fromtimestamp(f.ts, UTC),
                    f.lat,
                    f.lon,
                    f.speed_mps,
                    f.heading_deg,
                    f.odometer_m,
                    f.mode,
                    f.trip_id,
                    f.route_id,
                    received_at(f),
                )
            )
            n += 1
    return n
