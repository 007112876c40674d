"""What a parsed message becomes: rows for one shared time-series table, or a reject.

Rows are plain tuples in the column order of their :class:`TableSpec`, so the writer can
COPY them without knowing which topic they came from. The tables themselves are declared
once, in the stream catalogue (:mod:`ingest.streams`); ``TABLES`` and the table names
below are read from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableSpec:
    """A table the writer inserts into: its columns and the key that makes redelivery harmless."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    # Columns the database fills itself when a row is written (a trigger), after received_at.
    derived: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rows:
    """A valid message: one or more rows for ``table``."""

    table: TableSpec
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Reject:
    """An invalid message. ``code`` is a short stable label (metrics); ``detail`` says why."""

    code: str
    detail: str

    @property
    def reason(self) -> str:
        """The text stored with the dead letter."""
        return f"{self.code}: {self.detail}"


Parsed = Rows | Reject


_FROM_CATALOGUE = frozenset({"TABLES", "TELEMETRY", "EVENTS", "RADIO", "SENSOR", "STATUS"})


def __getattr__(name: str) -> Any:
    """``TABLES`` and the table specs, from the catalogue (which imports this module)."""
    if name in _FROM_CATALOGUE:
        from ingest import streams

        return getattr(streams, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
