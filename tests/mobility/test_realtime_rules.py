"""Trip-update times obey the GTFS-Realtime validator's rules for any timetable (pure)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from google.transit import gtfs_realtime_pb2 as rt
from hypothesis import given
from hypothesis import strategies as st

from mobility.realtime import StopAhead, VehicleRow, predicted_times, trip_updates
from tests.mobility.gtfs_rt_rules import StaticFeed, check_trip_updates

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
T0 = NOW.timestamp()


def _vehicle(delay: float) -> VehicleRow:
    return VehicleRow(
        "bus-1", NOW, 36.38, 139.07, 5.0, 90.0, "in_transit", "t1", "r1", 0,
        date(2026, 12, 1), "s1", 1, delay,
    )  # fmt: skip


def _static(n: int) -> StaticFeed:
    stops = {f"s{i}": (36.38, 139.07, 0) for i in range(1, n + 1)}
    return StaticFeed(
        {"t1": ("r1", 0, None)},
        {"r1"},
        stops,
        {"t1": [(i, f"s{i}") for i in range(1, n + 1)]},
    )


def test_same_minute_stops_get_strictly_increasing_times() -> None:
    ahead = [
        StopAhead(1, "s1", T0 + 60, T0 + 60),
        StopAhead(2, "s2", T0 + 120, T0 + 120),
        StopAhead(3, "s3", T0 + 120, T0 + 120),  # same minute as s2 in the timetable
        StopAhead(4, "s4", T0 + 180, T0 + 180),
    ]
    times = predicted_times(ahead, 30, NOW)
    flat = [t for pair in times for t in pair]
    assert flat == sorted(flat)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(times))
    assert times[0] == (int(T0) + 90, int(T0) + 90)


def test_no_prediction_in_the_past() -> None:
    ahead = [StopAhead(1, "s1", T0 - 300, T0 - 300), StopAhead(2, "s2", T0 + 60, T0 + 60)]
    times = predicted_times(ahead, 0, NOW)
    assert times[0][0] >= int(T0) and times[1][0] > times[0][1]


@given(
    gaps=st.lists(st.integers(0, 600), min_size=1, max_size=30),
    dwell=st.lists(st.integers(0, 120), min_size=30, max_size=30),
    delay=st.integers(-900, 3600),
    start=st.integers(-3600, 3600),
)
def test_any_timetable_passes_the_time_rules(
    gaps: list[int], dwell: list[int], delay: int, start: int
) -> None:
    ahead, t = [], T0 + start
    for i, g in enumerate(gaps, start=1):
        t += g
        ahead.append(StopAhead(i, f"s{i}", t, t + dwell[i - 1]))
        t += dwell[i - 1]
    feed = trip_updates([_vehicle(delay)], {"bus-1": ahead}, NOW)
    assert check_trip_updates(feed, _static(len(gaps)), T0) == []


def test_finished_trip_has_no_update() -> None:
    v = _vehicle(0.0)
    feed = trip_updates([v], {"bus-1": []}, NOW)
    assert len(feed.entity) == 0
    assert isinstance(feed, rt.FeedMessage)
