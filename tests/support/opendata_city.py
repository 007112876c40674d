"""A small simulated city for the open-data tests and the EBPM panel seed: residents with
birth dates and cards, MyTaku rides picked up inside real town blocks (ledger lines
included), IC-card bus taps, departures with delays, autonomous-bus telemetry with
takeovers, and a local-5G trial with targets and samples. Written as the schema owner."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from shapely.geometry import shape

from mobility.fares.rules import JST, fiscal_year
from opendata.towns import load_towns, read_towns

ROUTES = ("route-A", "route-B")
STOPS = ("stop-1", "stop-2", "stop-3")


@dataclass(frozen=True)
class CityPlan:
    """How much to simulate, and when."""

    start: datetime  # first ride (UTC)
    days: int = 3
    residents: int = 40
    rides: int = 150
    taps: int = 200
    seed: int = 1
    towns: int = 6  # rides happen in the first N towns (by key) with population >= 200


def town_points(n: int) -> list[tuple[str, float, float]]:
    """(key_code, lon, lat) of a point inside each of the first ``n`` populated towns."""
    out = []
    for t in sorted(read_towns(), key=lambda t: t.key_code):
        if t.population < 200:
            continue
        p = shape(t.geometry).representative_point()
        out.append((t.key_code, p.x, p.y))
        if len(out) == n:
            break
    return out


def ensure_towns(conn: psycopg.Connection) -> None:
    """Load the town table once."""
    if conn.execute("SELECT count(*) FROM opendata_towns").fetchone() == (0,):
        load_towns(conn, read_towns())


def add_residents(conn: psycopg.Connection, n: int, rng: random.Random) -> list[int]:
    """Residents with a birth date (ages 55-95) and an active card."""
    rids = [
        int(r[0])
        for r in conn.execute(
            "INSERT INTO fare_residents SELECT FROM generate_series(1, %s) RETURNING resident_id",
            [n],
        ).fetchall()
    ]
    for rid in rids:
        birth = date(2026 - rng.randint(55, 95), rng.randint(1, 12), rng.randint(1, 28))
        conn.execute(
            "INSERT INTO fare_eligibility_facts (resident_id, kind, value, recorded_by)"
            " VALUES (%s, 'birth_date', %s, 'test')",
            [rid, birth.isoformat()],
        )
        h = hashlib.sha256(f"opendata-card-{rid}".encode()).digest()
        conn.execute(
            "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, %s, %s)",
            [h, f"{rid % 65536:04X}", rid],
        )
    return rids


def add_rides(
    conn: psycopg.Connection,
    rids: list[int],
    plan: CityPlan,
    rng: random.Random,
    *,
    tag: str = "r",
) -> int:
    """MyTaku rides with ledger lines; returns the subsidy yen posted."""
    points = town_points(plan.towns)
    total = 0
    for i in range(plan.rides):
        rid = rng.choice(rids)
        # A resident rides mostly from "their" town, sometimes elsewhere.
        town = points[rid % len(points)] if rng.random() < 0.8 else rng.choice(points)
        when = plan.start + timedelta(minutes=rng.randint(0, plan.days * 24 * 60 - 30))
        rec = f"{tag}-{plan.seed}-{i}"
        subsidy = rng.choice((500, 700, 1000))
        day = when.astimezone(JST).date()
        conn.execute(
            "INSERT INTO fare_taxi_rides (operator_id, record_id, vehicle_id, pickup_at,"
            " dropoff_at, pickup_lon, pickup_lat, dropoff_lon, dropoff_lat, meter_fare_yen,"
            " riders, policy_version) VALUES ('demo-taxi', %s, 'taxi-1', %s, %s, %s, %s,"
            " 139.0729, 36.3837, 1500, 1, 'mytaku-2022-04')",
            [rec, when, when + timedelta(minutes=15), town[1], town[2]],
        )
        conn.execute(
            "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,"
            " amount_yen, ride_at, service_day, fiscal_year, policy_version)"
            " VALUES (%s, 'demo-taxi', 'taxi', %s, %s, 'mytaku', %s, %s, %s, %s, 'mytaku-2022-04')",
            [day.replace(day=1), rec, rid, subsidy, when, day, fiscal_year(day)],
        )
        total += subsidy
    return total


def add_buses(conn: psycopg.Connection, plan: CityPlan, rng: random.Random) -> None:
    """Bus taps, departures (with delays), telemetry with passengers, takeovers."""
    for i in range(plan.taps):
        when = plan.start + timedelta(minutes=rng.randint(0, plan.days * 24 * 60 - 30))
        h = hashlib.sha256(f"tap-{plan.seed}-{i}".encode()).digest()
        conn.execute(
            "INSERT INTO fare_bus_taps (operator_id, record_id, route_id, origin_stop_id,"
            " dest_stop_id, tap_on_at, tap_off_at, idm_hash, fare_yen, discount_yen,"
            " policy_version) VALUES ('bus-co', %s, %s, %s, 'stop-3', %s, %s, %s, 200, 0,"
            " 'bus-2024-12')",
            [f"t-{plan.seed}-{i}", rng.choice(ROUTES), rng.choice(STOPS[:2]), when,
             when + timedelta(minutes=10), h],
        )  # fmt: skip
    for d in range(plan.days):
        for route in ROUTES:
            for n in range(12):
                sched = plan.start + timedelta(days=d, hours=1 + n)
                for stop in STOPS:
                    delay = rng.choice((0, 30, 60, 120, 400)) if n % 3 else rng.randint(0, 900)
                    conn.execute(
                        "INSERT INTO vehicle_events (vehicle_id, ts, type, stop_id, trip_id,"
                        " route_id, direction_id, operator_id, scheduled_ts, delay_s)"
                        " VALUES (%s, %s, 'departure', %s, %s, %s, 0, 'bus-co', %s, %s)",
                        [f"bus-{route}", sched + timedelta(seconds=delay), stop,
                         f"{route}-{d}-{n}", route, sched, delay],
                    )  # fmt: skip
    fixes = []
    for v in range(2):
        odo = 0.0
        pax = 0
        for s in range(0, 3 * 3600, 10):
            ts = plan.start + timedelta(seconds=s)
            odo += 50.0
            pax = max(0, pax + rng.choice((-1, 0, 0, 1, 2)) if s % 300 == 0 else pax)
            mode = "manual" if (s // 600) % 4 == 0 else "autonomous"
            fixes.append((f"av-{v}", ts, s, 36.38, 139.07, 5.0, 0.0, odo, mode, False, pax,
                          f"av-trip-{v}", ROUTES[0]))  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bus_telemetry (vehicle_id, ts, seq, lat, lon, speed_mps, heading_deg,"
            " odometer_m, mode, door_open, passengers, trip_id, route_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            fixes,
        )
    for j, cause in enumerate(("pedestrian", "parked_vehicle", "pedestrian", "signal")):
        conn.execute(
            "INSERT INTO bus_events (vehicle_id, ts, type, cause) VALUES (%s, %s, 'takeover', %s)",
            [f"av-{j % 2}", plan.start + timedelta(minutes=7 + 13 * j), cause],
        )


def add_fiveg(conn: psycopg.Connection, plan: CityPlan, rng: random.Random) -> None:
    """One transport trial with two targets and a minute of samples per device."""
    conn.execute(
        "INSERT INTO fiveg_trials (trial_id, title, theme, period_start, period_end,"
        " latency_bound_ms) VALUES ('od-trial', '自動運転バス遠隔監視', 'transport', %s, %s, 50)",
        [plan.start - timedelta(days=1), plan.start + timedelta(days=plan.days + 1)],
    )
    for dev in ("od-bus-1", "od-bus-2"):
        conn.execute(
            "INSERT INTO fiveg_trial_devices (trial_id, device_id, kind) VALUES"
            " ('od-trial', %s, 'bus_modem')",
            [dev],
        )
    conn.execute(
        "INSERT INTO fiveg_trial_targets (trial_id, kpi, op, value, unit, label, source) VALUES"
        " ('od-trial', 'dl_mbps_p50', '>=', 100, 'Mbit/s', 'DL median', 'council'),"
        " ('od-trial', 'rtt_ms_p95', '<=', 30, 'ms', 'RTT p95', 'council')"
    )
    rows = []
    for dev in ("od-bus-1", "od-bus-2"):
        for i in range(120):
            rows.append((
                "site-1", dev, plan.start + timedelta(minutes=i), rng.uniform(-100, -75),
                rng.lognormvariate(5, 0.3), rng.lognormvariate(3, 0.3), rng.uniform(8, 40),
                36.3838 + 0.0001 * (i % 30), 139.0729 + 0.0001 * (i // 30),
            ))  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO fiveg_radio (site_id, device_id, ts, rsrp_dbm, dl_mbps, ul_mbps,"
            " rtt_ms, lat, lon) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def seed_city(url: str, plan: CityPlan) -> dict[str, int]:
    """Everything above in one go; returns totals the tests compare with."""
    rng = random.Random(plan.seed)
    with psycopg.connect(url) as conn:
        ensure_towns(conn)
        rids = add_residents(conn, plan.residents, rng)
        subsidy = add_rides(conn, rids, plan, rng)
        add_buses(conn, plan, rng)
        add_fiveg(conn, plan, rng)
        conn.execute(
            "INSERT INTO opendata_budgets (fiscal_year, program, budget_yen) VALUES (%s,"
            " 'mytaku', 5000000) ON CONFLICT DO NOTHING",
            [fiscal_year(plan.start.astimezone(JST).date())],
        )
    return {"subsidy_yen": subsidy, "rides": plan.rides, "taps": plan.taps}


def default_plan() -> CityPlan:
    """Three days ending about now (recent enough for dashboards' default ranges)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return CityPlan(start=now - timedelta(days=3))
