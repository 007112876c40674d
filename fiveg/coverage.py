"""Coverage maps: samples binned into 50 m cells of the Japan Plane Rectangular CS IX.

EPSG:6677 (JGD2011 / zone IX) is the metric grid that covers Gunma, so cells are true
50 m squares around Maebashi. Output is GeoJSON (RFC 7946, WGS84 lon/lat). Cells with
fewer than ``min_samples`` samples are returned with ``sufficient: false`` and no colour.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from core.geo import PROJECTED_CRS, project, unproject
from fiveg.kpi import band_of

CELL_M = 50.0
GRID_CRS = PROJECTED_CRS
BAND_COLOURS = {"excellent": "#1a9850", "good": "#91cf60", "fair": "#fee08b", "poor": "#d73027"}

Point = tuple[float, float, float | None, float | None, float | None]  # lat, lon, rsrp, dl, ul


def cell_of(lat: float, lon: float, size: float = CELL_M) -> tuple[int, int]:
    """(column, row) of the cell holding this point: floor(easting / size), floor(northing)."""
    x, y = project(lat, lon)
    return math.floor(x / size), math.floor(y / size)


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def coverage_geojson(
    points: Iterable[Point], *, min_samples: int = 10, size: float = CELL_M
) -> dict[str, Any]:
    """A FeatureCollection of grid cells with median RSRP/DL/UL and sample counts."""
    cells: dict[tuple[int, int], list[Point]] = {}
    for p in points:
        cells.setdefault(cell_of(p[0], p[1], size), []).append(p)
    features = []
    for (cx, cy), pts in sorted(cells.items()):
        x0, y0 = cx * size, cy * size
        ring = [(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size), (x0, y0)]
        coords = [list(reversed(unproject(x, y))) for x, y in ring]
        rsrp = _median([p[2] for p in pts if p[2] is not None])
        enough = len(pts) >= min_samples
        band = band_of("rsrp_dbm", rsrp) if rsrp is not None else None
        features.append(
            {
                "type": "Feature",
                "id": f"{cx}_{cy}",
                "geometry": {"type": "Polygon", "coordinates": [coords]},
                "properties": {
                    "cell": f"{cx}_{cy}",
                    "samples": len(pts),
                    "sufficient": enough,
                    "median_rsrp_dbm": rsrp,
                    "median_dl_mbps": _median([p[3] for p in pts if p[3] is not None]),
                    "median_ul_mbps": _median([p[4] for p in pts if p[4] is not None]),
                    "rsrp_band": band if enough else None,
                    "fill": BAND_COLOURS[band] if enough and band else None,
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {"cell_m": size, "grid_crs": GRID_CRS, "min_samples": min_samples},
    }
