"""Positions along polylines for the simulators (distances from :mod:`core.geo`)."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

from core.geo import bearing_deg, distance_m


@dataclass(frozen=True)
class Polyline:
    """A path with its cumulative lengths, so positions along it are found by bisection."""

    points: tuple[tuple[float, float], ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, points: list[tuple[float, float]]) -> Polyline:
        """A polyline through ``points`` (lat, lon), measuring its lengths once."""
        cum = [0.0]
        for (a, b), (c, d) in itertools.pairwise(points):
            cum.append(cum[-1] + distance_m(a, b, c, d))
        return cls(tuple(points), tuple(cum))

    @property
    def length(self) -> float:
        """Total length in metres: where a bus on this path reaches its end."""
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
