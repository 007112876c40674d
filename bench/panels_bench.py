"""Benchmark: every Grafana SQL panel against a realistic volume (issue 14, item 4).

Targets: p95 <= 300 ms for the dashboard's default time range, <= 1 s for 7 days.

For each storage path (plain PostgreSQL, and TimescaleDB when its binaries are found:
--ts-bindir, else MEBUKU_TEST_TIMESCALE_PGBINDIR) it starts a private server, migrates a
fresh database, runs the panel-test seeds (GTFS feed, trials, fares; tests/support/seed/),
then generates the fleet server-side (INSERT ... SELECT generate_series, one day at a time):
--buses buses at 1 Hz (bus_telemetry, a takeover / obstacle stop / remote intervention
every ~20 minutes in bus_events, an arrival and a departure every ~90 s in
vehicle_events on the feed's routes and stops) and --devices 5G devices at 1 Hz
(fiveg_radio; every 60 s a heartbeat in fiveg_device_status and, for one device in
five, two SenML records in fiveg_sensor), for --days days ending now, with commit lags of
50-500 ms and a few rejects. The devices join the registered trials round-robin. It then
refreshes the rollups (as the continuous-aggregate policy or `mebuku db maintain` would),
ANALYZEs, and runs every panel query of the built dashboards, expanded exactly as Grafana
would (tests/support/grafana_macros.py), for the default range and for 7 days, --runs
times each. Prints p50/p95 per panel and path; FAIL marks a target missed.

    .venv/bin/python bench/panels_bench.py --days 1 --buses 10 --devices 20 --runs 5
    .venv/bin/python bench/panels_bench.py            # 60 buses, 200 devices, 7 days
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import migrator
from core.embedded import EmbeddedPostgres, find_pg_bindir, server_dir
from core.settings import Settings
from tests.grafana.panel_runner import (
    MAX_DATA_POINTS,
    MIN_INTERVAL,
    dashboards,
    panel_queries,
    resolve_variables,
    seed_all,
    time_range,
)
from tests.support.grafana_macros import QueryContext, expand, panel_interval

TARGET_DEFAULT_S = 0.300
TARGET_WEEK_S = 1.0
WEEK = timedelta(days=7)

# One day of each stream; %(d0)s / %(d1)s: the day's first and last second (epoch offsets
# from %(t0)s), %(n)s: buses or devices. lag: commit 50-500 ms after the reading.
TELEMETRY = """
INSERT INTO bus_telemetry (vehicle_id, ts, seq, lat, lon, speed_mps, heading_deg, odometer_m,
                           mode, door_open, passengers, trip_id, route_id, soc_pct, received_at)
SELECT 'bench-bus-' || lpad(v::text, 3, '0'), t, s,
       36.39 + 0.02 * sin(s / 600.0 + v), 139.06 + 0.02 * cos(s / 600.0 + v),
       greatest(0, 8 + 4 * sin(s / 45.0 + v)), (s + 17 * v) %% 360,
       1000.0 * v + 7.5 * s,
       CASE WHEN (s / 900 + v) %% 5 = 0 THEN 'manual'
            WHEN (s / 900 + v) %% 17 = 0 THEN 'remote' ELSE 'autonomous' END,
       (s %% 90) < 15, (s / 300 + v) %% 30, 'bench-trip-' || v, NULL,
       80 - (s %% 86400) / 2000.0, t + (0.05 + 0.45 * random()) * interval '1 s'
FROM generate_series(1, %(n)s::int) v,
     LATERAL (SELECT s, %(t0)s + s * interval '1 s' AS t
              FROM generate_series(%(d0)s::int, %(d1)s::int) s) x
"""
BUS_EVENTS = """
INSERT INTO bus_events (vehicle_id, ts, type, cause, detail, received_at)
SELECT 'bench-bus-' || lpad(v::text, 3, '0'), t,
       (ARRAY['takeover', 'obstacle_stop', 'remote_intervention'])[1 + (s / 1200 + v) %% 3],
       (ARRAY['pedestrian', 'parked_vehicle', 'sensor', NULL])[1 + (s / 1200) %% 4],
       jsonb_build_object('lat', 36.39, 'lon', 139.06), t + interval '0.3 s'
FROM generate_series(1, %(n)s::int) v,
     LATERAL (SELECT s, %(t0)s + s * interval '1 s' AS t
              FROM generate_series(%(d0)s::int, %(d1)s::int) s WHERE (s + 37 * v) %% 1200 = 0) x
"""
VEHICLE_EVENTS = """
INSERT INTO vehicle_events (vehicle_id, ts, type, stop_id, trip_id, route_id, direction_id,
                            operator_id, stop_sequence, service_date, scheduled_ts, delay_s,
                            dwell_s, detail)
SELECT 'bench-bus-' || lpad(v::text, 3, '0'), t + (k * 20) * interval '1 s',
       (ARRAY['arrival', 'departure'])[k + 1],
       stops[1 + (s / 90 + v) %% cardinality(stops)], 'bench-trip-' || v,
       routes[1 + v %% cardinality(routes)], v %% 2, 'bench-operator',
       1 + (s / 90) %% 30, (t AT TIME ZONE 'Asia/Tokyo')::date, t,
       60 * sin(s / 3000.0 + v) + 90 * random(), 20 + 10 * random(),
       CASE WHEN (s / 90 + v) %% 97 = 0 THEN '{"reason": "bench"}'::jsonb ELSE '{}' END
FROM (SELECT array_agg(route_id ORDER BY route_id) AS routes FROM grafana.gtfs_routes) r,
     (SELECT array_agg(stop_id ORDER BY stop_id) AS stops FROM grafana.gtfs_stops) st,
     generate_series(1, %(n)s::int) v, generate_series(0, 1) k,
     LATERAL (SELECT s, %(t0)s + s * interval '1 s' AS t
              FROM generate_series(%(d0)s::int, %(d1)s::int) s WHERE (s + 11 * v) %% 90 = 0) x
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
FROM generate_series(1, %(n)s::int) v,
     LATERAL (SELECT s, %(t0)s + s * interval '1 s' AS t
              FROM generate_series(%(d0)s::int, %(d1)s::int) s) x
"""
STATUS = """
INSERT INTO fiveg_device_status (site_id, device_id, ts, status, battery_pct, firmware,
                                 received_at)
SELECT 'bench-site', 'bench-5g-' || lpad(v::text, 3, '0'), t,
       CASE WHEN random() < 0.02 THEN 'degraded' WHEN random() < 0.002 THEN 'fault' ELSE 'ok' END,
       100 - (s %% 86400) / 1000.0, 'MB5G-2.4.1', t + interval '0.2 s'
FROM generate_series(1, %(n)s::int) v,
     LATERAL (SELECT s, %(t0)s + s * interval '1 s' AS t
              FROM generate_series(%(d0)s::int, %(d1)s::int) s WHERE (s + v) %% 60 = 0) x
"""
SENSOR = """
INSERT INTO fiveg_sensor (site_id, device_id, name, ts, unit, value, received_at)
SELECT 'bench-site', 'bench-5g-' || lpad(v::text, 3, '0'), m.name, t, m.unit,
       m.base + 3 * sin(s / 3600.0 + v), t + interval '0.2 s'
FROM generate_series(5, %(n)s::int, 5) v,
     (VALUES ('cabin_temp', 'Cel', 22.0), ('humidity', '%%RH', 55.0)) m(name, unit, base),
     LATERAL (SELECT s, %(t0)s + s * interval '1 s' AS t
              FROM generate_series(%(d0)s::int, %(d1)s::int) s WHERE (s + v) %% 60 = 0) x
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


@dataclass
class Timing:
    """One panel query's run times on one path and range."""

    panel: str
    times: list[float] = field(default_factory=list)
    rows: int = 0
    error: str = ""

    def pct(self, q: float) -> float:
        """The q-quantile of the run times (nearest rank), in seconds; inf when it failed."""
        if self.error or not self.times:
            return float("inf")
        s = sorted(self.times)
        return s[max(0, math.ceil(q * len(s)) - 1)]


def load(url: str, vol: Volume, now: datetime) -> dict[str, tuple[int, float]]:
    """Generate the fleet for [now - days, now) one day at a time; rows and seconds per table."""
    seconds = int(vol.days * 86400)
    t0 = now.replace(microsecond=0) - timedelta(seconds=seconds)
    out: dict[str, tuple[int, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TRIAL_DEVICES, {"n": vol.devices})
        conn.execute(TRIAL_PERIODS, {"start": t0, "end": now + timedelta(days=1)})
        for table, sql, unit in STREAMS:
            n = vol.buses if unit == "buses" else vol.devices
            started = time.perf_counter()
            rows = 0
            for d0 in range(0, seconds, 86400):
                d1 = min(seconds, d0 + 86400) - 1
                cur = conn.execute(sql, {"n": n, "t0": t0, "d0": d0, "d1": d1})
                rows += max(cur.rowcount, 0)

            if table == "vehicle_events":
                conn.execute(OFF_ROUTE, {})
            out[table] = (rows, time.perf_counter() - started)
            print(f"    {table}: {rows:,} rows in {out[table][1]:.1f} s", flush=True)
    return out


def refresh_rollups(url: str, timescale: bool) -> float:
    """Bring every rollup up to date, as the policy (TimescaleDB) or `mebuku db maintain`
    (plain PostgreSQL) would; then ANALYZE. Returns seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM mebuku.rollups ORDER BY name")]
        for name in names:
            if timescale:
                conn.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, now())")
            else:
                conn.execute("SELECT mebuku.refresh_rollup(%s)", [name])
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def contexts(
    conn: psycopg.Connection, now: datetime, timescale: bool, span: timedelta | None
) -> dict[str, QueryContext]:
    """Per dashboard: the query context for its default range (span None) or the last span."""
    out = {}
    for d in dashboards():
        start, end = time_range(d, now) if span is None else (now - span, now)
        interval = panel_interval(start, end, MAX_DATA_POINTS, MIN_INTERVAL)
        base = QueryContext(start, end, interval, timescale)
        out[d["uid"]] = QueryContext(
            start, end, interval, timescale, resolve_variables(conn, d, base)
        )
    return out


def time_panels(
    url: str, ctxs: dict[str, QueryContext], runs: int, timeout_s: float
) -> list[Timing]:
    """Run each panel query ``runs`` times (a query slower than the timeout runs once)."""
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = '{int(timeout_s * 1000)}ms'")
        for q in panel_queries():
            sql = expand(q.sql, ctxs[q.dashboard]).encode()
            t = Timing(q.id)
            for _ in range(runs):
                started = time.perf_counter()
                try:
                    t.rows = len(conn.execute(sql).fetchall())
                except psycopg.errors.QueryCanceled:
                    t.error = f"> {timeout_s:g} s"
                    break
                except psycopg.Error as e:
                    t.error = str(e).splitlines()[0][:60]
                    break
                t.times.append(time.perf_counter() - started)
                if t.times[-1] > 10 * TARGET_WEEK_S:
                    break  # hopeless: do not spend the machine on repeating it
            out.append(t)
    return out


def start_server(bindir: Path, timescale: bool) -> tuple[EmbeddedPostgres, Path]:
    """A private server with this PostgreSQL (TimescaleDB preloaded or not)."""
    root = server_dir("mebuku-panels-bench-")
    server = EmbeddedPostgres(root, bindir=bindir, preload_timescale=timescale)
    server.start()
    return server, root


def run_path(name: str, bindir: Path, timescale: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Load and time one storage path; returns its figures for the report."""
    print(f"== {name} ({bindir})", flush=True)
    server, root = start_server(bindir, timescale)
    try:
        url = server.url()
        settings = Settings(
            database_url=url, timescale="on" if timescale else "off", _env_file=None
        )
        migrator.migrate(url, settings)
        seed_all(url)
        now = datetime.now(UTC)
        loaded = load(url, Volume(args.buses, args.devices, args.days), now)
        refresh_s = refresh_rollups(url, timescale)
        print(f"    rollups refreshed in {refresh_s:.1f} s", flush=True)
        now = datetime.now(UTC)
        with psycopg.connect(url, autocommit=True) as conn:
            default_ctx = contexts(conn, now, timescale, None)
            week_ctx = contexts(conn, now, timescale, WEEK)
        default = time_panels(url, default_ctx, args.runs, args.timeout)
        week = time_panels(url, week_ctx, args.runs, args.timeout)
        return {
            "name": name,
            "loaded": loaded,
            "refresh_s": refresh_s,
            "default": default,
            "week": week,
        }
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _cells(t: Timing, target: float) -> tuple[str, str, bool]:
    """p50 and p95 in ms (or the error) and whether p95 meets the target."""
    if t.error:
        return t.error, "", False
    return f"{t.pct(0.5) * 1000:.0f}", f"{t.pct(0.95) * 1000:.0f}", t.pct(0.95) <= target


def report(result: dict[str, Any]) -> int:
    """Print one path's table (milliseconds); returns how many targets were missed."""
    loaded = result["loaded"]
    total = sum(r for r, _ in loaded.values())
    tables = ", ".join(f"{k} {r:,}" for k, (r, _) in loaded.items())
    load_s = sum(s for _, s in loaded.values())
    print(f"\n### {result['name']}: {total:,} rows loaded ({tables}); "
          f"load {load_s:.0f} s, rollup refresh {result['refresh_s']:.0f} s")  # fmt: skip
    print("\n| panel | default p50 ms | p95 ms | 7 days p50 ms | p95 ms | |")
    print("|---|---:|---:|---:|---:|---|")
    missed = 0
    for d, w in zip(result["default"], result["week"], strict=True):
        dp50, dp95, dok = _cells(d, TARGET_DEFAULT_S)
        wp50, wp95, wok = _cells(w, TARGET_WEEK_S)
        flag = "" if dok and wok else "FAIL"
        missed += (not dok) + (not wok)
        print(f"| {d.panel} | {dp50} | {dp95} | {wp50} | {wp95} | {flag} |")
    print(f"\n{missed} target(s) missed (p95 <= {TARGET_DEFAULT_S * 1000:.0f} ms default range, "
          f"<= {TARGET_WEEK_S * 1000:.0f} ms for 7 days)")  # fmt: skip
    return missed


def paths(args: argparse.Namespace) -> list[tuple[str, Path, bool]]:
    """The storage paths to measure: plain PostgreSQL, then TimescaleDB when found."""
    out: list[tuple[str, Path, bool]] = []
    if args.path in ("both", "plain"):
        out.append(("plain PostgreSQL", find_pg_bindir(None), False))
    ts = args.ts_bindir or os.environ.get("MEBUKU_TEST_TIMESCALE_PGBINDIR")
    if args.path in ("both", "timescale"):
        if ts and (Path(ts) / "postgres").exists():
            out.append(("TimescaleDB", Path(ts), True))
        else:
            print("TimescaleDB binaries not found (--ts-bindir): that path is skipped")
    return out


def main() -> int:
    """Run the benchmark; exit 1 when a target is missed."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--buses", type=int, default=60)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=30, help="seconds per query")
    ap.add_argument("--path", choices=("both", "plain", "timescale"), default="both")
    ap.add_argument("--ts-bindir", help="TimescaleDB-enabled PostgreSQL bin folder")
    ap.add_argument("--keep", action="store_true", help="keep the server folders")
    args = ap.parse_args()
    print(f"{args.buses} buses and {args.devices} 5G devices at 1 Hz for {args.days:g} days, "
          f"{args.runs} runs per panel and range")  # fmt: skip
    results = [run_path(n, b, ts, args) for n, b, ts in paths(args)]
    missed = sum(report(r) for r in results)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
