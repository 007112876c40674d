"""Issue 16, item 1: the `opendata` aggregate views and the role that may read only them."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from core import roles
from tests.support.opendata_city import CityPlan, seed_city

PLAN = CityPlan(start=datetime(2026, 5, 10, 0, 0, tzinfo=UTC), days=3, rides=120)
PERSONAL = (
    "fare_residents",
    "fare_resident_certs",
    "fare_eligibility_facts",
    "fare_ic_cards",
    "fare_taxi_rides",
    "fare_taxi_riders",
    "fare_bus_taps",
    "fare_ledger",
    "fare_card_audit",
    "auth_sessions",
    "api_keys",
)


@pytest.fixture(scope="module")
def seeded(db_url: str) -> dict[str, int]:
    return seed_city(db_url, PLAN)


@pytest.fixture(scope="module")
def opendata_conn(db_url: str, seeded: dict[str, int]):
    with psycopg.connect(roles.role_url(db_url, "opendata"), autocommit=True) as conn:
        yield conn


def _denied(conn: psycopg.Connection, query: str) -> bool:
    try:
        conn.execute(query.encode())
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def test_the_opendata_role_reads_every_opendata_view(db_url: str, opendata_conn) -> None:
    with psycopg.connect(db_url) as owner:
        rels = roles.relations(owner)
    views = [n for s, n, _ in rels if s == "opendata"]
    assert {"mytaku_use", "bus_boardings_stop", "route_punctuality", "autonomy_monthly",
            "fiveg_trial_kpis", "fiveg_coverage_cells", "towns"} <= set(views)  # fmt: skip
    for name in views:
        opendata_conn.execute(
            sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier("opendata", name))
        )


@pytest.mark.parametrize("table", PERSONAL)
def test_the_opendata_role_cannot_read_personal_tables(opendata_conn, table: str) -> None:
    assert _denied(opendata_conn, f"SELECT * FROM public.{table} LIMIT 1"), table


def test_the_opendata_role_reads_nothing_outside_its_views_and_history(
    db_url: str, opendata_conn
) -> None:
    with psycopg.connect(db_url) as owner:
        rels = roles.relations(owner)
    allowed = {("public", "opendata_releases"), ("public", "opendata_release_cells")}
    for schema, name, _ in rels:
        if schema == "opendata" or (schema, name) in allowed:
            continue
        target = sql.Identifier(schema, name).as_string(opendata_conn)
        assert _denied(opendata_conn, f"SELECT 1 FROM {target} LIMIT 1"), target
    assert _denied(opendata_conn, "INSERT INTO opendata_budgets VALUES (2026, 'mytaku', 1)")
    assert _denied(opendata_conn, "CREATE TABLE public.x (a int)")


def test_mytaku_use_adds_up_to_the_ledger(opendata_conn, seeded: dict[str, int]) -> None:
    rides, yen, residents = opendata_conn.execute(
        "SELECT sum(rides), sum(subsidy_yen), sum(residents) FROM opendata.mytaku_use"
    ).fetchone()
    assert rides == seeded["rides"]
    assert yen == seeded["subsidy_yen"]
    # Each resident is counted once per month (in their most-used town): the counts add up.
    months = opendata_conn.execute(
        "SELECT count(DISTINCT month) FROM opendata.mytaku_use"
    ).fetchone()[0]
    assert 0 < residents <= PLAN.residents * months
    towns = opendata_conn.execute(
        "SELECT DISTINCT town_code FROM opendata.mytaku_use ORDER BY 1"
    ).fetchall()
    assert len(towns) == PLAN.towns and ("_outside",) not in towns
    bands = {r[0] for r in opendata_conn.execute("SELECT age_band FROM opendata.mytaku_use")}
    assert bands <= {"under65", "65to74", "75to84", "85plus"} and len(bands) >= 3


def test_ridership_punctuality_autonomy_and_fiveg_views(opendata_conn, seeded) -> None:
    taps = opendata_conn.execute(
        "SELECT sum(ic_boardings) FROM opendata.bus_boardings_stop"
    ).fetchone()[0]
    assert taps == seeded["taps"]
    assert opendata_conn.execute(
        "SELECT sum(ic_boardings), sum(counted_boardings) > 0 FROM opendata.bus_boardings_route"
    ).fetchone() == (taps, True)
    dep, on_time = opendata_conn.execute(
        "SELECT sum(departures), sum(on_time) FROM opendata.route_punctuality"
    ).fetchone()
    assert dep == PLAN.days * 2 * 12 * 3 and 0 < on_time < dep
    km, share, takeovers = opendata_conn.execute(
        "SELECT sum(km), max(autonomous_share), sum(takeovers) FROM opendata.autonomy_monthly"
    ).fetchone()
    assert km == pytest.approx(2 * (3 * 360 - 1) * 50 / 1000)
    assert 0.7 < share < 0.8 and takeovers == 4
    causes = dict(opendata_conn.execute("SELECT cause, takeovers FROM opendata.autonomy_takeovers"))
    assert causes == {"pedestrian": 2, "parked_vehicle": 1, "signal": 1}
    kpis = opendata_conn.execute(
        "SELECT kpi, measured, met FROM opendata.fiveg_trial_kpis ORDER BY kpi"
    ).fetchall()
    assert [k for k, _, _ in kpis] == ["dl_mbps_p50", "rtt_ms_p95"]
    assert all(m is not None and isinstance(ok, bool) for _, m, ok in kpis)
    cells = opendata_conn.execute(
        "SELECT sum(samples), count(*) FROM opendata.fiveg_coverage_cells"
    ).fetchone()
    assert cells[0] == 240 and cells[1] >= 2
