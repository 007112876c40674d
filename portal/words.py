"""Pure logic behind the pages: plain words for decisions, months, reset dates, totals.

Nothing here does I/O, so the wording and the arithmetic are tested without a database.
Strings are marked with ``N_`` and translated where they are shown (Japanese first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from core.i18n import N_
from mobility.fares.history import BusTrip, TaxiTrip
from mobility.fares.rules import JST, fiscal_year, fiscal_year_start

if TYPE_CHECKING:
    from portal.stops import Stop

# Why a taxi ride was or was not subsidised, in words a resident understands. Keys are the
# fares package's detailed reasons (mobility.fares.rules.Reason values).
REASON_WORDS: dict[str, str] = {
    "subsidised": N_("MyTaku paid part of this fare."),
    "card-not-registered": N_("The card used was not linked to your account at the time."),
    "duplicate-rider": N_("The same card was presented twice on this ride."),
    "not-eligible": N_("You were not eligible for MyTaku on the day of this ride."),
    "daily-limit": N_("You had already used today's MyTaku rides."),
    "annual-limit": N_("You had already used this year's MyTaku rides."),
    "outside-hours": N_("The ride started outside the hours MyTaku covers."),
    "outside-city": N_("Neither pickup nor drop-off was inside Maebashi."),
    "implausible-ride": N_("The ride is being checked by the city (time or distance)."),
    "zero-subsidy": N_("The fare was too low for a subsidy."),
}
UNKNOWN_REASON = N_("The city is checking this ride.")

# Names of bus discounts (policy names) and of eligibility conditions (rules).
DISCOUNT_WORDS: dict[str, str] = {
    "senior": N_("senior discount (70 and over)"),
    "youth": N_("youth discount (13 to 22)"),
}
ELIGIBLE_WORDS: dict[str, str] = {
    "age-75+": N_("aged 75 or over"),
    "age-65+-without-licence": N_("aged 65 or over without a driving licence"),
    "licence-surrendered": N_("driving licence surrendered or lapsed"),
    "disability": N_("disability certificate"),
    "care_certification": N_("long-term care certification"),
    "intractable_disease": N_("intractable disease certificate"),
    "pregnancy": N_("pregnancy"),
}

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def reason_words(reason: str) -> str:
    """The plain-words message id for a fares reason (unknown reasons get a safe default)."""
    return REASON_WORDS.get(reason, UNKNOWN_REASON)


def parse_month(text: str | None, today: date) -> date:
    """``YYYY-MM`` (2000-2099) to the month's first day; empty: this month. ValueError else."""
    if not text:
        return today.replace(day=1)
    m = _MONTH.match(text)
    if not m:
        raise ValueError("month must be YYYY-MM")
    y, mo = int(m.group(1)), int(m.group(2))
    if not (2000 <= y <= 2099 and 1 <= mo <= 12):
        raise ValueError("month must be YYYY-MM")
    return date(y, mo, 1)


def add_months(month: date, n: int) -> date:
    """The first day of the month ``n`` months after ``month`` (n may be negative)."""
    k = month.year * 12 + month.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a Japan-time month as aware datetimes."""
    start = datetime(month.year, month.month, 1, tzinfo=JST)
    nxt = add_months(month, 1)
    return start, datetime(nxt.year, nxt.month, 1, tzinfo=JST)


@dataclass(frozen=True)
class Resets:
    """When the MyTaku limits start again: the daily one (tomorrow) and the yearly one."""

    daily: date
    yearly: date


def next_resets(today: date) -> Resets:
    """Daily limits reset the next Japan day; yearly ones on 1 April (fiscal year)."""
    return Resets(today + timedelta(days=1), fiscal_year_start(fiscal_year(today) + 1))


def today_jst(now: datetime | None = None) -> date:
    """The Japan day now (or of ``now``)."""
    return (now or datetime.now(UTC)).astimezone(JST).date()


@dataclass(frozen=True)
class MonthTotals:
    """What a month's rides cost and what the city paid, for the page and the statement."""

    taxi_rides: int
    taxi_fare_yen: int
    taxi_subsidy_yen: int
    bus_rides: int
    bus_fare_yen: int
    bus_discount_yen: int

    @property
    def bus_paid_yen(self) -> int:
        """What the resident paid for buses after the discount."""
        return self.bus_fare_yen - self.bus_discount_yen


def month_totals(taxi: Iterable[TaxiTrip], bus: Iterable[BusTrip]) -> MonthTotals:
    """Totals of a month; reversed records count nothing (the ledger cancelled them)."""
    t = [x for x in taxi if not x.reversed]
    b = [x for x in bus if not x.reversed]
    return MonthTotals(
        taxi_rides=len(t),
        taxi_fare_yen=sum(x.meter_fare_yen for x in t),
        taxi_subsidy_yen=sum(x.subsidy_yen for x in t),
        bus_rides=len(b),
        bus_fare_yen=sum(x.fare_yen for x in b),
        bus_discount_yen=sum(x.discount_yen for x in b),
    )


def taxi_share_yen(trip: TaxiTrip) -> int:
    """The resident's share of the meter fare before the subsidy (an equal split)."""
    return trip.meter_fare_yen // max(1, trip.riders)


def nearly_used_up(rides_left: int, threshold: int) -> bool:
    """True once the ``threshold``-th last ride of the year has been used.

    The default 10 tells a resident when the tenth-last ride is used, so 9 are left then.
    """
    return 0 <= rides_left < threshold


def yen(n: int) -> str:
    """Yen with thousands separators (the same in Japanese and English)."""
    return f"{n:,}"


def stop_label(stop: Stop, _: Callable[[str], str]) -> str:
    """The name people read for a stop (pole): its name, and when other poles share it,
    what tells this one apart: its platform, where its buses go, or its number. Never the
    stop id (a code nobody at the roadside knows)."""
    if stop.platform and stop.platform.isdigit():  # a platform number: 5番のりば
        return _("{name} (platform {platform})").format(name=stop.name, platform=stop.platform)
    if stop.platform:
        return _("{name} ({platform})").format(name=stop.name, platform=stop.platform)
    if stop.towards:
        places = _(", ").join(stop.towards)
        return _("{name} (towards {places})").format(name=stop.name, places=places)
    if stop.arrivals_only:
        return _("{name} (arrivals only)").format(name=stop.name)
    if stop.pole is not None:
        return _("{name} (stop {n})").format(name=stop.name, n=stop.pole)
    return stop.name
