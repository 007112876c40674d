"""A resident's own rides and taps for a period, with the decision on each (SQL adapter).

The resident portal (``portal/``) shows these month by month and prints them as a
statement; it reads them here so that only the fares package touches the fares tables.
Rows carry the detailed reason (``fare_taxi_riders.reason``), which the resident may see
about their own rides (operators see only the public reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection


@dataclass(frozen=True)
class TaxiTrip:
    """One MyTaku taxi ride of the resident: fare, their subsidy and why."""

    operator_id: str
    record_id: str
    pickup_at: datetime
    dropoff_at: datetime
    meter_fare_yen: int
    riders: int
    subsidy_yen: int
    reason: str
    reversed: bool


@dataclass(frozen=True)
class BusTrip:
    """One bus ride (IC tap-on/tap-off) of the resident: fare, discount, what was paid."""

    operator_id: str
    record_id: str
    route_id: str
    origin_stop_id: str
    dest_stop_id: str
    tap_on_at: datetime
    tap_off_at: datetime
    fare_yen: int
    discount_yen: int
    discount: str | None
    flags: tuple[str, ...]
    reversed: bool


_REVERSED = """EXISTS (SELECT 1 FROM fare_ledger l JOIN fare_ledger r ON r.reverses = l.entry_id
  WHERE l.operator_id = {t}.operator_id AND l.source = '{src}' AND l.record_id = {t}.record_id
    AND l.resident_id = %(r)s)"""

_TAXI_SQL = f"""
SELECT t.operator_id, t.record_id, t.pickup_at, t.dropoff_at, t.meter_fare_yen, t.riders,
       x.subsidy_yen, x.reason, {_REVERSED.format(t="x", src="taxi")}
FROM fare_taxi_riders x
JOIN fare_taxi_rides t ON t.operator_id = x.operator_id AND t.record_id = x.record_id
WHERE x.resident_id = %(r)s AND x.pickup_at >= %(a)s AND x.pickup_at < %(b)s
ORDER BY x.pickup_at, x.record_id
"""

_BUS_SQL = f"""
SELECT b.operator_id, b.record_id, b.route_id, b.origin_stop_id, b.dest_stop_id, b.tap_on_at,
       b.tap_off_at, b.fare_yen, b.discount_yen, b.discount, b.flags,
       {_REVERSED.format(t="b", src="bus")}
FROM fare_bus_taps b
WHERE b.resident_id = %(r)s AND b.tap_on_at >= %(a)s AND b.tap_on_at < %(b)s
ORDER BY b.tap_on_at, b.record_id
"""


async def taxi_trips(
    conn: AsyncConnection, resident_id: int, start: datetime, end: datetime
) -> list[TaxiTrip]:
    """The resident's taxi rides picked up in [start, end), oldest first."""
    cur = await conn.execute(_TAXI_SQL, {"r": resident_id, "a": start, "b": end})
    return [
        TaxiTrip(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]), r[7], bool(r[8]))
        async for r in cur
    ]


async def bus_trips(
    conn: AsyncConnection, resident_id: int, start: datetime, end: datetime
) -> list[BusTrip]:
    """The resident's bus rides tapped on in [start, end), oldest first."""
    cur = await conn.execute(_BUS_SQL, {"r": resident_id, "a": start, "b": end})
    return [
        BusTrip(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            int(r[7]),
            int(r[8]),
            r[9],
            tuple(r[10] or ()),
            bool(r[11]),
        )
        async for r in cur
    ]


@dataclass(frozen=True)
class Received:
    """A ride or tap that arrived (for receipts and notices): whose card it was, and the
    holder of a card reported lost when a lost card was presented."""

    source: str  # "taxi" or "bus"
    operator_id: str
    record_id: str
    ride_at: datetime
    received_at: datetime
    resident_id: int | None
    amount_yen: int  # MyTaku subsidy or bus discount
    lost_card_holder: int | None


_RECEIVED_SQL = """
SELECT 'taxi', x.operator_id, x.record_id, x.pickup_at, t.received_at, x.resident_id,
       x.subsidy_yen, lost.resident_id
FROM fare_taxi_riders x
JOIN fare_taxi_rides t ON t.operator_id = x.operator_id AND t.record_id = x.record_id
LEFT JOIN fare_ic_cards lost ON lost.idm_hash = x.idm_hash AND lost.status = 'lost'
WHERE t.received_at > %(a)s AND t.received_at <= %(b)s
UNION ALL
SELECT 'bus', b.operator_id, b.record_id, b.tap_on_at, b.received_at, b.resident_id,
       b.discount_yen, lost.resident_id
FROM fare_bus_taps b
LEFT JOIN fare_ic_cards lost ON lost.idm_hash = b.idm_hash AND lost.status = 'lost'
WHERE b.received_at > %(a)s AND b.received_at <= %(b)s
ORDER BY 5
LIMIT %(limit)s
"""


async def received_between(
    conn: AsyncConnection, after: datetime, until: datetime, limit: int = 5000
) -> list[Received]:
    """Rides and taps received in (after, until], oldest first."""
    cur = await conn.execute(_RECEIVED_SQL, {"a": after, "b": until, "limit": limit})
    return [Received(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), r[7]) async for r in cur]
