"""core.geo: WGS84 geodesics and the EPSG:6677 grid (Japan Plane Rectangular CS IX)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from core.geo import bearing_deg, distance_m, offset, project, project_many, unproject

MAEBASHI_STATION = (36.38373, 139.072877)
CHUO_MAEBASHI = (36.392176, 139.074485)


def test_distances_are_geodesic_metres() -> None:
    # One degree of latitude at 36 N on the WGS84 ellipsoid:
    # 111,132.954 - 559.822 cos 72 + 1.175 cos 144 = 110,959 m (a sphere says 111,195).
    assert distance_m(35.5, 139.0, 36.5, 139.0) == pytest.approx(110_959, abs=2)
    d = distance_m(*MAEBASHI_STATION, *CHUO_MAEBASHI)
    assert d == pytest.approx(distance_m(*CHUO_MAEBASHI, *MAEBASHI_STATION))
    assert 900 < d < 1000  # the two stations are a ten-minute walk apart


def test_offset_and_bearing_agree() -> None:
    lat, lon = offset(*MAEBASHI_STATION, 45.0, 600.0)
    assert distance_m(*MAEBASHI_STATION, lat, lon) == pytest.approx(600.0, abs=1e-6)
    assert bearing_deg(*MAEBASHI_STATION, lat, lon) == pytest.approx(45.0, abs=1e-6)
    assert bearing_deg(36.0, 139.0, 35.0, 139.0) == pytest.approx(180.0)


def test_grid_origin_and_round_trip() -> None:
    x, y = project(36.0, 139 + 50 / 60)  # the origin of zone IX
    assert x == pytest.approx(0.0, abs=1e-3) and y == pytest.approx(0.0, abs=1e-3)
    lat, lon = unproject(*project(*MAEBASHI_STATION))
    assert (lat, lon) == pytest.approx(MAEBASHI_STATION, abs=1e-9)
    xs, ys = project_many([MAEBASHI_STATION[0]], [MAEBASHI_STATION[1]])
    assert (xs[0], ys[0]) == project(*MAEBASHI_STATION)


def test_projection_from_many_threads_gives_the_same_answers() -> None:
    points = [(36.3 + i * 1e-4, 139.0 + i * 1e-4) for i in range(2000)]
    expected = [project(*p) for p in points]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: [project(*p) for p in points], range(8)))
    assert all(r == expected for r in results)
