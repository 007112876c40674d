"""Optional dependency groups (``pip install 'mebuku[road]'`` ...): import them only where a
command needs one, and say in one line which extra is missing instead of a traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

# extra name -> what it enables (for the message); the modules are in pyproject.toml.
EXTRAS = {
    "road": "road networks from OSM files (osmnx, geopandas)",
    "grafana": "publishing dashboards to Grafana (grafana-client)",
    "report": "the council's PDF report (matplotlib, reportlab)",
    "opendata": "noisy open-data counts and CKAN upload (opendp, ckanapi)",
}


class MissingExtraError(ImportError):
    """An optional dependency group is not installed; the message names the extra."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` from the optional group ``extra``, or fail with one clear line."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise missing(extra, e.name or module) from e


def missing(extra: str, module: str) -> MissingExtraError:
    """The error for a module of ``extra`` that could not be imported."""
    return MissingExtraError(
        f"{EXTRAS[extra]} needs the optional dependencies of mebuku[{extra}] "
        f"({module.split('.')[0]} is not installed): pip install 'mebuku[{extra}]'"
    )
