"""The operators registry: one identity per transport operator (``core/operators.toml``).

An operator is known by its id (``gunmachuo``); its corporate number and its GTFS agency
ids are aliases. Every entry point (API keys, fare policies, quotes, taps, rides,
statements) passes what it was given through :func:`canonical_operator_id`, so a key made
for ``7070001000969`` and a policy that lists ``gunmachuo`` mean the same operator.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

Kind = Literal["bus", "taxi"]
_ID = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
_CORPORATE_NUMBER = re.compile(r"^[1-9][0-9]{12}$")


@dataclass(frozen=True)
class Operator:
    """One transport operator under the single id every package uses, whatever name the GTFS feed or
    a fare table gives it."""

    id: str
    legal_name: str
    kind: Kind
    corporate_number: str | None = None
    gtfs_agency_ids: tuple[str, ...] = ()

    @property
    def aliases(self) -> tuple[str, ...]:
        """The other names this operator goes by (corporate number, GTFS agency ids)."""
        extra = (self.corporate_number,) if self.corporate_number else ()
        return tuple(dict.fromkeys((*extra, *self.gtfs_agency_ids)))


@dataclass(frozen=True)
class Registry:
    """All operators; refuses a name that would stand for two of them."""

    operators: tuple[Operator, ...]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for op in self.operators:
            for name in (op.id, *op.aliases):
                if seen.setdefault(name, op.id) != op.id:
                    raise ValueError(f"{name!r} names both {seen[name]!r} and {op.id!r}")

    def get(self, name: str) -> Operator | None:
        """The operator ``name`` (its id or an alias) stands for, else None."""
        for op in self.operators:
            if name == op.id or name in op.aliases:
                return op
        return None

    def canonical(self, name: str) -> str:
        """The operator id for an id or alias; an unknown name is returned unchanged."""
        op = self.get(name.strip())
        return op.id if op else name


def parse_registry(doc: dict[str, Any]) -> Registry:
    """Build the registry from operators.toml, failing on a duplicate name."""
    ops = []
    for d in doc.get("operators", ()):
        op = Operator(
            id=str(d["id"]),
            legal_name=str(d["legal_name"]),
            kind=d["kind"],
            corporate_number=str(d["corporate_number"]) if d.get("corporate_number") else None,
            gtfs_agency_ids=tuple(str(a) for a in d.get("gtfs_agency_ids", ())),
        )
        if not _ID.match(op.id):
            raise ValueError(f"operator id {op.id!r}: lower-case letters, digits and '-'")
        if op.kind not in ("bus", "taxi"):
            raise ValueError(f"{op.id}: kind must be bus or taxi")
        if op.corporate_number and not _CORPORATE_NUMBER.match(op.corporate_number):
            raise ValueError(f"{op.id}: corporate_number must be 13 digits")
        ops.append(op)
    return Registry(tuple(ops))


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The registry shipped in ``core/operators.toml``."""
    text = (resources.files("core") / "operators.toml").read_text(encoding="utf-8")
    return parse_registry(tomllib.loads(text))


def canonical_operator_id(name: str) -> str:
    """The operator id ``name`` (id, corporate number or GTFS agency id) stands for."""
    return registry().canonical(name)


def feed_agency_id(name: str) -> str:
    """The GTFS agency id the timetable and the live vehicle data use for the operator
    ``name`` (any alias); an unknown name, or one without a feed, is returned unchanged."""
    op = registry().get(name.strip())
    return op.gtfs_agency_ids[0] if op and op.gtfs_agency_ids else name
