"""Data files shipped inside the package (``core/data``), found with importlib.resources
so an installed wheel works from any directory, not only from a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

GTFS_FEED = "gunmachuo-gtfs-jp-20250401.zip"


def data_file(*parts: str) -> Path:
    """A file under ``core/data``; wheels install unzipped, so it is a real path."""
    return Path(str(resources.files("core").joinpath("data", *parts)))


def default_gtfs() -> Path:
    """The bundled GTFS-JP feed of Gunma Chuo Bus (CC BY 4.0, see core/data/README.md)."""
    return data_file("gtfs", GTFS_FEED)


def towns_geojson() -> Path:
    """Maebashi's town-block polygons (CC BY 4.0, see core/data/README.md)."""
    return data_file("maebashi", "towns.geojson")
