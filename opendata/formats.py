"""File formats of a release (pure): CSV in UTF-8 with one Japanese header row, a Table
Schema (data dictionary) per dataset, GeoJSON for geometry, and validators for both."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.geo import unproject
from core.i18n import Lang, gettext
from opendata.datasets import Column, Dataset

# Side of a coverage cell in metres of EPSG:6677 (fiveg.coverage.CELL_M).
CELL_M = 50.0

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT = re.compile(r"^-?\d+$")
_NUM = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def cell_text(col: Column, value: Any) -> str:
    """One value as CSV text: empty for missing, true/false, ISO dates, plain numbers."""
    if value is None:
        return ""
    if col.type == "boolean":
        return "true" if value else "false"
    if col.type == "integer":
        return str(int(value))
    if col.type == "number":
        return f"{float(value):.6g}"
    return str(value)


def to_csv(ds: Dataset, rows: Iterable[Mapping[str, Any]], lang: Lang = "ja") -> str:
    """The dataset as CSV: one header row (titles in ``lang``), CRLF line ends (RFC 4180)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.header(lang) for c in ds.columns])
    for r in rows:
        w.writerow([cell_text(c, r.get(c.name)) for c in ds.columns])
    return buf.getvalue()


def table_schema(ds: Dataset, lang: Lang = "ja") -> dict[str, Any]:
    """The data dictionary as a Frictionless Table Schema: the Japanese header is the
    field name, the English alias and unit are extra properties."""
    fields = []
    for c in ds.columns:
        f: dict[str, Any] = {
            "name": c.header(lang),
            "title": c.header(lang),
            "alias": c.name,
            "title_en": c.header("en"),
            "type": c.type,
        }
        if c.type == "date":
            f["format"] = "%Y-%m-%d"
        if c.unit:
            f["unit"] = c.unit
        constraints: dict[str, Any] = {"required": c.required}
        if c.codes:
            constraints["enum"] = list(c.codes)
        f["constraints"] = constraints
        fields.append(f)
    return {
        "name": ds.id,
        "title": gettext(ds.title, lang),
        "description": gettext(ds.description, lang),
        "fields": fields,
        "missingValues": [""],
    }


def _type_ok(kind: str, text: str) -> bool:
    if kind == "date":
        return bool(_DATE.match(text))
    if kind == "integer":
        return bool(_INT.match(text))
    if kind == "number":
        return bool(_NUM.match(text))
    if kind == "boolean":
        return text in ("true", "false")
    return True


def validate_csv(text: str, schema: Mapping[str, Any]) -> list[str]:
    """Problems of a CSV against its Table Schema (empty list: valid)."""
    rows = list(csv.reader(io.StringIO(text)))
    fields = schema["fields"]
    if not rows or rows[0] != [f["name"] for f in fields]:
        return ["header does not match the schema"]
    problems = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(fields):
            problems.append(f"line {n}: {len(row)} values, expected {len(fields)}")
            continue
        for f, v in zip(fields, row, strict=True):
            cons = f.get("constraints", {})
            if v == "":
                if cons.get("required"):
                    problems.append(f"line {n}: {f['alias']} is required")
                continue
            if not _type_ok(f["type"], v):
                problems.append(f"line {n}: {f['alias']}={v!r} is not a {f['type']}")
            elif "enum" in cons and v not in cons["enum"]:
                problems.append(f"line {n}: {f['alias']}={v!r} is not in the code list")
    return problems


def feature_collection(
    ds: Dataset, features: Iterable[tuple[dict[str, Any], Mapping[str, Any]]], lang: Lang = "ja"
) -> dict[str, Any]:
    """GeoJSON (RFC 7946) of (geometry, properties by alias) with properties keyed by the
    Japanese column names, like the CSV headers."""
    return {
        "type": "FeatureCollection",
        "name": ds.id,
        "features": [
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {c.header(lang): props.get(c.name) for c in ds.columns},
            }
            for geometry, props in features
        ],
    }


def cell_polygon(cx: int, cy: int, size: float = CELL_M) -> dict[str, Any]:
    """The 50 m cell (column cx, row cy) of EPSG:6677 as a WGS84 GeoJSON polygon: the same
    square fiveg.coverage draws (corners projected back with core.geo)."""
    x0, y0 = cx * size, cy * size
    ring = [(x0, y0), (x0 + size, y0), (x0 + size, y0 + size), (x0, y0 + size), (x0, y0)]
    coords = [[round(lon, 7), round(lat, 7)] for lat, lon in (unproject(x, y) for x, y in ring)]
    return {"type": "Polygon", "coordinates": [coords]}


def validate_geojson(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Problems of a FeatureCollection against the dataset's Table Schema."""
    if doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        return ["not a FeatureCollection"]
    names = [f["name"] for f in schema["fields"]]
    problems = []
    for i, feat in enumerate(doc["features"]):
        g = feat.get("geometry") or {}
        if g.get("type") not in ("Polygon", "MultiPolygon", "Point"):
            problems.append(f"feature {i}: geometry {g.get('type')!r}")
        props = feat.get("properties") or {}
        if sorted(props) != sorted(names):
            problems.append(f"feature {i}: properties do not match the schema")
            continue
        for f in schema["fields"]:
            v = props[f["name"]]
            if v is None:
                if f["constraints"].get("required"):
                    problems.append(f"feature {i}: {f['alias']} is required")
            elif not _type_ok(f["type"], json.dumps(v).strip('"')):
                problems.append(f"feature {i}: {f['alias']} is not a {f['type']}")
    return problems
