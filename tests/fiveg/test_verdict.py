"""The verdict says 'insufficient data' until enough of the period has samples, and
default buckets fit the period (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fiveg.engine import fit_bucket
from fiveg.kpi import Scorecard


def _card(with_data: int, total: int, passed: bool) -> Scorecard:
    return Scorecard([], passed, total, with_data, [], min_coverage_pct=80.0)


@pytest.mark.parametrize(
    ("with_data", "passed", "verdict"),
    [
        (100, True, "pass"),
        (80, False, "fail"),
        (79, True, "insufficient-data"),
        (2, False, "insufficient-data"),
        (0, True, "insufficient-data"),
    ],
)
def test_verdict_needs_enough_data(with_data: int, passed: bool, verdict: str) -> None:
    assert _card(with_data, 100, passed).verdict == verdict


T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "width"),
    [
        (timedelta(hours=1), timedelta(minutes=1)),
        (timedelta(days=3), timedelta(minutes=5)),
        (timedelta(days=30), timedelta(hours=1)),
        (timedelta(days=426), timedelta(hours=6)),
        (timedelta(days=36500), timedelta(days=7)),
    ],
)
def test_default_bucket_fits_the_period(span: timedelta, width: timedelta) -> None:
    assert fit_bucket(T0, T0 + span) == width
