"""Geodesy for every package, on pyproj: distances on the WGS84 ellipsoid (``pyproj.Geod``)
and the metric grid JGD2011 / Japan Plane Rectangular CS IX (EPSG:6677), which covers Gunma.

Coordinates are (lat, lon) in degrees and (x, y) = (easting, northing) in metres. pyproj
transformers must not be shared between threads, and the API runs blocking geometry in
worker threads, so each thread gets its own pair.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from pyproj import Geod, Transformer

WGS84 = "EPSG:4326"
PROJECTED_CRS = "EPSG:6677"

_GEOD = Geod(ellps="WGS84")


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance in metres between two WGS84 points."""
    _, _, d = _GEOD.inv(lon1, lat1, lon2, lat2)
    return float(d)


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from the first point to the second, degrees clockwise from north."""
    az, _, _ = _GEOD.inv(lon1, lat1, lon2, lat2)
    return float(az) % 360.0


def offset(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` away from (lat, lon) in direction ``bearing`` (degrees)."""
    lon2, lat2, _ = _GEOD.fwd(lon, lat, bearing, metres)
    return float(lat2), float(lon2)


class _Grid(threading.local):
    """This thread's transformers (created on first use in each thread)."""

    def __init__(self) -> None:
        self.to_grid = Transformer.from_crs(WGS84, PROJECTED_CRS, always_xy=True)
        self.to_wgs = Transformer.from_crs(PROJECTED_CRS, WGS84, always_xy=True)


_grid = _Grid()


def project(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) in WGS84 -> (x, y) metres in EPSG:6677."""
    x, y = _grid.to_grid.transform(lon, lat)
    return float(x), float(y)


def project_many(lats: Sequence[float], lons: Sequence[float]) -> tuple[list[float], list[float]]:
    """Many points at once (one pyproj call): (lats, lons) -> (xs, ys)."""
    xs, ys = _grid.to_grid.transform(list(lons), list(lats))
    return list(map(float, xs)), list(map(float, ys))


def unproject(x: float, y: float) -> tuple[float, float]:
    """(x, y) metres in EPSG:6677 -> (lat, lon)."""
    lon, lat = _grid.to_wgs.transform(x, y)
    return float(lat), float(lon)
