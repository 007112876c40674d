"""Plausibility checks on submitted rides: flags for staff review, never silent rejections.

A flag is stored with the record and shown to city staff. ``fare-far-from-distance`` only
flags; ``long-ride`` and ``impossible-speed`` also withhold the subsidy (the record cannot
be a real taxi ride as submitted: the operator submits a corrected record under a new
record id). Taps on several cards of one resident within minutes get no discount but the
first, since one person cannot ride on two cards at once.
"""

from __future__ import annotations

import math
from datetime import timedelta

from core import geo

# Expected taxi fare for a road distance: a small-sized-car tariff of the Gunma area
# (first 1.2 km 500 yen, then 100 yen per 270 m). Unconfirmed: a policy-like constant,
# used only to flag meter fares far from it.
FLAG_FIRST_KM_M = 1200
FLAG_FIRST_YEN = 500
FLAG_STEP_M = 270
FLAG_STEP_YEN = 100
DETOUR_FACTOR = 1.3  # road distance / straight line when no road graph is available


def expected_taxi_fare(distance_m: float) -> int:
    """The metered fare for a distance, to flag a reported taxi fare that does not fit it."""
    if distance_m <= FLAG_FIRST_KM_M:
        return FLAG_FIRST_YEN
    steps = math.ceil((distance_m - FLAG_FIRST_KM_M) / FLAG_STEP_M)
    return FLAG_FIRST_YEN + steps * FLAG_STEP_YEN


def fare_far_from_expected(meter_fare_yen: int, distance_m: float) -> bool:
    """Below half or above twice (+1,000 yen for waiting time) the expected fare."""
    expected = expected_taxi_fare(distance_m)
    return meter_fare_yen < expected // 2 or meter_fare_yen > 2 * expected + 1000


def great_circle_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Straight-line (geodesic) distance, in the (lon, lat) order of ride records."""
    return geo.distance_m(lat1, lon1, lat2, lon2)


# A MyTaku ride is a trip inside or out of Maebashi: a meter running for hours is a data
# error or abuse, not a ride. 3 hours is far above any trip across the city.
MAX_RIDE_DURATION = timedelta(hours=3)
# Average speed above which a taxi ride cannot have happened (road distance / duration).
MAX_AVERAGE_SPEED_KMH = 100.0
# Shortest ride for which an average speed is computed (clock rounding on short rides).
MIN_SPEED_DURATION = timedelta(minutes=1)
# Taps of two different cards of one resident closer than this are one person on two cards.
MULTI_CARD_WINDOW = timedelta(minutes=10)


def ride_flags(duration: timedelta, distance_m: float) -> list[str]:
    """``long-ride`` and ``impossible-speed`` flags for one ride (both withhold the subsidy)."""
    flags: list[str] = []
    if duration > MAX_RIDE_DURATION:
        flags.append("long-ride")
    seconds = max(duration, MIN_SPEED_DURATION).total_seconds()
    if distance_m / 1000 / (seconds / 3600) > MAX_AVERAGE_SPEED_KMH:
        flags.append("impossible-speed")
    return flags


BLOCKING_FLAGS = frozenset({"long-ride", "impossible-speed"})

# Flags an operator may see in its own responses: facts about the record it sent. Flags
# found by comparing with other records (another taxi, another card of the holder) would
# tell the operator about the holder's other rides and cards, so only staff see them.
OPERATOR_FLAGS = frozenset(
    {
        "outside-hours",
        "outside-city",
        "fare-far-from-distance",
        "long-ride",
        "impossible-speed",
        "tap-off-before-tap-on",
    }
)
