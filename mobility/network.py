"""The drivable road network: load it (GraphML or OSM XML via osmnx) or build an
osmnx-compatible graph from the feed's shapes, and measure road distances on it.

Built-from-shapes graphs: every shape vertex is a node (x = lon, y = lat, as osmnx has
it); vertices of different shapes closer than ``merge_m`` become one node, so routes that
share a road share a path; each consecutive pair is an edge in both directions (the
shapes follow real two-way streets) with ``length`` in metres measured in EPSG:6677.
Shapes that cross without a shared vertex are not connected there (a known limit).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import psycopg
from shapely import LineString, Point, STRtree

from core.extras import require
from core.geo import project, project_many, unproject

LatLon = tuple[float, float]
_cache: dict[tuple[str, object], nx.MultiDiGraph] = {}
_lock = threading.Lock()


class NoRouteError(ValueError):
    """The two points are not connected on the road graph."""


def build_graph_from_shapes(
    shapes: Mapping[str, Sequence[LatLon]], merge_m: float = 8.0
) -> nx.MultiDiGraph:
    """An osmnx-style MultiDiGraph (crs EPSG:4326, node x/y, edge length) from shapes."""
    g = nx.MultiDiGraph(crs="epsg:4326", name="gtfs-shapes")
    grid: dict[tuple[int, int], list[int]] = {}
    coords: list[tuple[float, float]] = []

    def node_for(lat: float, lon: float, x: float, y: float) -> int:
        gx, gy = int(x // merge_m), int(y // merge_m)
        best, best_d = -1, merge_m
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for n in grid.get((gx + dx, gy + dy), ()):
                    nx_, ny_ = coords[n]
                    d = math.hypot(nx_ - x, ny_ - y)
                    if d <= best_d:
                        best, best_d = n, d
        if best >= 0:
            return best
        n = len(coords)
        coords.append((x, y))
        grid.setdefault((gx, gy), []).append(n)
        g.add_node(n, x=lon, y=lat, street_count=0)
        return n

    for points in shapes.values():
        if len(points) < 2:
            continue
        xs, ys = project_many([p[0] for p in points], [p[1] for p in points])
        prev: int | None = None
        for (lat, lon), x, y in zip(points, xs, ys, strict=True):
            n = node_for(lat, lon, x, y)
            if prev is not None and prev != n and not g.has_edge(prev, n):
                (ax, ay), (bx, by) = coords[prev], coords[n]
                length = math.hypot(bx - ax, by - ay)
                g.add_edge(prev, n, length=length, highway="unclassified", oneway=False)
                g.add_edge(n, prev, length=length, highway="unclassified", oneway=False)
            prev = n
    for n in g.nodes:
        g.nodes[n]["street_count"] = g.degree(n) // 2
    return g


def shapes_from_db(conn: psycopg.Connection) -> dict[str, list[LatLon]]:
    """The current feed's shapes as point lists."""
    shapes: dict[str, list[LatLon]] = {}
    for shape_id, lat, lon in conn.execute(
        "SELECT shape_id, shape_pt_lat, shape_pt_lon FROM gtfs_shapes"
        " WHERE feed_version = gtfs_current_version() ORDER BY shape_id, shape_pt_sequence"
    ):
        shapes.setdefault(shape_id, []).append((lat, lon))
    return shapes


def load_road_graph(
    path: Path | str | None = None, conn: psycopg.Connection | None = None
) -> nx.MultiDiGraph:
    """The road graph, cached: from ``path`` (.graphml, or OSM XML) when given, else built
    from the current feed's shapes read through ``conn`` (cached per feed version)."""
    if path is not None:
        key: tuple[str, object] = ("file", str(Path(path).resolve()))
    elif conn is not None:
        row = conn.execute("SELECT gtfs_current_version()").fetchone()
        if row is None or row[0] is None:
            raise RuntimeError("no GTFS feed imported: run `mebuku gtfs import PATH.zip`")
        key = ("feed", (conn.info.host, conn.info.port, conn.info.dbname, row[0]))
    else:
        raise ValueError("give a road graph path or a database connection")
    with _lock:
        if key in _cache:
            return _cache[key]
    if path is not None:
        ox: Any = require("osmnx", "road")
        p = Path(path)
        if p.suffix.lower() == ".graphml":
            g = ox.load_graphml(p)
        else:
            g = ox.graph_from_xml(p, simplify=True, retain_all=False)
    else:
        assert conn is not None
        g = build_graph_from_shapes(shapes_from_db(conn))
    with _lock:
        _cache[key] = g
    return g


def _index(graph: nx.MultiDiGraph) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    idx = graph.graph.get("_mebuku_index")
    if idx is None:
        nodes = list(graph.nodes)
        xs, ys = project_many(
            [float(graph.nodes[n]["y"]) for n in nodes], [float(graph.nodes[n]["x"]) for n in nodes]
        )
        idx = (np.array(xs), np.array(ys), nodes)
        graph.graph["_mebuku_index"] = idx
    return idx  # type: ignore[no-any-return]


def nearest_node(graph: nx.MultiDiGraph, point: LatLon) -> tuple[Any, float]:
    """The graph node closest to a point and its distance in metres."""
    xs, ys, nodes = _index(graph)
    if not nodes:
        raise NoRouteError("the road graph is empty")
    x, y = project(*point)
    d2 = (xs - x) ** 2 + (ys - y) ** 2
    i = int(np.argmin(d2))
    return nodes[i], math.sqrt(float(d2[i]))


def road_distance_m(graph: nx.MultiDiGraph, origin: LatLon, destination: LatLon) -> float:
    """Shortest drivable distance in metres between two (lat, lon) points: the straight
    access legs to the nearest graph nodes plus the shortest path between them."""
    a, da = nearest_node(graph, origin)
    b, db = nearest_node(graph, destination)
    try:
        path_m = nx.shortest_path_length(graph, a, b, weight="length")
    except nx.NetworkXNoPath:
        raise NoRouteError(f"no road path between {origin} and {destination}") from None
    return da + float(path_m) + db


def shortest_path(graph: nx.MultiDiGraph, origin: LatLon, destination: LatLon) -> list[LatLon]:
    """The road path as (lat, lon) points, for maps."""
    a, _ = nearest_node(graph, origin)
    b, _ = nearest_node(graph, destination)
    try:
        nodes = nx.shortest_path(graph, a, b, weight="length")
    except nx.NetworkXNoPath:
        raise NoRouteError(f"no road path between {origin} and {destination}") from None
    return [(float(graph.nodes[n]["y"]), float(graph.nodes[n]["x"])) for n in nodes]


def _edge_index(graph: nx.MultiDiGraph) -> tuple[STRtree, list[LineString]]:
    idx = graph.graph.get("_mebuku_edges")
    if idx is None:
        lines: list[LineString] = []
        for u, v, data in graph.edges(data=True):
            geom = data.get("geometry")
            if geom is not None:
                lons, lats = geom.xy
                pts = list(zip(lats, lons, strict=True))
            else:
                pts = [
                    (graph.nodes[u]["y"], graph.nodes[u]["x"]),
                    (graph.nodes[v]["y"], graph.nodes[v]["x"]),
                ]
            xs, ys = project_many([float(p[0]) for p in pts], [float(p[1]) for p in pts])
            lines.append(LineString(list(zip(xs, ys, strict=True))))
        idx = (STRtree(lines), lines)
        graph.graph["_mebuku_edges"] = idx
    return idx  # type: ignore[no-any-return]


def snap(graph: nx.MultiDiGraph, point: LatLon) -> tuple[LatLon, float]:
    """The nearest point on a road of the network and how far away it is, in metres."""
    tree, lines = _edge_index(graph)
    if not lines:
        raise NoRouteError("the road graph is empty")
    p = Point(*project(*point))
    line = lines[int(tree.nearest(p))]
    on = line.interpolate(line.project(p))
    return unproject(on.x, on.y), float(on.distance(p))
