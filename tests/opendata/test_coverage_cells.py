"""The open-data coverage cells are exactly the 50 m cells of fiveg.coverage (EPSG:6677).

The simulated city's 5G samples are binned twice: by the published view
opendata.fiveg_coverage_cells (SQL projection, core/roles/migrations/0410) and by
fiveg.coverage with pyproj, as the API and the report do. Same cell ids, sample counts,
medians and centres; the release's GeoJSON draws the same 50 m squares.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from core import roles
from core.geo import distance_m, unproject
from fiveg.coverage import CELL_M, coverage_geojson
from opendata import formats, release
from tests.support.opendata_city import CityPlan, seed_city

PLAN = CityPlan(start=datetime(2026, 5, 10, 0, 0, tzinfo=UTC), days=3, rides=40)


@pytest.fixture(scope="module")
def views(db_url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(published cells as the opendata role reads them, fiveg.coverage's features by cell)."""
    seed_city(db_url, PLAN)
    with psycopg.connect(roles.role_url(db_url, "opendata")) as conn:
        cur = conn.execute("SELECT * FROM opendata.fiveg_coverage_cells")
        cols = [c.name for c in cur.description or []]
        cells = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    with psycopg.connect(db_url) as conn:
        points = conn.execute(
            "SELECT r.lat, r.lon, r.rsrp_dbm, r.dl_mbps, r.ul_mbps FROM fiveg_radio r"
            " JOIN fiveg_trial_devices d USING (device_id)"
            " JOIN fiveg_trials t ON t.trial_id = d.trial_id"
            " AND r.ts >= t.period_start AND r.ts < t.period_end"
            " WHERE t.trial_id = 'od-trial' AND r.lat IS NOT NULL AND r.lon IS NOT NULL"
        ).fetchall()
    api = {f["properties"]["cell"]: f for f in coverage_geojson(points)["features"]}
    return cells, api


def test_cells_are_fiveg_coverage_cells(views: tuple[list[dict[str, Any]], dict[str, Any]]):
    cells, api = views
    assert {c["trial_id"] for c in cells} == {"od-trial"}
    assert len(api) >= 3, "the seed should cover several cells"
    by_id = {c["cell"]: c for c in cells}
    assert set(by_id) == set(api)
    for cell, f in api.items():
        got, props = by_id[cell], f["properties"]
        assert f"{got['cx']}_{got['cy']}" == cell
        assert got["samples"] == props["samples"], cell
        assert got["rsrp_dbm_median"] == pytest.approx(props["median_rsrp_dbm"]), cell
        assert got["dl_mbps_median"] == pytest.approx(props["median_dl_mbps"]), cell
        assert got["ul_mbps_median"] == pytest.approx(props["median_ul_mbps"]), cell
        lat, lon = unproject((got["cx"] + 0.5) * CELL_M, (got["cy"] + 0.5) * CELL_M)
        assert got["lat"] == pytest.approx(lat, abs=1e-9)
        assert got["lon"] == pytest.approx(lon, abs=1e-9)


def test_geojson_draws_the_api_squares(views: tuple[list[dict[str, Any]], dict[str, Any]]):
    cells, api = views
    features = release.geo_features({"towns": [], "fiveg_coverage_cells": cells})
    published = features["fiveg_coverage_cells"]
    # k-suppression: cells under 10 samples are not published.
    assert {c["cell"] for _g, c in published} == {
        cell for cell, f in api.items() if f["properties"]["samples"] >= 10
    }
    assert published, "some cells have 10+ samples"
    for geometry, c in published:
        ring = api[c["cell"]]["geometry"]["coordinates"][0]
        (drawn,) = geometry["coordinates"]
        assert len(drawn) == len(ring) == 5
        for (x, y), (ax, ay) in zip(drawn, ring, strict=True):
            assert x == pytest.approx(ax, abs=1e-7) and y == pytest.approx(ay, abs=1e-7)


def test_cell_polygon_is_a_50_m_square() -> None:
    (ring,) = formats.cell_polygon(-1370, 845)["coordinates"]  # near Maebashi station
    sides = [distance_m(a[1], a[0], b[1], b[0]) for a, b in itertools.pairwise(ring)]
    assert all(abs(s - CELL_M) < 0.05 for s in sides), sides
