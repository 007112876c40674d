"""Effective-dated fare and subsidy policies, read from the TOML files in ``policies/``.

Rules change over the years (120 MyTaku rides a year at launch, 70 later), so each file is
one version with the date it takes effect and its sources; the engine picks the version in
force on the ride's date (Japan time).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, time
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar

from core.operators import canonical_operator_id


@dataclass(frozen=True)
class MyTakuPolicy:
    version: str
    effective_from: date
    alone_rate_percent: int
    alone_cap_yen: int
    shared_cap_yen: int
    shared_rate_percent: int
    rides_per_day: int
    rides_per_fiscal_year: int
    hours_start: time
    hours_end: time
    min_age: int
    min_age_without_licence: int
    licence_surrendered_or_lapsed: bool
    conditions: frozenset[str]
    sources: tuple[str, ...] = ()
    max_active_cards: int = 3


DEFAULT_MAX_ACTIVE_CARDS = 3


@dataclass(frozen=True)
class BusDiscount:
    name: str
    rate_percent: int
    min_age: int
    max_age: int | None = None


@dataclass(frozen=True)
class BusPolicy:
    version: str
    effective_from: date
    participating_operators: frozenset[str]
    excluded_route_ids: frozenset[str]
    discounts: tuple[BusDiscount, ...]
    sources: tuple[str, ...] = ()


P = TypeVar("P", MyTakuPolicy, BusPolicy)


class NoPolicyError(LookupError):
    """No version of the scheme was in force on that date."""


def _hhmm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


def parse_mytaku(d: dict[str, Any]) -> MyTakuPolicy:
    sub, lim, hrs, el = d["subsidy"], d["limits"], d["hours"], d["eligibility"]
    p = MyTakuPolicy(
        version=d["version"],
        effective_from=date.fromisoformat(d["effective_from"]),
        alone_rate_percent=int(sub["alone_rate_percent"]),
        alone_cap_yen=int(sub["alone_cap_yen"]),
        shared_cap_yen=int(sub["shared_cap_yen"]),
        shared_rate_percent=int(sub["shared_rate_percent"]),
        rides_per_day=int(lim["rides_per_day"]),
        rides_per_fiscal_year=int(lim["rides_per_fiscal_year"]),
        hours_start=_hhmm(hrs["start"]),
        hours_end=_hhmm(hrs["end"]),
        min_age=int(el["min_age"]),
        min_age_without_licence=int(el["min_age_without_licence"]),
        licence_surrendered_or_lapsed=bool(el["licence_surrendered_or_lapsed"]),
        conditions=frozenset(el["conditions"]),
        sources=tuple(d.get("sources", ())),
        max_active_cards=int(
            d.get("cards", {}).get("max_active_per_resident", DEFAULT_MAX_ACTIVE_CARDS)
        ),
    )
    if not 1 <= p.max_active_cards <= 20:
        raise ValueError(f"{p.version}: cards.max_active_per_resident must be 1..20")
    for name in ("alone_rate_percent", "shared_rate_percent"):
        if not 0 <= getattr(p, name) <= 100:
            raise ValueError(f"{p.version}: {name} must be 0..100")
    return p


def parse_bus(d: dict[str, Any]) -> BusPolicy:
    discounts = tuple(
        BusDiscount(
            name=x["name"],
            rate_percent=int(x["rate_percent"]),
            min_age=int(x["min_age"]),
            max_age=int(x["max_age"]) if "max_age" in x else None,
        )
        for x in d.get("discounts", ())
    )
    for x in discounts:
        if not 0 <= x.rate_percent <= 100:
            raise ValueError(f"{d['version']}: rate_percent must be 0..100")
    return BusPolicy(
        version=d["version"],
        effective_from=date.fromisoformat(d["effective_from"]),
        # Aliases (corporate number, GTFS agency id) name the same operator.
        participating_operators=frozenset(
            canonical_operator_id(str(o)) for o in d.get("participating_operators", ())
        ),
        excluded_route_ids=frozenset(d.get("excluded_route_ids", ())),
        discounts=discounts,
        sources=tuple(d.get("sources", ())),
    )


@dataclass(frozen=True)
class PolicyBook:
    mytaku: tuple[MyTakuPolicy, ...]
    bus: tuple[BusPolicy, ...]

    def mytaku_at(self, day: date) -> MyTakuPolicy:
        return _in_force(self.mytaku, day, "mytaku")

    def bus_at(self, day: date) -> BusPolicy:
        return _in_force(self.bus, day, "bus")

    def max_active_cards_at(self, day: date) -> int:
        """Active IC cards one resident may have linked (the MyTaku policy in force)."""
        try:
            return self.mytaku_at(day).max_active_cards
        except NoPolicyError:
            return DEFAULT_MAX_ACTIVE_CARDS


def _in_force(versions: tuple[P, ...], day: date, scheme: str) -> P:
    best: P | None = None
    for v in versions:
        if v.effective_from <= day and (best is None or v.effective_from > best.effective_from):
            best = v
    if best is None:
        raise NoPolicyError(f"no {scheme} policy in force on {day.isoformat()}")
    return best


def book_from_dicts(docs: list[dict[str, Any]]) -> PolicyBook:
    mytaku = tuple(parse_mytaku(d) for d in docs if d["scheme"] == "mytaku")
    bus = tuple(parse_bus(d) for d in docs if d["scheme"] == "bus")
    versions = [p.version for p in mytaku] + [p.version for p in bus]
    if len(versions) != len(set(versions)):
        raise ValueError("duplicate policy versions")
    return PolicyBook(mytaku, bus)


@lru_cache(maxsize=1)
def load_policies() -> PolicyBook:
    """Every policy file shipped in ``mobility/fares/policies``."""
    folder = resources.files("mobility.fares") / "policies"
    docs = [
        tomllib.loads(f.read_text(encoding="utf-8"))
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".toml")
    ]
    return book_from_dicts(docs)
