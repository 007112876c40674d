"""A simulated fleet generated server-side (INSERT ... SELECT generate_series), for the
panel benchmark (bench/panels_bench.py) and the rollup-versus-raw panel tests.

Buses at 1 Hz (bus_telemetry; a takeover, obstacle stop or remote intervention every ~20
minutes in bus_events; an arrival and a departure every ~90 s in vehicle_events on the
feed's routes and stops) and 5G devices at 1 Hz (fiveg_radio; every 60 s a heartbeat in
fiveg_device_status and, for one device in five, two SenML records in fiveg_sensor), with
commit lags of 50-500 ms and a reject every 10 minutes. Loaded one day at a time, in time
order as ingest writes it (so BRIN indexes and chunks see a realistic physical layout).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg

# One day of each stream; %(d0)s / %(d1)s: the day's first and last second (epoch offsets
# from %(t0)s), %(n)s: buses or devices. lag: commit 50-500 ms after the reading.
TELEMETRY = """
INSERT INTO bus_telemetry (vehicle_id, ts, seq, lat, lon, speed_mps, heading_deg, odometer_m,
                           mode, door_open, passengers, trip_id, route_id, soc_pct, received_at)
SELECT 'bench-bus-' || lpad(v::text, 3, '0'), t, s,
       36.39 + 0.02 * sin(s / 600.0 + v), 139.06 + 0.02 * cos(s / 600.0 + v),
       greatest(0, 8 + 4 * sin(s / 45.0 + v)), (s + 17 * v) %% 360,
       1000.0 * v + 7.5 * (extract(epoch FROM t) - 1.7e9),
       CASE WHEN (s / 900 + v) %% 5 = 0 THEN 'manual'
            WHEN (s / 900 + v) %% 17 = 0 THEN 'remote' ELSE 'autonomous' END,
       (s %% 90) < 15, (s / 300 + v) %% 30, 'bench-trip-' || v, NULL,
       80 - (s %% 86400) / 2000.0, t + (0.05 + 0.45 * random()) * interval '1 s'
FROM (SELECT s, %(t0)s + s * interval '1 s' AS t
      FROM generate_series(%(d0)s::int, %(d1)s::int) s) x,
     LATERAL generate_series(1 + 0 * x.s, %(n)s::int) v
"""
BUS_EVENTS = """
INSERT INTO bus_events (vehicle_id, ts, type, cause, detail, received_at)
SELECT 'bench-bus-' || lpad(v::text, 3, '0'), t,
       (ARRAY['takeover', 'obstacle_stop', 'remote_intervention'])[1 + (s / 1200 + v) %% 3],
       (ARRAY['pedestrian', 'parked_vehicle', 'sensor', NULL])[1 + (s / 1200) %% 4],
       jsonb_build_object('lat', 36.39, 'lon', 139.06), t + interval '0.3 s'
FROM (SELECT s, %(t0)s + s * interval '1 s' AS t
      FROM generate_series(%(d0)s::int, %(d1)s::int) s) x,
     LATERAL generate_series(1 + 0 * x.s, %(n)s::int) v
WHERE (s + 37 * v) %% 1200 = 0
"""
VEHICLE_EVENTS = """
INSERT INTO vehicle_events (vehicle_id, ts, type, stop_id, trip_id, route_id, direction_id,
                            operator_id, stop_sequence, service_date, scheduled_ts, delay_s,
                            dwell_s, detail)
SELECT 'bench-bus-' || lpad(v::text, 3, '0'), t + (k * 20) * interval '1 s',
       (ARRAY['arrival', 'departure'])[k + 1],
       coalesce(stops[1 + (s / 90 + v) %% cardinality(stops)], ''), 'bench-trip-' || v,
       routes[1 + v %% cardinality(routes)], v %% 2, 'bench-operator',
       1 + (s / 90) %% 30, (t AT TIME ZONE 'Asia/Tokyo')::date, t,
       60 * sin(s / 3000.0 + v) + 90 * random(), 20 + 10 * random(),
       CASE WHEN (s / 90 + v) %% 97 = 0 THEN '{"reason": "bench"}'::jsonb ELSE '{}' END
FROM (SELECT array_agg(route_id ORDER BY route_id) AS routes FROM grafana.gtfs_routes) r,
     (SELECT array_agg(stop_id ORDER BY stop_id) AS stops FROM grafana.gtfs_stops) st,
     (SELECT s, %(t0)s + s * interval '1 s' AS t
      FROM generate_series(%(d0)s::int, %(d1)s::int) s) x,
     LATERAL generate_series(1 + 0 * x.s, %(n)s::int) v, generate_series(0, 1) k
WHERE (s + 11 * v) %% 90 = 0
"""
OFF_ROUTE = """
UPDATE vehicle_events
SET type = (ARRAY['off_route', 'overspeed', 'bunching'])[1 + stop_sequence %% 3]
WHERE type = 'arrival' AND detail ? 'reason'
"""
RADIO = """
INSERT INTO fiveg_radio (site_id, device_id, ts, rsrp_dbm, rsrq_db, sinr_db, dl_mbps, ul_mbps,
                         rtt_ms, jitter_ms, loss_pct, cell_id, pci, band, lat, lon, received_at)
SELECT 'bench-site', 'bench-5g-' || lpad(v::text, 3, '0'), t,
       -70 - 35 * random(), -6 - 10 * random(), 32 * random() - 2,
       exp(5.2 + 0.5 * (random() + random() - 1)), exp(3.5 + 0.5 * (random() + random() - 1)),
       exp(3.0 + 0.4 * (random() + random() - 1)), 0.5 + 5 * random(), random(),
       'cell-' || ((s / 600 + v) %% 3), 100 + (s / 600 + v) %% 3, 'n79',
       36.383 + 0.01 * sin(s / 700.0 + v), 139.067 + 0.012 * cos(s / 700.0 + v),
       t + (0.05 + 0.45 * random()) * interval '1 s'
FROM (SELECT s, %(t0)s + s * interval '1 s' AS t
      FROM generate_series(%(d0)s::int, %(d1)s::int) s) x,
     LATERAL generate_series(1 + 0 * x.s, %(n)s::int) v
"""
STATUS = """
INSERT INTO fiveg_device_status (site_id, device_id, ts, status, battery_pct, firmware,
                                 received_at)
SELECT 'bench-site', 'bench-5g-' || lpad(v::text, 3, '0'), t,
       CASE WHEN random() < 0.02 THEN 'degraded' WHEN random() < 0.002 THEN 'fault' ELSE 'ok' END,
       100 - (s %% 86400) / 1000.0, 'MB5G-2.4.1', t + interval '0.2 s'
FROM (SELECT s, %(t0)s + s * interval '1 s' AS t
      FROM generate_series(%(d0)s::int, %(d1)s::int) s) x,
     LATERAL generate_series(1 + 0 * x.s, %(n)s::int) v
WHERE (s + v) %% 60 = 0
"""
SENSOR = """
INSERT INTO fiveg_sensor (site_id, device_id, name, ts, unit, value, received_at)
SELECT 'bench-site', 'bench-5g-' || lpad(v::text, 3, '0'), m.name, t, m.unit,
       m.base + 3 * sin(s / 3600.0 + v), t + interval '0.2 s'
FROM (SELECT s, %(t0)s + s * interval '1 s' AS t
      FROM generate_series(%(d0)s::int, %(d1)s::int) s) x,
     LATERAL generate_series(5 + 0 * x.s, %(n)s::int, 5) v,
     (VALUES ('cabin_temp', 'Cel', 22.0), ('humidity', '%%RH', 55.0)) m(name, unit, base)
WHERE (s + v) %% 60 = 0
"""
REJECTS = """
INSERT INTO ingest_rejects (received_at, topic, payload, payload_sha256, reason)
SELECT %(t0)s + s * interval '1 s', 'maebashi/bus/bench-bus-001/telemetry',
       convert_to('{"bad": ' || s, 'UTF8'), sha256(convert_to('{"bad": ' || s, 'UTF8')),
       (ARRAY['invalid JSON', 'schema: lat out of range', 'unknown vehicle'])[1 + s %% 3]
FROM generate_series(%(d0)s::int, %(d1)s::int) s WHERE s %% 600 = 0
ON CONFLICT DO NOTHING
"""
TRIAL_DEVICES = """
INSERT INTO fiveg_trial_devices (trial_id, device_id, kind, label)
SELECT t.trial_ids[1 + v %% cardinality(t.trial_ids)], 'bench-5g-' || lpad(v::text, 3, '0'),
       CASE WHEN v %% 5 = 0 THEN 'sensor' ELSE 'bus_modem' END, 'bench device ' || v
FROM (SELECT array_agg(trial_id ORDER BY trial_id) AS trial_ids FROM fiveg_trials) t,
     generate_series(1, %(n)s::int) v
ON CONFLICT DO NOTHING
"""
# Stretch the trials over the whole loaded period (the panels clip to it).
TRIAL_PERIODS = "UPDATE fiveg_trials SET period_start = %(start)s, period_end = %(end)s"
STREAMS: tuple[tuple[str, str, str], ...] = (
    ("bus_telemetry", TELEMETRY, "buses"),
    ("bus_events", BUS_EVENTS, "buses"),
    ("vehicle_events", VEHICLE_EVENTS, "buses"),
    ("fiveg_radio", RADIO, "devices"),
    ("fiveg_device_status", STATUS, "devices"),
    ("fiveg_sensor", SENSOR, "devices"),
    ("ingest_rejects", REJECTS, "buses"),
)


@dataclass(frozen=True)
class Volume:
    """How much to generate."""

    buses: int
    devices: int
    days: float


def register_devices(url: str, devices: int, start: datetime, end: datetime) -> None:
    """Put the generated 5G devices into the registered trials (round-robin) and stretch the
    trials over [start, end), so the council dashboard's trial picker finds them."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TRIAL_DEVICES, {"n": devices})
        conn.execute(TRIAL_PERIODS, {"start": start, "end": end})


def load(
    url: str,
    vol: Volume,
    start: datetime,
    seconds: int,
    after_day: Callable[[psycopg.Connection, str], None] | None = None,
) -> dict[str, tuple[int, float]]:
    """Generate the fleet for [start, start + seconds) one day at a time; returns rows and
    seconds per table. ``after_day(conn, table)`` runs after each day of a table (the
    benchmark compresses the chunks that are old enough, as the policy would)."""
    out: dict[str, tuple[int, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table, sql, unit in STREAMS:
            n = vol.buses if unit == "buses" else vol.devices
            started = time.perf_counter()
            rows = 0
            for d0 in range(0, seconds, 86400):
                d1 = min(seconds, d0 + 86400) - 1
                cur = conn.execute(sql, {"n": n, "t0": start, "d0": d0, "d1": d1})
                rows += max(cur.rowcount, 0)
                if after_day is not None:
                    after_day(conn, table)
            if table == "vehicle_events":
                conn.execute(OFF_ROUTE, {})
            out[table] = (rows, time.perf_counter() - started)
    return out
