"""The city's EBPM dashboard (filled in below)."""

from __future__ import annotations

from typing import Any


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    """(folder, dashboard JSON) pairs of this package."""
    return []
