"""The council's coverage panel draws exactly the API's and the report's 50 m cells.

fiveg.coverage bins samples into 50 m cells of EPSG:6677 with pyproj; the panel reads
grafana.fiveg_radio_cells, whose projection is SQL (core/roles/migrations/0400). Both run
here on the same seeded samples: same cells, same sample counts, same medians, and each
drawn centre is the centre of the API's cell polygon.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from core.geo import project, unproject
from core.roles import role_url
from fiveg.coverage import CELL_M, cell_of, coverage_geojson
from tests.grafana.panel_runner import (
    MAX_DATA_POINTS,
    MIN_INTERVAL,
    dashboards,
    resolve_variables,
    run,
    time_range,
)
from tests.support.grafana_macros import QueryContext, expand, panel_interval
from tests.support.seed import fiveg as fiveg_seed


@pytest.fixture(scope="module")
def seeded(db_url: str) -> Iterator[str]:
    fiveg_seed.seed(db_url)
    yield db_url


def test_sql_projection_matches_pyproj(db_url: str) -> None:
    """The SQL transverse Mercator agrees with PROJ within micrometres over greater
    Maebashi, forward and back, and so puts points in the same cells."""
    rnd = random.Random(14)
    pts = [(rnd.uniform(36.2, 36.6), rnd.uniform(138.9, 139.3)) for _ in range(3000)]
    with psycopg.connect(role_url(db_url, "grafana")) as conn:
        rows = conn.execute(
            "SELECT p.lat, p.lon, grafana.jgd2011_ix_xy(p.lat, p.lon),"
            " grafana.jgd2011_ix_latlon((grafana.jgd2011_ix_xy(p.lat, p.lon))[1],"
            " (grafana.jgd2011_ix_xy(p.lat, p.lon))[2])"
            " FROM unnest(%s::float8[], %s::float8[]) AS p(lat, lon)",
            [[p[0] for p in pts], [p[1] for p in pts]],
        ).fetchall()
    worst_m = worst_deg = 0.0
    for lat, lon, xy, back in rows:
        x, y = project(lat, lon)
        worst_m = max(worst_m, abs(xy[0] - x), abs(xy[1] - y))
        worst_deg = max(worst_deg, abs(back[0] - lat), abs(back[1] - lon))
        assert (int(xy[0] // CELL_M), int(xy[1] // CELL_M)) == cell_of(lat, lon)
    assert worst_m < 1e-6, worst_m
    assert worst_deg < 1e-11, worst_deg


def _coverage_panel() -> tuple[dict[str, Any], dict[str, Any]]:
    for d in dashboards():
        if d["uid"] == "fiveg-council":
            (p,) = [p for p in d["panels"] if p["type"] == "geomap"]
            return d, p
    raise AssertionError("no council dashboard")


def test_panel_draws_the_api_cells(seeded: str) -> None:
    d, p = _coverage_panel()
    now = datetime.now(UTC)
    start, end = time_range(d, now)
    base = QueryContext(start, end, panel_interval(start, end, MAX_DATA_POINTS, MIN_INTERVAL))
    with psycopg.connect(role_url(seeded, "grafana")) as conn:
        variables = resolve_variables(conn, d, base)
        ctx = QueryContext(start, end, base.interval, False, variables)
        desc, rows = run(conn, expand(p["targets"][0]["rawSql"], ctx))
    trial = variables["trial"].values[0]
    cols = [c.name for c in desc]
    panel_cells = {r[cols.index("cell")]: dict(zip(cols, r, strict=True)) for r in rows}

    # The API's computation (fiveg/http.py get_coverage) on the same samples: the panel
    # reads the trial's hourly cell rollup, the hours that start in the range.
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    if first_hour < start:
        first_hour += timedelta(hours=1)
    with psycopg.connect(seeded) as conn:
        points = conn.execute(
            "SELECT lat, lon, rsrp_dbm, dl_mbps, ul_mbps FROM fiveg_radio"
            " WHERE device_id IN (SELECT device_id FROM fiveg_trial_devices WHERE trial_id = %s)"
            " AND ts >= %s AND ts <= %s AND lat IS NOT NULL AND lon IS NOT NULL",
            [trial, first_hour, end],
        ).fetchall()
    api = {f["properties"]["cell"]: f for f in coverage_geojson(points)["features"]}

    assert len(api) >= 5, "the seed should cover several cells"
    assert any(f["properties"]["sufficient"] for f in api.values())
    assert any(not f["properties"]["sufficient"] for f in api.values()) or len(api) > 20
    assert set(panel_cells) == set(api)
    for cell, f in api.items():
        got, props = panel_cells[cell], f["properties"]
        assert got["samples"] == props["samples"], cell
        # Medians from the cell's bins: within one bin (1 dB; 40 a decade, 5.9 %).
        if props["sufficient"]:
            assert got["median RSRP"] == pytest.approx(props["median_rsrp_dbm"], abs=1.0), cell
        else:
            assert got["median RSRP"] is None, cell
        assert got["median UL"] == pytest.approx(props["median_ul_mbps"], rel=0.06), cell
        assert got["median DL"] == pytest.approx(props["median_dl_mbps"], rel=0.06), cell
        # The marker sits at the centre of the API's polygon.
        ring = f["geometry"]["coordinates"][0]
        cx, cy = (int(v) for v in cell.split("_"))
        lat, lon = unproject((cx + 0.5) * CELL_M, (cy + 0.5) * CELL_M)
        assert got["latitude"] == pytest.approx(lat, abs=1e-9)
        assert got["longitude"] == pytest.approx(lon, abs=1e-9)
        lons, lats = [c[0] for c in ring], [c[1] for c in ring]
        assert min(lats) < got["latitude"] < max(lats)
        assert min(lons) < got["longitude"] < max(lons)
