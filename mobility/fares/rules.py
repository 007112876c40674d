"""The fare and subsidy rules as pure functions of plain values (no I/O).

Money is integer yen; every division rounds down (floor), so a subsidy or discount is never
more than its rule allows. Annual limits count Japan's fiscal year (1 April - 31 March) and
days are Japan days.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from core.i18n import F_
from core.operators import canonical_operator_id
from mobility.fares.policy import BusPolicy, MyTakuPolicy

JST = ZoneInfo("Asia/Tokyo")

CONDITION_KINDS = frozenset(
    {"disability", "care_certification", "intractable_disease", "pregnancy"}
)
LICENCE_VALUES = frozenset({"held", "none", "surrendered", "lapsed"})
FACT_KINDS = CONDITION_KINDS | {"birth_date", "driving_licence", "vehicle_support_subsidy"}


def local_day(ts: datetime) -> date:
    """The day in Japan time: caps and policies count by local day."""
    return ts.astimezone(JST).date()


def fiscal_year(day: date) -> int:
    """Fiscal year 2025 runs from 2025-04-01 to 2026-03-31."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_start(fy: int) -> date:
    """The first day of Japan's fiscal year ``fy`` (April 1)."""
    return date(fy, 4, 1)


def age_on(birth: date, day: date) -> int:
    """Completed years (a 29 February birthday ages on 1 March in common years)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class Fact:
    """One eligibility fact as city staff recorded it (later records override earlier)."""

    kind: str
    value: str
    valid_from: date | None = None
    valid_to: date | None = None


@dataclass(frozen=True)
class ResidentFacts:
    """The facts about a resident the subsidy rules look at."""

    birth_date: date | None = None
    licence: str | None = None
    conditions: frozenset[str] = frozenset()
    vehicle_support_subsidy: bool = False


def facts_on(facts: Iterable[Fact], day: date) -> ResidentFacts:
    """What is true on ``day``: the latest fact of each kind, if its period covers the day."""
    latest: dict[str, Fact] = {}
    for f in facts:
        latest[f.kind] = f

    def active(f: Fact | None) -> bool:
        return (
            f is not None
            and (f.valid_from is None or f.valid_from <= day)
            and (f.valid_to is None or day <= f.valid_to)
        )

    birth = latest.get("birth_date")
    lic = latest.get("driving_licence")
    vss = latest.get("vehicle_support_subsidy")
    return ResidentFacts(
        birth_date=date.fromisoformat(birth.value) if birth else None,
        licence=lic.value if lic is not None and active(lic) else None,
        conditions=frozenset(
            k for k in CONDITION_KINDS if active(latest.get(k)) and latest[k].value == "yes"
        ),
        vehicle_support_subsidy=vss is not None and active(vss) and vss.value == "yes",
    )


def mytaku_eligibility(p: MyTakuPolicy, facts: ResidentFacts, day: date) -> str | None:
    """The condition that makes the resident eligible on ``day``, or None."""
    if facts.vehicle_support_subsidy and facts.licence == "held":
        return None  # received vehicle or licence support and still drives: excluded
    age = age_on(facts.birth_date, day) if facts.birth_date else None
    if age is not None and age >= p.min_age:
        return f"age-{p.min_age}+"
    if (
        age is not None
        and age >= p.min_age_without_licence
        and facts.licence
        in (
            "none",
            "surrendered",
            "lapsed",
        )
    ):
        return f"age-{p.min_age_without_licence}+-without-licence"
    if p.licence_surrendered_or_lapsed and facts.licence in ("surrendered", "lapsed"):
        return "licence-surrendered"
    for c in sorted(facts.conditions & p.conditions):
        return c
    return None


def in_hours(p: MyTakuPolicy, pickup_local: time) -> bool:
    """Whether a pickup time is within the subsidised hours."""
    return p.hours_start <= pickup_local.replace(tzinfo=None) < p.hours_end


class Reason(StrEnum):
    """Why a rider got (or did not get) a subsidy, stored with every decision."""

    SUBSIDISED = "subsidised"
    NOT_REGISTERED = "card-not-registered"
    DUPLICATE_RIDER = "duplicate-rider"
    NOT_ELIGIBLE = "not-eligible"
    DAILY_LIMIT = "daily-limit"
    ANNUAL_LIMIT = "annual-limit"
    OUTSIDE_HOURS = "outside-hours"
    OUTSIDE_CITY = "outside-city"
    IMPLAUSIBLE = "implausible-ride"
    ZERO_SUBSIDY = "zero-subsidy"


class PublicReason(StrEnum):
    """What an operator is told. Ride-level reasons come from the ride alone, and every
    rider-level refusal is one word, so the answer reveals nothing about whether a card is
    registered, whose it is, or how much of a limit its holder has used."""

    SUBSIDISED = "subsidised"
    OUTSIDE_HOURS = "outside-hours"
    OUTSIDE_CITY = "outside-city"
    FLAGGED = "flagged-for-review"
    NOT_SUBSIDISED = "not-subsidised"


def public_reason(
    reason: Reason, *, within_hours: bool, touches_city: bool, plausible: bool
) -> PublicReason:
    """The operator-facing reason: ride-level facts first, whatever the card's standing."""
    if reason is Reason.SUBSIDISED:
        return PublicReason.SUBSIDISED
    if not touches_city:
        return PublicReason.OUTSIDE_CITY
    if not within_hours:
        return PublicReason.OUTSIDE_HOURS
    if not plausible:
        return PublicReason.FLAGGED
    return PublicReason.NOT_SUBSIDISED


@dataclass(frozen=True)
class RiderUsage:
    """A rider's standing before this ride: registered and eligible, rides used so far."""

    registered: bool
    eligible: bool
    duplicate: bool = False
    rides_today: int = 0
    rides_this_year: int = 0


@dataclass(frozen=True)
class RiderDecision:
    """The subsidy for one rider and the reason for it."""

    subsidy_yen: int
    reason: Reason


def taxi_subsidies(
    p: MyTakuPolicy,
    fare_yen: int,
    riders: Sequence[RiderUsage],
    *,
    within_hours: bool = True,
    touches_city: bool = True,
    plausible: bool = True,
) -> list[RiderDecision]:
    """Each rider's MyTaku subsidy for one ride, in rider order.

    Riders who are registered, eligible and within their limits share the ride: one alone
    gets ``alone_rate_percent`` of the fare up to ``alone_cap_yen``; several get an equal
    share of ``shared_rate_percent`` of the fare, each at most ``shared_cap_yen``. The sum
    never exceeds the fare. A share that rounds down to 0 yen is ``zero-subsidy``: it is not
    a subsidised ride and uses up no limit.
    """
    if fare_yen < 0:
        raise ValueError("fare must be >= 0")
    reasons: list[Reason] = []
    for r in riders:
        if not r.registered:
            reasons.append(Reason.NOT_REGISTERED)
        elif r.duplicate:
            reasons.append(Reason.DUPLICATE_RIDER)
        elif not r.eligible:
            reasons.append(Reason.NOT_ELIGIBLE)
        elif not touches_city:
            reasons.append(Reason.OUTSIDE_CITY)
        elif not within_hours:
            reasons.append(Reason.OUTSIDE_HOURS)
        elif not plausible:
            reasons.append(Reason.IMPLAUSIBLE)
        elif r.rides_this_year >= p.rides_per_fiscal_year:
            reasons.append(Reason.ANNUAL_LIMIT)
        elif r.rides_today >= p.rides_per_day:
            reasons.append(Reason.DAILY_LIMIT)
        else:
            reasons.append(Reason.SUBSIDISED)
    n = reasons.count(Reason.SUBSIDISED)
    if n == 1:
        each = min(fare_yen * p.alone_rate_percent // 100, p.alone_cap_yen, fare_yen)
    elif n > 1:
        each = min(fare_yen * p.shared_rate_percent // (100 * n), p.shared_cap_yen)
    else:
        each = 0
    if each == 0:
        reasons = [Reason.ZERO_SUBSIDY if r is Reason.SUBSIDISED else r for r in reasons]
    return [RiderDecision(each if r is Reason.SUBSIDISED else 0, r) for r in reasons]


@dataclass(frozen=True)
class BusDecision:
    """The fare, the discount and which discount applied, for one bus tap."""

    fare_yen: int
    discount_yen: int
    discount: str | None

    @property
    def pay_yen(self) -> int:
        """What the rider pays."""
        return self.fare_yen - self.discount_yen


def bus_discount(
    p: BusPolicy, operator_id: str, route_id: str, fare_yen: int, age: int | None
) -> BusDecision:
    """The citizen discount on one bus fare (the best one that applies), floor-rounded."""
    if fare_yen < 0:
        raise ValueError("fare must be >= 0")
    if (
        age is None
        or canonical_operator_id(operator_id) not in p.participating_operators
        or route_id in p.excluded_route_ids
    ):
        return BusDecision(fare_yen, 0, None)
    best = BusDecision(fare_yen, 0, None)
    for d in p.discounts:
        if age >= d.min_age and (d.max_age is None or age <= d.max_age):
            amount = fare_yen * d.rate_percent // 100
            if amount > best.discount_yen:
                best = BusDecision(fare_yen, amount, d.name)
    return best


# ---------------------------------------------------------------- submission window

FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class WindowViolation:
    """Why a record falls outside the submission window (``rule`` is a stable slug)."""

    rule: str
    detail: str


def submission_window_violation(
    started: datetime, times: Iterable[datetime], now: datetime, window: timedelta
) -> WindowViolation | None:
    """Records are accepted only from ``started`` (pickup or tap-on) to ``started + window``
    and none of their times may lie more than :data:`FUTURE_TOLERANCE` ahead of ``now``, so
    a backdated record cannot reopen a settled month or reuse another year's limit."""
    for t in (started, *times):
        if t > now + FUTURE_TOLERANCE:
            return WindowViolation(
                "no-future-records",
                F_("{time} is more than 5 minutes ahead of the server clock", time=t.isoformat()),
            )
    if now - started > window:
        return WindowViolation(
            "submission-window",
            F_(
                "records must be submitted within {days} days of the pickup or tap-on;"
                " {started} is older",
                days=window.days,
                started=started.isoformat(),
            ),
        )
    return None
