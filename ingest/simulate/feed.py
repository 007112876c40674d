"""Routes to drive, read straight from the GTFS-JP zip (csv + utf-8-sig).

Deliberately independent of the mobility package's tables: the simulator must run
before (or without) a GTFS import.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ingest.simulate.geo import Polyline, haversine_m

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GTFS = REPO_ROOT / "data" / "gtfs" / "gunmachuo-gtfs-jp-20250401.zip"
MAEBASHI_STATION = "g035_01"
CHUO_MAEBASHI = "m003_01"


@dataclass(frozen=True)
class Stop:
    stop_id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class StopOnPath:
    stop: Stop
    sequence: int
    distance: float  # metres along the path


@dataclass(frozen=True)
class TripPlan:
    """A path to drive and the stops on it (GTFS trip, or the shuttle corridor)."""

    trip_id: str | None
    route_id: str | None
    path: Polyline
    stops: tuple[StopOnPath, ...]


def _rows(z: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    with z.open(name) as f:
        return list(csv.DictReader(io.TextIOWrapper(f, "utf-8-sig")))


@dataclass
class Feed:
    stops: dict[str, Stop]
    shapes: dict[str, list[tuple[float, float]]]
    trips: list[dict[str, str]]
    stop_times: dict[str, list[tuple[int, str]]]

    @classmethod
    def load(cls, path: Path = DEFAULT_GTFS) -> Feed:
        with zipfile.ZipFile(path) as z:
            stops = {
                r["stop_id"]: Stop(
                    r["stop_id"], r["stop_name"], float(r["stop_lat"]), float(r["stop_lon"])
                )
                for r in _rows(z, "stops.txt")
            }
            pts: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
            for r in _rows(z, "shapes.txt"):
                pts[r["shape_id"]].append(
                    (
                        int(r["shape_pt_sequence"]),
                        float(r["shape_pt_lat"]),
                        float(r["shape_pt_lon"]),
                    )
                )
            shapes = {k: [(a, b) for _, a, b in sorted(v)] for k, v in pts.items()}
            st: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for r in _rows(z, "stop_times.txt"):
                st[r["trip_id"]].append((int(r["stop_sequence"]), r["stop_id"]))
            trips = _rows(z, "trips.txt")
        return cls(stops, shapes, trips, {k: sorted(v) for k, v in st.items()})

    def trip_plans(self, max_stop_offset_m: float = 80.0) -> list[TripPlan]:
        """One plan per distinct (shape, stop pattern); stops placed in order along the shape."""
        seen: set[tuple[str, tuple[str, ...]]] = set()
        plans = []
        for t in self.trips:
            shape = self.shapes.get(t.get("shape_id", ""))
            seq = self.stop_times.get(t["trip_id"], [])
            key = (t.get("shape_id", ""), tuple(s for _, s in seq))
            if not shape or len(seq) < 2 or key in seen:
                continue
            seen.add(key)
            path = Polyline.of(shape)
            on_path, after = [], 0.0
            for n, sid in seq:
                s = self.stops[sid]
                along, off = path.locate(s.lat, s.lon, after)
                if off > max_stop_offset_m:
                    continue
                on_path.append(StopOnPath(s, n, along))
                after = along
            if len(on_path) >= 2:
                plans.append(TripPlan(t["trip_id"], t["route_id"], path, tuple(on_path)))
        return plans

    def corridor(self, a: str = MAEBASHI_STATION, b: str = CHUO_MAEBASHI) -> TripPlan:
        """The shuttle path from stop a to stop b, cut from the shape that passes both."""
        sa, sb = self.stops[a], self.stops[b]
        best: tuple[float, list[tuple[float, float]]] | None = None
        for pts in self.shapes.values():
            ia = min(range(len(pts)), key=lambda i: haversine_m(*pts[i], sa.lat, sa.lon))
            ib = min(range(len(pts)), key=lambda i: haversine_m(*pts[i], sb.lat, sb.lon))
            if ia >= ib:
                continue
            err = haversine_m(*pts[ia], sa.lat, sa.lon) + haversine_m(*pts[ib], sb.lat, sb.lon)
            if best is None or err < best[0]:
                best = (err, pts[ia : ib + 1])
        seg = [(sa.lat, sa.lon), (sb.lat, sb.lon)]
        if best is not None and best[0] < 150:
            seg = [(sa.lat, sa.lon), *best[1], (sb.lat, sb.lon)]
        path = Polyline.of(seg)
        return TripPlan(
            None, "shuttle", path, (StopOnPath(sa, 1, 0.0), StopOnPath(sb, 2, path.length))
        )


def reversed_plan(plan: TripPlan) -> TripPlan:
    path = Polyline.of(list(reversed(plan.path.points)))
    stops = tuple(
        StopOnPath(s.stop, i, path.length - s.distance)
        for i, s in enumerate(reversed(plan.stops), start=1)
    )
    return TripPlan(plan.trip_id, plan.route_id, path, stops)
