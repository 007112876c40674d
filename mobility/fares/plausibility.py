"""Plausibility checks on submitted rides: flags for staff review, never silent rejections."""

from __future__ import annotations

import math

# Expected taxi fare for a road distance: a small-sized-car tariff of the Gunma area
# (first 1.2 km 500 yen, then 100 yen per 270 m). Unconfirmed: a policy-like constant,
# used only to flag meter fares far from it.
FLAG_FIRST_KM_M = 1200
FLAG_FIRST_YEN = 500
FLAG_STEP_M = 270
FLAG_STEP_YEN = 100
DETOUR_FACTOR = 1.3  # road distance / straight line when no road graph is available


def expected_taxi_fare(distance_m: float) -> int:
    if distance_m <= FLAG_FIRST_KM_M:
        return FLAG_FIRST_YEN
    steps = math.ceil((distance_m - FLAG_FIRST_KM_M) / FLAG_STEP_M)
    return FLAG_FIRST_YEN + steps * FLAG_STEP_YEN


def fare_far_from_expected(meter_fare_yen: int, distance_m: float) -> bool:
    """Below half or above twice (+1,000 yen for waiting time) the expected fare."""
    expected = expected_taxi_fare(distance_m)
    return meter_fare_yen < expected // 2 or meter_fare_yen > 2 * expected + 1000


def great_circle_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))
