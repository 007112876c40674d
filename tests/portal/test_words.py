"""Pure logic of the portal: months, reset dates, totals, plain words, forms, display."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mobility.fares.history import BusTrip, TaxiTrip
from mobility.fares.rules import Reason
from portal import store, words
from portal.web import Display, behind_trusted_proxy, parse_display, safe_next

T = datetime(2026, 11, 20, 1, tzinfo=UTC)


def test_months() -> None:
    today = date(2026, 12, 1)
    assert words.parse_month("", today) == date(2026, 12, 1)
    assert words.parse_month("2026-01", today) == date(2026, 1, 1)
    for bad in ("2026-13", "26-01", "2026-1", "1999-12", "2026-00", "x"):
        with pytest.raises(ValueError):
            words.parse_month(bad, today)
    assert words.add_months(date(2026, 12, 1), 1) == date(2027, 1, 1)
    assert words.add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)
    start, end = words.month_bounds(date(2026, 11, 1))
    assert start.isoformat() == "2026-11-01T00:00:00+09:00"
    assert end.isoformat() == "2026-12-01T00:00:00+09:00"


def test_next_resets_follow_the_fiscal_year() -> None:
    assert words.next_resets(date(2026, 12, 1)) == words.Resets(date(2026, 12, 2), date(2027, 4, 1))
    assert words.next_resets(date(2027, 3, 31)) == words.Resets(date(2027, 4, 1), date(2027, 4, 1))
    assert words.next_resets(date(2027, 4, 1)).yearly == date(2028, 4, 1)


def test_every_reason_of_the_rules_has_plain_words() -> None:
    for r in Reason:
        assert words.reason_words(r.value) != words.UNKNOWN_REASON, r
    assert words.reason_words("something-new") == words.UNKNOWN_REASON


def test_totals_leave_out_reversed_records() -> None:
    taxi = [
        TaxiTrip("t", "1", T, T, 1800, 1, 900, "subsidised", False),
        TaxiTrip("t", "2", T, T, 2000, 2, 0, "outside-hours", False),
        TaxiTrip("t", "3", T, T, 1500, 1, 750, "subsidised", True),
    ]
    bus = [BusTrip("b", "1", "r", "o", "d", T, T, 200, 20, "senior", (), False)]
    t = words.month_totals(taxi, bus)
    assert (t.taxi_rides, t.taxi_fare_yen, t.taxi_subsidy_yen) == (2, 3800, 900)
    assert (t.bus_rides, t.bus_discount_yen, t.bus_paid_yen) == (1, 20, 180)
    assert words.taxi_share_yen(taxi[1]) == 1000
    assert words.yen(12345) == "12,345"


def test_nearly_used_up() -> None:
    # the tenth-last ride used leaves 9: that ride brings the notice, the one before not
    assert words.nearly_used_up(9, 10) and words.nearly_used_up(0, 10)
    assert not words.nearly_used_up(10, 10) and not words.nearly_used_up(11, 10)


def test_notice_form_clamps_thresholds() -> None:
    prefs = {
        p.kind: p
        for p in store.parse_notice_form(
            {
                "rides-nearly-used": "on",
                "rides-nearly-used-threshold": "-3",
                "bus-late-threshold": "x",
            }
        )
    }
    assert prefs["rides-nearly-used"].enabled and prefs["rides-nearly-used"].threshold == 1
    assert not prefs["bus-late"].enabled and prefs["bus-late"].threshold == 10
    assert prefs["ride-receipt"].threshold is None


def test_display_cookie_and_safe_next() -> None:
    d = Display("large", True, False)
    assert parse_display(d.cookie()) == d
    assert parse_display("huge.1.1") == Display() and parse_display(None) == Display()
    assert safe_next("/stops/g033_01") == "/stops/g033_01"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil", "/v1/me", None):
        assert safe_next(bad) == "/my/"


def test_secure_cookies_behind_a_trusted_proxy_only() -> None:
    assert behind_trusted_proxy("10.0.0.5", ["10.0.0.0/8"])
    assert not behind_trusted_proxy("192.0.2.1", ["10.0.0.0/8"])
    assert not behind_trusted_proxy("10.0.0.5", [])
    assert not behind_trusted_proxy("testclient", ["10.0.0.0/8"])


def test_a_stop_is_shown_by_name_never_by_code() -> None:
    from core.i18n import gettext_for
    from portal.stops import Stop

    ja, en = gettext_for("ja"), gettext_for("en")
    towards = Stop("g033_01", "表町", None, towards=("高崎駅", "新前橋駅西口"))
    assert words.stop_label(towards, ja) == "表町（高崎駅、新前橋駅西口 方面）"
    assert words.stop_label(towards, en) == "表町 (towards 高崎駅, 新前橋駅西口)"
    assert words.stop_label(Stop("t008_02", "天神町", None, pole=2), ja) == "天神町（のりば 2）"
    assert words.stop_label(Stop("t008_02", "天神町", None, pole=2), en) == "天神町 (stop 2)"
    arrivals = Stop("g035_01", "前橋駅", None, arrivals_only=True)
    assert words.stop_label(arrivals, ja) == "前橋駅（降車専用）"
    assert words.stop_label(Stop("x_1", "前橋駅", "3"), ja) == "前橋駅（3番のりば）"
    assert words.stop_label(Stop("x_1", "前橋駅", "3"), en) == "前橋駅 (platform 3)"
    assert words.stop_label(Stop("x_1", "前橋駅", "北口"), ja) == "前橋駅（北口）"
    assert words.stop_label(Stop("x_1", "県庁前", None), ja) == "県庁前"
