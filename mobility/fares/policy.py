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
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from core.i18n import F_, cli_gettext, error_location, process_lang, validation_lines
from core.operators import canonical_operator_id


@dataclass(frozen=True)
class MyTakuPolicy:
    """One version of the MyTaku subsidy rules, in force from ``effective_from``."""

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
    """One bus discount (e.g. for older residents) and who qualifies."""

    name: str
    rate_percent: int
    min_age: int
    max_age: int | None = None


@dataclass(frozen=True)
class BusPolicy:
    """One version of the bus discount rules, in force from ``effective_from``."""

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


# The TOML files, validated: an unknown (misspelled) key is an error, never ignored.
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Percent = Annotated[int, Field(ge=0, le=100)]
HhMm = Annotated[str, Field(pattern=r"^([01]?[0-9]|2[0-4]):[0-5][0-9]$")]


class _Subsidy(_Strict):
    alone_rate_percent: Percent
    alone_cap_yen: int
    shared_cap_yen: int
    shared_rate_percent: Percent


class _Limits(_Strict):
    rides_per_day: int
    rides_per_fiscal_year: int


class _Hours(_Strict):
    start: HhMm
    end: HhMm


class _Eligibility(_Strict):
    min_age: int
    min_age_without_licence: int
    licence_surrendered_or_lapsed: bool
    conditions: list[str]


class _Cards(_Strict):
    max_active_per_resident: int = Field(DEFAULT_MAX_ACTIVE_CARDS, ge=1, le=20)


class MyTakuFile(_Strict):
    """One ``scheme = "mytaku"`` policy file."""

    scheme: Literal["mytaku"]
    version: str = Field(min_length=1)
    effective_from: date
    sources: list[str] = []
    subsidy: _Subsidy
    limits: _Limits
    hours: _Hours
    eligibility: _Eligibility
    cards: _Cards = _Cards()


class _Discount(_Strict):
    name: str
    rate_percent: Percent
    min_age: int
    max_age: int | None = None


class BusFile(_Strict):
    """One ``scheme = "bus"`` policy file."""

    scheme: Literal["bus"]
    version: str = Field(min_length=1)
    effective_from: date
    sources: list[str] = []
    participating_operators: list[str] = []
    excluded_route_ids: list[str] = []
    discounts: list[_Discount] = []


_POLICY_FILE: TypeAdapter[MyTakuFile | BusFile] = TypeAdapter(
    Annotated[MyTakuFile | BusFile, Field(discriminator="scheme")]
)


def _key(loc: tuple[int | str, ...]) -> str:
    """``limits.rides_per_day`` (without the scheme tag pydantic puts first); ``(file)``
    for the file as a whole."""
    if loc and loc[0] in ("mytaku", "bus"):
        loc = loc[1:]
    return error_location(loc) if loc else cli_gettext("(file)")


def validate_policy(d: dict[str, Any], name: str = "policy") -> MyTakuFile | BusFile:
    """The validated document, or ValueError naming the file and each bad key."""
    try:
        return _POLICY_FILE.validate_python(d)
    except ValidationError as e:  # each bad key in the language of the process (the CLI's)
        problems = validation_lines(e.errors(), process_lang(), where=_key)
        raise ValueError(f"{name}: " + "; ".join(problems)) from None


def _mytaku(f: MyTakuFile) -> MyTakuPolicy:
    sub, lim, el = f.subsidy, f.limits, f.eligibility
    return MyTakuPolicy(
        version=f.version,
        effective_from=f.effective_from,
        alone_rate_percent=sub.alone_rate_percent,
        alone_cap_yen=sub.alone_cap_yen,
        shared_cap_yen=sub.shared_cap_yen,
        shared_rate_percent=sub.shared_rate_percent,
        rides_per_day=lim.rides_per_day,
        rides_per_fiscal_year=lim.rides_per_fiscal_year,
        hours_start=_hhmm(f.hours.start),
        hours_end=_hhmm(f.hours.end),
        min_age=el.min_age,
        min_age_without_licence=el.min_age_without_licence,
        licence_surrendered_or_lapsed=el.licence_surrendered_or_lapsed,
        conditions=frozenset(el.conditions),
        sources=tuple(f.sources),
        max_active_cards=f.cards.max_active_per_resident,
    )


def _bus(f: BusFile) -> BusPolicy:
    return BusPolicy(
        version=f.version,
        effective_from=f.effective_from,
        # Aliases (corporate number, GTFS agency id) name the same operator.
        participating_operators=frozenset(
            canonical_operator_id(str(o)) for o in f.participating_operators
        ),
        excluded_route_ids=frozenset(f.excluded_route_ids),
        discounts=tuple(
            BusDiscount(x.name, x.rate_percent, x.min_age, x.max_age) for x in f.discounts
        ),
        sources=tuple(f.sources),
    )


def parse_mytaku(d: dict[str, Any]) -> MyTakuPolicy:
    """A MyTaku policy from a parsed TOML table, validated (unknown keys refused)."""
    f = validate_policy({"scheme": "mytaku", **d}, str(d.get("version", "mytaku policy")))
    assert isinstance(f, MyTakuFile)
    return _mytaku(f)


def parse_bus(d: dict[str, Any]) -> BusPolicy:
    """A bus policy from a parsed TOML table, validated (unknown keys refused)."""
    f = validate_policy({"scheme": "bus", **d}, str(d.get("version", "bus policy")))
    assert isinstance(f, BusFile)
    return _bus(f)


@dataclass(frozen=True)
class PolicyBook:
    """Every policy version, so a ride is decided by the rules in force on its day."""

    mytaku: tuple[MyTakuPolicy, ...]
    bus: tuple[BusPolicy, ...]

    def mytaku_at(self, day: date) -> MyTakuPolicy:
        """The MyTaku rules in force on ``day``."""
        return _in_force(self.mytaku, day, "mytaku")

    def bus_at(self, day: date) -> BusPolicy:
        """The bus rules in force on ``day``."""
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
        raise NoPolicyError(
            F_("no {scheme} policy in force on {day}", scheme=scheme, day=day.isoformat())
        )
    return best


def book_from_dicts(docs: list[dict[str, Any]], names: list[str] | None = None) -> PolicyBook:
    """Validate every document (``names``: their file names, for errors) into one book."""
    files = [
        validate_policy(d, names[i] if names else str(d.get("version", f"policy {i + 1}")))
        for i, d in enumerate(docs)
    ]
    mytaku = tuple(_mytaku(f) for f in files if isinstance(f, MyTakuFile))
    bus = tuple(_bus(f) for f in files if isinstance(f, BusFile))
    versions = [p.version for p in mytaku] + [p.version for p in bus]
    if len(versions) != len(set(versions)):
        raise ValueError("duplicate policy versions")
    return PolicyBook(mytaku, bus)


@lru_cache(maxsize=1)
def load_policies() -> PolicyBook:
    """Every policy file shipped in ``mobility/fares/policies``."""
    folder = resources.files("mobility.fares") / "policies"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    docs = []
    for f in files:
        try:
            docs.append(tomllib.loads(f.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{f.name}: {e}") from None
    return book_from_dicts(docs, [f.name for f in files])
