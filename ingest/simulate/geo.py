"""Small geodesy for the simulators: distances in metres and positions along polylines."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(a, 1.0)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(x, y)) % 360.0


def offset(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """The point ``metres`` away in direction ``bearing`` (flat-earth, fine below a few km)."""
    b = math.radians(bearing)
    dlat = metres * math.cos(b) / EARTH_RADIUS_M
    dlon = metres * math.sin(b) / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
    return lat + math.degrees(dlat), lon + math.degrees(dlon)


@dataclass(frozen=True)
class Polyline:
    points: tuple[tuple[float, float], ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, points: list[tuple[float, float]]) -> Polyline:
        cum = [0.0]
        for (a, b), (c, d) in itertools.pairwise(points):
            cum.append(cum[-1] + haversine_m(a, b, c, d))
        return cls(tuple(points), tuple(cum))

    @property
    def length(self) -> float:
        return self.cumulative[-1]

    def at(self, distance: float) -> tuple[float, float, float]:
        """(lat, lon, heading) at ``distance`` metres along the line."""
        d = min(max(distance, 0.0), self.length)
        i = min(max(bisect.bisect_right(self.cumulative, d) - 1, 0), len(self.points) - 2)
        (a, b), (c, e) = self.points[i], self.points[i + 1]
        seg = self.cumulative[i + 1] - self.cumulative[i]
        f = 0.0 if seg <= 0 else (d - self.cumulative[i]) / seg
        return a + (c - a) * f, b + (e - b) * f, bearing_deg(a, b, c, e)

    def locate(self, lat: float, lon: float, after: float = 0.0) -> tuple[float, float]:
        """(distance along, distance off) of the nearest point at or after ``after``."""
        best = (math.inf, 0.0)
        for i in range(len(self.points) - 1):
            if self.cumulative[i + 1] < after:
                continue
            (a, b), (c, e) = self.points[i], self.points[i + 1]
            # project in a local metric frame
            kx = math.cos(math.radians(a)) * 111_320.0
            ky = 110_574.0
            px, py = (lon - b) * kx, (lat - a) * ky
            vx, vy = (e - b) * kx, (c - a) * ky
            vv = vx * vx + vy * vy
            f = 0.0 if vv == 0 else max(0.0, min(1.0, (px * vx + py * vy) / vv))
            off = math.hypot(px - f * vx, py - f * vy)
            along = self.cumulative[i] + f * (self.cumulative[i + 1] - self.cumulative[i])
            if off < best[0] and along >= after:
                best = (off, along)
        return best[1], best[0]
