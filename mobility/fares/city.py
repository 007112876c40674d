"""Maebashi's city boundary: the union of its town polygons, as a prepared geometry."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from core.resources import towns_geojson

TOWNS = towns_geojson()


@lru_cache(maxsize=1)
def city_boundary(path: Path = TOWNS) -> BaseGeometry:
    """The city boundary, used to decide whether a taxi trip is inside Maebashi."""
    with path.open(encoding="utf-8") as f:
        doc = json.load(f)
    geoms = [shape(ft["geometry"]) for ft in doc["features"]]
    # buffer(0) mends slivers between neighbouring town blocks; ~1e-6 deg is ~0.1 m.
    city = shapely.union_all([g.buffer(0) for g in geoms]).buffer(1e-6)
    shapely.prepare(city)
    return city


def inside_maebashi(lon: float, lat: float) -> bool:
    """Whether a point lies in Maebashi (MyTaku pays only for trips inside the city)."""
    return bool(city_boundary().covers(Point(lon, lat)))
