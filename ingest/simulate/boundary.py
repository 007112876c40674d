"""Maebashi's city boundary from the town polygons in ``core/data/maebashi/towns.geojson``,
so the simulator drives only routes that serve the city."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from shapely import Point
from shapely.geometry import shape
from shapely.ops import unary_union
from shapely.prepared import prep

from core.resources import towns_geojson

TOWNS = towns_geojson()


def city_contains(path: Path = TOWNS) -> Callable[[float, float], bool]:
    """``inside(lat, lon)`` for the union of the town polygons (GeoJSON in CRS84)."""
    features = json.loads(path.read_text(encoding="utf-8"))["features"]
    city = prep(unary_union([shape(f["geometry"]) for f in features]))

    def inside(lat: float, lon: float) -> bool:
        return bool(city.contains(Point(lon, lat)))

    return inside


def city_routes(share_inside: dict[str, float], minimum: float = 0.5) -> set[str]:
    """Routes that serve the city: more than ``minimum`` of their stops lie inside."""
    return {r for r, share in share_inside.items() if share > minimum}
