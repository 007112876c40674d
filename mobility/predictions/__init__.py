"""Arrival predictions: learned travel and dwell times, a pure engine, its evaluation.

``upcoming_at_stop(conn, stop_id, *, now, limit)`` (async) is the public per-stop
next-arrivals function (resident portal, ``GET /v1/stops/{stop_id}/arrivals``).
"""

from mobility.predictions.upcoming import UnknownStopError, UpcomingArrival, upcoming_at_stop

__all__ = ["UnknownStopError", "UpcomingArrival", "upcoming_at_stop"]
