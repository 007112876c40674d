"""Which buses are in service now: the timetable's trips chained into vehicle blocks.

The bundled feed has no ``block_id``, so blocks are built the way a scheduler would: a
trip follows the earliest-finishing block that ends at its first stop (within a short
walk) at least a minimum layover before it departs. Pure functions over plans.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from core.geo import distance_m
from ingest.simulate.feed import TripPlan

JST = timezone(timedelta(hours=9), "Asia/Tokyo")
MIN_LAYOVER_S = 120
MAX_LAYOVER_S = 90 * 60
SAME_PLACE_M = 300.0


@dataclass
class Block:
    """One vehicle's trips in order."""

    trips: list[TripPlan]

    @property
    def end_s(self) -> int:
        """When the block's last trip ends: the vehicle is out of service after it."""
        return self.trips[-1].end_s

    def at(self, tod: float) -> int | None:
        """Index of the trip in service (or in layover before it) at ``tod``; None when
        the block has not started or has finished."""
        if tod < self.trips[0].start_s - MIN_LAYOVER_S or tod >= self.end_s:
            return None
        for i, t in enumerate(self.trips):
            if tod < t.end_s:
                return i
        return None


def _joins(prev: TripPlan, nxt: TripPlan) -> bool:
    a, b = prev.stops[-1].stop, nxt.stops[0].stop
    gap = nxt.start_s - prev.end_s
    near = a.stop_id == b.stop_id or distance_m(a.lat, a.lon, b.lat, b.lon) <= SAME_PLACE_M
    return near and MIN_LAYOVER_S <= gap <= MAX_LAYOVER_S


def build_blocks(plans: list[TripPlan]) -> list[Block]:
    """Chain timetabled trips into blocks (first fit by earliest finish)."""
    blocks: list[Block] = []
    for plan in sorted(plans, key=lambda p: p.start_s):
        fits = [b for b in blocks if _joins(b.trips[-1], plan)]
        if fits:
            min(fits, key=lambda b: b.end_s).trips.append(plan)
        else:
            blocks.append(Block([plan]))
    return blocks


def in_service(blocks: list[Block], tod: float, n: int) -> list[tuple[Block, int]]:
    """Up to ``n`` blocks running at ``tod`` (with the index of their current trip),
    spread over routes and directions; blocks about to start fill the rest."""
    running = [(b, i) for b in blocks if (i := b.at(tod)) is not None]
    running.sort(key=lambda bi: (bi[0].trips[bi[1]].route_id or "", bi[0].trips[bi[1]].start_s))
    by_route: dict[tuple[str | None, int | None], list[tuple[Block, int]]] = {}
    for b, i in running:
        t = b.trips[i]
        by_route.setdefault((t.route_id, t.direction_id), []).append((b, i))
    picked: list[tuple[Block, int]] = []
    while len(picked) < n and any(by_route.values()):
        for key in list(by_route):
            if by_route[key] and len(picked) < n:
                picked.append(by_route[key].pop(0))
    return picked


def next_departure(blocks: list[Block], tod: float) -> int | None:
    """Seconds after midnight of the next trip start after ``tod`` (None: none today)."""
    starts = [t.start_s for b in blocks for t in b.trips if t.start_s > tod]
    return min(starts, default=None)


def traffic_factor(t: datetime) -> float:
    """Share of free-flow speed that Maebashi's traffic allows at this time of day (JST):
    slowest in the morning and evening rush hours."""
    local = t.astimezone(JST)
    h = local.hour + local.minute / 60
    if 7 <= h < 9:
        return 0.72
    if 16.5 <= h < 19:
        return 0.78
    if 9 <= h < 16.5:
        return 0.85
    return 0.95


def busy_stops(stop_ids: list[str], share: float = 0.1) -> frozenset[str]:
    """The most served stops (top ``share`` by visits): more boarding, longer dwell."""
    counts = Counter(stop_ids)
    keep = max(1, round(len(counts) * share))
    return frozenset(s for s, _ in counts.most_common(keep))
