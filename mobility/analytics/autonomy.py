"""Autonomous-bus KPIs for one Asia/Tokyo day: share of distance and time in autonomous
mode (from consecutive telemetry fixes; gaps over ``max_gap_s`` are not counted),
takeovers per 100 km by cause, obstacle stops and remote interventions (bus_events of
type ``takeover``, ``obstacle_stop`` and ``remote_intervention``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import psycopg

AUTONOMY_SQL = """
WITH t AS (
    SELECT vehicle_id, ts, mode, odometer_m, lat, lon,
           lag(ts) OVER w AS pts, lag(mode) OVER w AS pmode,
           lag(odometer_m) OVER w AS podo
    FROM bus_telemetry
    WHERE ts >= (%(day)s::date)::timestamp AT TIME ZONE 'Asia/Tokyo'
      AND ts < (%(day)s::date + 1)::timestamp AT TIME ZONE 'Asia/Tokyo'
      AND (%(vehicle)s::text IS NULL OR vehicle_id = %(vehicle)s)
    WINDOW w AS (PARTITION BY vehicle_id ORDER BY ts)
), steps AS (
    SELECT vehicle_id, pmode AS mode, extract(epoch FROM ts - pts) AS dt,
           greatest(odometer_m - podo, 0) AS dd
    FROM t WHERE pts IS NOT NULL AND extract(epoch FROM ts - pts) <= %(max_gap)s
)
SELECT vehicle_id,
       coalesce(sum(dd), 0) AS distance_m,
       coalesce(sum(dd) FILTER (WHERE mode = 'autonomous'), 0) AS autonomous_m,
       coalesce(sum(dt), 0) AS seconds,
       coalesce(sum(dt) FILTER (WHERE mode = 'autonomous'), 0) AS autonomous_s,
       coalesce(sum(dt) FILTER (WHERE mode = 'remote'), 0) AS remote_s
FROM steps GROUP BY vehicle_id ORDER BY vehicle_id
"""

EVENTS_SQL = """
SELECT vehicle_id, type, coalesce(cause, 'unknown'), count(*)
FROM bus_events
WHERE type IN ('takeover', 'obstacle_stop', 'remote_intervention')
  AND ts >= (%(day)s::date)::timestamp AT TIME ZONE 'Asia/Tokyo'
  AND ts < (%(day)s::date + 1)::timestamp AT TIME ZONE 'Asia/Tokyo'
  AND (%(vehicle)s::text IS NULL OR vehicle_id = %(vehicle)s)
GROUP BY 1, 2, 3
"""


@dataclass
class AutonomyKpis:
    """An autonomous bus's driving on one day: distance and time in autonomous mode and the
    takeovers by cause, the figures the Level 4 permit reports ask for."""

    vehicle_id: str
    distance_m: float = 0.0
    autonomous_m: float = 0.0
    seconds: float = 0.0
    autonomous_s: float = 0.0
    remote_s: float = 0.0
    takeovers_by_cause: dict[str, int] = field(default_factory=dict)
    obstacle_stops: int = 0
    remote_interventions: int = 0

    @property
    def autonomous_distance_share(self) -> float | None:
        """The share of distance driven autonomously; None without distance."""
        return self.autonomous_m / self.distance_m if self.distance_m > 0 else None

    @property
    def autonomous_time_share(self) -> float | None:
        """The share of time driven autonomously; None without time."""
        return self.autonomous_s / self.seconds if self.seconds > 0 else None

    @property
    def takeovers(self) -> int:
        """All takeovers, whatever the cause."""
        return sum(self.takeovers_by_cause.values())

    def takeovers_per_100km(self, cause: str | None = None) -> float | None:
        """Takeovers (of one cause, or all) per 100 km, the rate regulators compare; None without
        distance."""
        n = self.takeovers if cause is None else self.takeovers_by_cause.get(cause, 0)
        return n / (self.distance_m / 100_000) if self.distance_m > 0 else None


def autonomy_kpis(
    conn: psycopg.Connection, day: date, vehicle_id: str | None = None, max_gap_s: float = 60
) -> list[AutonomyKpis]:
    """Autonomy figures per vehicle on ``day``; gaps over ``max_gap_s`` between fixes are not
    counted as driving."""
    params = {"day": day, "vehicle": vehicle_id, "max_gap": max_gap_s}
    out: dict[str, AutonomyKpis] = {}
    for r in conn.execute(AUTONOMY_SQL, params):
        out[r[0]] = AutonomyKpis(
            r[0], float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])
        )
    for vid, etype, cause, n in conn.execute(EVENTS_SQL, params):
        k = out.setdefault(vid, AutonomyKpis(vid))
        if etype == "takeover":
            k.takeovers_by_cause[cause] = k.takeovers_by_cause.get(cause, 0) + int(n)
        elif etype == "obstacle_stop":
            k.obstacle_stops += int(n)
        else:
            k.remote_interventions += int(n)
    return sorted(out.values(), key=lambda k: k.vehicle_id)
