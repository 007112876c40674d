"""What core needs to know about the ingest streams, read from the stream catalogue.

The catalogue itself (topic pattern, parser, table, key, JSON Schema) lives in
``ingest/streams.py``; core never imports a domain, so the catalogue is offered through
the ``mebuku.streams`` entry-point group as ``def declarations() -> list[StreamDecl]``.
From it core derives, with no per-stream edit anywhere else:

- the broker ACL (:func:`device_topics`): a device may publish each stream whose topic
  placeholders are exactly its own ids (a bus: ``{vehicle_id}``; a 5G device:
  ``{site_id}`` and ``{device_id}``), the topic pattern filled with those ids;
- the grants of each stream table (``[streams]`` in ``core/roles/grants.toml``, plus
  ``SELECT`` for the entry's extra ``readers``);
- the Grafana view ``grafana.<table>`` (:func:`grafana_view_sql`): the entry's columns
  and ``received_at``, with the entry's SQL expression for a column it must blur.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType

from psycopg import sql

from core import plugins

GROUP = "mebuku.streams"
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
# Every stream table has this column after the catalogue's (filled by the database).
RECEIVED_AT = "received_at"


class StreamError(ValueError):
    """A catalogue entry core cannot derive its access rules from."""


@dataclass(frozen=True)
class StreamDecl:
    """One stream as core sees it: its topic pattern, its table and who reads it."""

    topic: str  # e.g. "maebashi/5g/{site_id}/{device_id}/status"
    table: str  # public.<table>, written by the ingest role
    columns: tuple[str, ...]  # as in the catalogue, without received_at
    readers: tuple[str, ...] = ()  # service roles that read it besides api and maintain
    # column -> SQL expression shown in grafana.<table> instead of the raw column
    grafana: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ids(self) -> frozenset[str]:
        """The topic's placeholder names (which device ids fill it)."""
        return frozenset(_PLACEHOLDER.findall(self.topic))

    def check(self) -> None:
        """Refuse what would make an unsafe identifier or ACL line."""
        for name in (self.table, *self.columns, *self.readers):
            if not _IDENT.fullmatch(name):
                raise StreamError(f"{self.topic}: {name!r} is not a plain SQL identifier")
        unknown = set(self.grafana) - set(self.columns)
        if unknown:
            raise StreamError(f"{self.topic}: grafana expressions for unknown {sorted(unknown)}")
        if any(c in level for level in self.topic.split("/") for c in "+#"):
            raise StreamError(f"{self.topic}: wildcards are not allowed in a stream topic")


DeclSource = Callable[[], list[StreamDecl]]


@cache
def declared() -> tuple[StreamDecl, ...]:
    """Every stream the installed catalogues declare (``mebuku.streams``), checked."""
    found: list[StreamDecl] = []
    for p in plugins.load(GROUP):  # a catalogue that fails to import stops here
        source: DeclSource = p.obj
        found += source()
    for d in found:
        d.check()
    return tuple(found)


def topics_for(decls: tuple[StreamDecl, ...], ids: Mapping[str, str]) -> tuple[str, ...]:
    """The topics a device with exactly these ids may publish, in catalogue order. Pure."""
    want = frozenset(ids)
    return tuple(d.topic.format(**ids) for d in decls if d.ids == want)


def device_topics(**ids: str) -> tuple[str, ...]:
    """:func:`topics_for` over the installed catalogue."""
    return topics_for(declared(), ids)


def grafana_view_sql(d: StreamDecl) -> sql.Composed:
    """``CREATE OR REPLACE VIEW grafana.<table>`` for one stream table. Pure."""
    cols = [
        sql.SQL("{} AS {}").format(sql.SQL(d.grafana[c]), sql.Identifier(c))
        if c in d.grafana
        else sql.Identifier(c)
        for c in (*d.columns, RECEIVED_AT)
    ]
    return sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT {} FROM {}").format(
        sql.Identifier("grafana", d.table),
        sql.SQL(", ").join(cols),
        sql.Identifier("public", d.table),
    )
