"""Every SQL panel and variable of every generated dashboard runs on real, seeded data.

Queries are expanded exactly as Grafana expands them (tests/support/grafana_macros.py), both with
the data source's TimescaleDB option (time_bucket) and without it, and must return rows
of the shape their panel type needs. Plain PostgreSQL always; TimescaleDB when
MEBUKU_TEST_TIMESCALE_URL is set. Every query runs logged in as mebuku_grafana, the role
Grafana's data source uses, which may read only the grafana.* views.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import migrator
from core.roles import role_url
from tests.conftest import make_settings
from tests.grafana.panel_runner import check_all, panel_queries, seed_all


@pytest.fixture(scope="module")
def seeded_db(db_url: str) -> Iterator[str]:
    seed_all(db_url)
    yield db_url


@pytest.mark.parametrize("timescaledb", [False, True], ids=["plain-timeGroup", "time_bucket"])
def test_every_panel_query_runs_with_the_right_shape(seeded_db: str, timescaledb: bool) -> None:
    checked = check_all(role_url(seeded_db, "grafana"), timescaledb=timescaledb)
    expected = {q.id for q in panel_queries()}
    assert expected and expected <= set(checked)


def test_panels_have_sql_to_check() -> None:
    # Guards against the test passing vacuously (e.g. a data source uid typo).
    assert any(q.panel_type == "timeseries" for q in panel_queries())


@pytest.mark.timescale
def test_every_panel_query_runs_on_timescaledb(timescale_url: str) -> None:
    # A real server may want passwords: give mebuku_grafana one through migrate.
    password = "panel-test-grafana-pw"
    migrator.migrate(timescale_url, make_settings(timescale_url, db_grafana_password=password))
    seed_all(timescale_url)
    checked = check_all(role_url(timescale_url, "grafana", password), timescaledb=True)
    assert {q.id for q in panel_queries()} <= set(checked)
