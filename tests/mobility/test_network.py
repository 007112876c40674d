"""Road network built from the feed's shapes: connected, and road distances are at least
the straight line and close to the bus's own shape length on a direct stretch."""

from __future__ import annotations

import math

import networkx as nx
import psycopg
import pytest

from core.geo import project
from mobility.gtfs.importer import import_feed
from mobility.network import (
    NoRouteError,
    build_graph_from_shapes,
    load_road_graph,
    road_distance_m,
    shortest_path,
    snap,
)
from tests.mobility.feeds import REAL_FEED

MAEBASHI_STATION = (36.38373, 139.072877)
CHUO_MAEBASHI = (36.392176, 139.074485)


def _straight(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.dist(project(*a), project(*b))


def test_pure_graph_distance_on_a_grid() -> None:
    # Two shapes forming an L that share a corner: path goes round the corner.
    a, corner, b = (36.380, 139.070), (36.380, 139.080), (36.390, 139.080)
    g = build_graph_from_shapes({"1": [a, corner], "2": [corner, b]})
    assert g.number_of_nodes() == 3
    expected = _straight(a, corner) + _straight(corner, b)
    assert road_distance_m(g, a, b) == pytest.approx(expected, rel=1e-9)
    assert road_distance_m(g, b, a) == pytest.approx(expected, rel=1e-9)  # two-way
    g2 = build_graph_from_shapes({"1": [a, corner], "3": [(36.40, 139.10), (36.41, 139.10)]})
    with pytest.raises(NoRouteError):
        road_distance_m(g2, a, (36.41, 139.10))


def test_graph_from_real_feed(db_url: str) -> None:
    import_feed(db_url, REAL_FEED)
    with psycopg.connect(db_url) as conn:
        g = load_road_graph(conn=conn)
        assert load_road_graph(conn=conn) is g  # cached
    assert g.graph["crs"] == "epsg:4326"
    assert nx.is_weakly_connected(g)
    d = road_distance_m(g, MAEBASHI_STATION, CHUO_MAEBASHI)
    straight = _straight(MAEBASHI_STATION, CHUO_MAEBASHI)
    # The station-to-station road trip is about 1 km (the autonomous-bus trial route).
    assert straight <= d <= straight * 1.4
    path = shortest_path(g, MAEBASHI_STATION, CHUO_MAEBASHI)
    assert len(path) >= 2
    assert _straight(path[0], MAEBASHI_STATION) < 100


def test_graphml_round_trip(tmp_path) -> None:
    import osmnx as ox

    a, corner, b = (36.380, 139.070), (36.380, 139.080), (36.390, 139.080)
    g = build_graph_from_shapes({"1": [a, corner, b]})
    path = tmp_path / "roads.graphml"
    ox.save_graphml(g, path)
    loaded = load_road_graph(path)
    assert road_distance_m(loaded, a, b) == pytest.approx(road_distance_m(g, a, b), rel=1e-6)


OSM_XML = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="hand">
  <node id="1" lat="36.3800" lon="139.0700" version="1"/>
  <node id="2" lat="36.3800" lon="139.0800" version="1"/>
  <node id="3" lat="36.3900" lon="139.0800" version="1"/>
  <node id="4" lat="36.3900" lon="139.0700" version="1"/>
  <way id="10" version="1">
    <nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="residential"/>
  </way>
  <way id="11" version="1">
    <nd ref="3"/><nd ref="4"/>
    <tag k="highway" v="footway"/>
    <tag k="oneway" v="yes"/>
  </way>
</osm>
"""


def test_osm_xml_road_graph_and_snapping(tmp_path) -> None:
    path = tmp_path / "roads.osm"
    path.write_text(OSM_XML, encoding="utf-8")
    g = load_road_graph(path)
    a, corner, b = (36.380, 139.070), (36.380, 139.080), (36.390, 139.080)
    expected = _straight(a, corner) + _straight(corner, b)
    # osmnx measures great-circle lengths; the plane projection differs by well under 1 %.
    assert road_distance_m(g, a, b) == pytest.approx(expected, rel=0.01)
    # Just east of the north-south street: snapped onto it (not to the nearest node).
    (lat, lon), off = snap(g, (36.3850, 139.0801))
    assert lat == pytest.approx(36.3850, abs=1e-6) and lon == pytest.approx(139.08, abs=1e-6)
    assert off == pytest.approx(_straight((36.385, 139.0801), (36.385, 139.08)), abs=0.5)
