"""Projection to metres: JGD2011 / Japan Plane Rectangular CS IX (EPSG:6677), which covers
Gunma; distances along shapes and between points are computed there."""

from __future__ import annotations

from functools import lru_cache

from pyproj import Transformer

PROJECTED_CRS = "EPSG:6677"


@lru_cache(maxsize=1)
def _to_metres() -> Transformer:
    return Transformer.from_crs("EPSG:4326", PROJECTED_CRS, always_xy=True)


@lru_cache(maxsize=1)
def _to_degrees() -> Transformer:
    return Transformer.from_crs(PROJECTED_CRS, "EPSG:4326", always_xy=True)


def project(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) in WGS84 -> (x, y) metres in EPSG:6677."""
    x, y = _to_metres().transform(lon, lat)
    return float(x), float(y)


def project_many(lats: list[float], lons: list[float]) -> tuple[list[float], list[float]]:
    xs, ys = _to_metres().transform(lons, lats)
    return list(map(float, xs)), list(map(float, ys))


def unproject(x: float, y: float) -> tuple[float, float]:
    """(x, y) metres in EPSG:6677 -> (lat, lon)."""
    lon, lat = _to_degrees().transform(x, y)
    return float(lat), float(lon)
