"""Maebashi's town blocks (町丁) with population, loaded into ``opendata_towns`` so the
aggregate views can place pickups in towns (PostgreSQL ``polygon``, no PostGIS)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from core.resources import towns_geojson


@dataclass(frozen=True)
class Town:
    """One town block: code, name, population, households, geometry and outer rings."""

    key_code: str
    name: str
    population: int
    households: int
    geometry: dict[str, Any]

    @property
    def rings(self) -> list[list[tuple[float, float]]]:
        """Outer rings (lon, lat) of every polygon of the town."""
        g = self.geometry
        polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        return [[(float(x), float(y)) for x, y, *_ in poly[0]] for poly in polys]


def _int(v: Any) -> int:
    """Census strings such as "1,271" (or blank) as integers."""
    text = str(v if v is not None else "").replace(",", "").strip()
    return int(text) if text.isdigit() else 0


def parse_towns(doc: dict[str, Any]) -> list[Town]:
    """Town blocks of a towns.geojson FeatureCollection."""
    out = []
    for f in doc["features"]:
        p = f["properties"]
        out.append(
            Town(
                str(p["KEY_CODE"]),
                str(p["S_NAME"]),
                _int(p.get("総人口")),
                _int(p.get("世帯数")),
                f["geometry"],
            )
        )
    return out


def read_towns(path: Path | None = None) -> list[Town]:
    """The bundled towns.geojson (or ``path``)."""
    text = (path or towns_geojson()).read_text(encoding="utf-8")
    return parse_towns(json.loads(text))


def polygon_literal(ring: list[tuple[float, float]]) -> str:
    """A PostgreSQL polygon literal for one ring."""
    return "(" + ",".join(f"({x:.7f},{y:.7f})" for x, y in ring) + ")"


def load_towns(conn: psycopg.Connection, towns: list[Town]) -> int:
    """Replace the town table with ``towns`` (one transaction); returns the count."""
    with conn.transaction():
        conn.execute("DELETE FROM opendata_towns")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO opendata_towns (key_code, name, population, households, geometry)"
                " VALUES (%s, %s, %s, %s, %s)",
                [
                    (t.key_code, t.name, t.population, t.households, json.dumps(t.geometry))
                    for t in towns
                ],
            )
            cur.executemany(
                "INSERT INTO opendata_town_shapes (key_code, part, shape)"
                " VALUES (%s, %s, %s::polygon)",
                [
                    (t.key_code, i, polygon_literal(ring))
                    for t in towns
                    for i, ring in enumerate(t.rings)
                ],
            )
    return len(towns)
