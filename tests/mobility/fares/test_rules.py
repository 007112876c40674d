"""The subsidy and discount rules (pure): caps, limits, fiscal years, policy versions."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mobility.fares.ledger import first_open_period
from mobility.fares.plausibility import ride_flags
from mobility.fares.policy import load_policies
from mobility.fares.rules import (
    JST,
    Fact,
    PublicReason,
    Reason,
    RiderDecision,
    RiderUsage,
    age_on,
    bus_discount,
    facts_on,
    fiscal_year,
    in_hours,
    mytaku_eligibility,
    public_reason,
    submission_window_violation,
    taxi_subsidies,
)

BOOK = load_policies()
NEW = BOOK.mytaku_at(date(2026, 11, 26))
OLD = BOOK.mytaku_at(date(2020, 1, 1))

riders_st = st.lists(
    st.builds(
        RiderUsage,
        registered=st.booleans(),
        eligible=st.booleans(),
        duplicate=st.just(False),
        rides_today=st.integers(0, 3),
        rides_this_year=st.integers(0, 130),
    ),
    min_size=1,
    max_size=6,
)


def test_policy_versions_by_date() -> None:
    assert OLD.version == "mytaku-2016-01" and OLD.rides_per_fiscal_year == 120
    assert NEW.version == "mytaku-2022-04" and NEW.rides_per_fiscal_year == 70
    assert BOOK.mytaku_at(date(2022, 3, 31)).version == "mytaku-2016-01"
    assert BOOK.mytaku_at(date(2022, 4, 1)).version == "mytaku-2022-04"
    assert BOOK.bus_at(date(2024, 12, 2)).version == "bus-2024-06"
    assert BOOK.bus_at(date(2024, 12, 3)).version == "bus-2024-12"


def test_every_policy_file_names_its_sources() -> None:
    assert len(BOOK.mytaku) >= 2 and len(BOOK.bus) >= 2
    assert all(p.sources and p.effective_from for p in BOOK.mytaku)
    assert all(p.sources and p.effective_from for p in BOOK.bus)


def test_examples_from_the_sources() -> None:
    one = [RiderUsage(True, True)]
    assert taxi_subsidies(NEW, 1500, one)[0].subsidy_yen == 750  # half
    assert taxi_subsidies(NEW, 3000, one)[0].subsidy_yen == 1000  # capped
    assert taxi_subsidies(NEW, 1501, one)[0].subsidy_yen == 750  # floor
    four = taxi_subsidies(NEW, 6000, [RiderUsage(True, True)] * 4)
    assert [d.subsidy_yen for d in four] == [500] * 4  # 2,000 yen in total
    assert sum(d.subsidy_yen for d in taxi_subsidies(NEW, 900, [RiderUsage(True, True)] * 4)) <= 900


@given(st.integers(0, 200_000), riders_st, st.booleans(), st.booleans())
def test_subsidy_never_exceeds_fare_or_caps(
    fare: int, riders: list[RiderUsage], hours: bool, city: bool
) -> None:
    for p in (OLD, NEW):
        ds = taxi_subsidies(p, fare, riders, within_hours=hours, touches_city=city)
        assert len(ds) == len(riders)
        assert sum(d.subsidy_yen for d in ds) <= fare
        paid = [d for d in ds if d.reason is Reason.SUBSIDISED]
        cap = p.alone_cap_yen if len(paid) == 1 else p.shared_cap_yen
        for d, r in zip(ds, riders, strict=True):
            assert 0 <= d.subsidy_yen <= cap
            if d.reason is not Reason.SUBSIDISED:
                assert d.subsidy_yen == 0
            else:
                assert d.subsidy_yen > 0  # a 0-yen share is never a subsidised ride
                assert r.registered and r.eligible and hours and city
                assert r.rides_today < p.rides_per_day
                assert r.rides_this_year < p.rides_per_fiscal_year
        if len(paid) == 1:
            assert paid[0].subsidy_yen <= fare * p.alone_rate_percent // 100


@settings(max_examples=60, deadline=None)
@given(
    start=st.dates(date(2021, 3, 1), date(2027, 3, 1)),
    gaps=st.lists(st.integers(0, 3), min_size=1, max_size=400),
)
def test_limits_hold_over_a_sequence_across_fiscal_years(start: date, gaps: list[int]) -> None:
    """Replay rides through the rules with usage counted the way the ledger counts it."""
    day = start
    per_day: Counter[date] = Counter()
    per_fy: Counter[int] = Counter()
    for gap_hours in gaps:
        day = day + timedelta(days=gap_hours // 2)
        p = BOOK.mytaku_at(day)
        fy = fiscal_year(day)
        usage = RiderUsage(True, True, False, per_day[day], per_fy[fy])
        (d,) = taxi_subsidies(p, 2000, [usage])
        if d.reason is Reason.SUBSIDISED:
            per_day[day] += 1
            per_fy[fy] += 1
        assert per_day[day] <= p.rides_per_day
    for fy, n in per_fy.items():
        # the older version's limit is higher; never more than the larger one
        limit = max(BOOK.mytaku_at(date(fy, 4, 1)).rides_per_fiscal_year, 0)
        limit = max(limit, BOOK.mytaku_at(date(fy + 1, 3, 31)).rides_per_fiscal_year)
        assert n <= limit


def test_fiscal_year_boundary() -> None:
    assert fiscal_year(date(2026, 3, 31)) == 2025
    assert fiscal_year(date(2026, 4, 1)) == 2026
    p = NEW
    # 70 used in FY2025: refused on 31 March, allowed again on 1 April (new year).
    full = RiderUsage(True, True, False, 0, p.rides_per_fiscal_year)
    assert taxi_subsidies(p, 2000, [full])[0].reason is Reason.ANNUAL_LIMIT
    assert taxi_subsidies(p, 2000, [RiderUsage(True, True, False, 0, 0)])[0].subsidy_yen == 1000
    # a Japan-time midnight ride on 1 April is in the new fiscal year even though it is
    # still 31 March in UTC
    ts = datetime(2026, 4, 1, 0, 30, tzinfo=JST)
    assert fiscal_year(ts.astimezone(JST).date()) == 2026


def test_hours_and_eligibility() -> None:
    assert in_hours(NEW, time(7, 0)) and in_hours(NEW, time(18, 59))
    assert not in_hours(NEW, time(19, 0)) and not in_hours(NEW, time(6, 59))
    assert not in_hours(OLD, time(18, 30))
    day = date(2026, 11, 26)
    born = lambda y: Fact("birth_date", f"{y}-06-01")  # noqa: E731
    elig = lambda *f: mytaku_eligibility(NEW, facts_on(list(f), day), day)  # noqa: E731
    assert elig(born(1950)) == "age-75+"
    assert elig(born(1958)) is None
    assert elig(born(1958), Fact("driving_licence", "none")) is not None
    assert elig(born(1990), Fact("driving_licence", "surrendered")) == "licence-surrendered"
    assert elig(born(1990), Fact("pregnancy", "yes", date(2026, 5, 1), date(2027, 6, 30)))
    assert elig(born(1990), Fact("pregnancy", "yes", date(2025, 1, 1), date(2025, 12, 31))) is None
    # a later fact overrides an earlier one (append-only corrections)
    assert elig(born(1990), Fact("disability", "yes"), Fact("disability", "no")) is None
    # excluded: received vehicle support and still drives
    assert (
        elig(born(1940), Fact("driving_licence", "held"), Fact("vehicle_support_subsidy", "yes"))
        is None
    )
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18


@given(st.integers(0, 100_000), st.integers(0, 110))
def test_bus_discount_floor_and_bounds(fare: int, age: int) -> None:
    p = BOOK.bus_at(date(2026, 11, 26))
    d = bus_discount(p, "gunmachuo", "R1", fare, age)
    assert 0 <= d.discount_yen <= fare // 10
    assert (d.discount_yen > 0) == (fare >= 10 and (13 <= age <= 22 or age >= 70))
    assert bus_discount(p, "other-operator", "R1", fare, age).discount_yen == 0
    assert bus_discount(p, "gunmachuo", "R1", fare, None).discount_yen == 0
    # the youth discount did not exist before 2024-12-03
    early = bus_discount(BOOK.bus_at(date(2024, 7, 1)), "gunmachuo", "R1", fare, 15)
    assert early.discount_yen == 0


def test_zero_yen_share_is_not_a_subsidised_ride() -> None:
    one = [RiderUsage(True, True)]
    assert taxi_subsidies(NEW, 0, one) == [RiderDecision(0, Reason.ZERO_SUBSIDY)]
    assert taxi_subsidies(NEW, 1, one) == [RiderDecision(0, Reason.ZERO_SUBSIDY)]
    assert [d.reason for d in taxi_subsidies(NEW, 3, one * 4)] == [Reason.ZERO_SUBSIDY] * 4
    assert taxi_subsidies(NEW, 2, one)[0] == RiderDecision(1, Reason.SUBSIDISED)


def test_public_reasons_do_not_depend_on_the_card() -> None:
    """Every rider-level refusal maps to one public reason; ride-level ones come first."""
    rider_level = [r for r in Reason if r is not Reason.SUBSIDISED]
    for hours, city, plausible, expected in (
        (True, True, True, PublicReason.NOT_SUBSIDISED),
        (False, True, True, PublicReason.OUTSIDE_HOURS),
        (True, False, True, PublicReason.OUTSIDE_CITY),
        (False, False, False, PublicReason.OUTSIDE_CITY),
        (True, True, False, PublicReason.FLAGGED),
    ):
        got = {
            public_reason(r, within_hours=hours, touches_city=city, plausible=plausible)
            for r in rider_level
        }
        assert got == {expected}


def test_submission_window_edges() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=JST)
    w = timedelta(days=14)
    assert submission_window_violation(now - w, (), now, w) is None
    old = submission_window_violation(now - w - timedelta(seconds=1), (), now, w)
    assert old is not None and old.rule == "submission-window"
    assert submission_window_violation(now + timedelta(minutes=5), (), now, w) is None
    ahead = submission_window_violation(now, (now + timedelta(minutes=6),), now, w)
    assert ahead is not None and ahead.rule == "no-future-records"


def test_ride_flags_and_open_periods() -> None:
    assert ride_flags(timedelta(minutes=20), 6000) == []
    assert ride_flags(timedelta(hours=3, minutes=1), 6000) == ["long-ride"]
    assert ride_flags(timedelta(minutes=2), 9000) == ["impossible-speed"]  # 270 km/h
    assert ride_flags(timedelta(0), 500) == []  # a stop at the meter: 30 km/h over 1 min
    closed = {date(2026, 7, 1), date(2026, 8, 1), date(2026, 10, 1)}
    assert first_open_period(date(2026, 7, 30), closed) == date(2026, 9, 1)
    assert first_open_period(date(2026, 6, 15), closed) == date(2026, 6, 1)
    assert first_open_period(date(2026, 12, 31), {date(2026, 12, 1)}) == date(2027, 1, 1)
