"""Ride and tap submissions decided atomically against the limits, and the ledger.

A submission runs in one transaction that locks the riders' resident rows (in id order, so
two submissions cannot deadlock); the second of two concurrent submissions at a limit waits
and then sees the first one's ledger entry. The operator's record id makes re-submission a
no-op: the ride row is inserted first and a duplicate returns the stored decision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from psycopg import AsyncConnection

from mobility.fares import cards, residents
from mobility.fares.city import inside_maebashi
from mobility.fares.plausibility import DETOUR_FACTOR, fare_far_from_expected, great_circle_m
from mobility.fares.policy import PolicyBook
from mobility.fares.rules import (
    JST,
    Fact,
    Reason,
    RiderUsage,
    age_on,
    bus_discount,
    facts_on,
    fiscal_year,
    in_hours,
    local_day,
    mytaku_eligibility,
    taxi_subsidies,
)

FareLookup = Callable[[AsyncConnection, str, str, str], Awaitable[int | None]]
DistanceLookup = Callable[[float, float, float, float], float | None]


@dataclass(frozen=True)
class TaxiRide:
    operator_id: str
    record_id: str
    vehicle_id: str
    pickup_at: datetime
    dropoff_at: datetime
    pickup_lon: float
    pickup_lat: float
    dropoff_lon: float
    dropoff_lat: float
    meter_fare_yen: int
    rider_idms: tuple[str, ...]


@dataclass(frozen=True)
class RiderOutcome:
    position: int
    card: str
    subsidy_yen: int
    reason: str


@dataclass
class TaxiOutcome:
    record_id: str
    policy_version: str
    flags: list[str]
    riders: list[RiderOutcome]
    duplicate: bool = False

    @property
    def subsidy_yen(self) -> int:
        return sum(r.subsidy_yen for r in self.riders)


def month_start(day: date) -> date:
    return day.replace(day=1)


async def _usage(
    conn: AsyncConnection, resident_ids: list[int], day: date, fy: int
) -> dict[int, tuple[int, int]]:
    """(rides today, rides this fiscal year) that were subsidised and not reversed."""
    cur = await conn.execute(
        "SELECT resident_id, count(*) FILTER (WHERE service_day = %s), count(*)"
        " FROM fare_ledger l WHERE resident_id = ANY(%s) AND fiscal_year = %s"
        " AND kind = 'mytaku'"
        " AND NOT EXISTS (SELECT 1 FROM fare_ledger r WHERE r.reverses = l.entry_id)"
        " GROUP BY resident_id",
        [day, resident_ids, fy],
    )
    return {int(r): (int(d), int(y)) async for r, d, y in cur}


async def _stored_taxi(conn: AsyncConnection, operator_id: str, record_id: str) -> TaxiOutcome:
    cur = await conn.execute(
        "SELECT policy_version, flags FROM fare_taxi_rides WHERE operator_id = %s"
        " AND record_id = %s",
        [operator_id, record_id],
    )
    row = await cur.fetchone()
    assert row is not None
    cur2 = await conn.execute(
        "SELECT position, subsidy_yen, reason, idm_hash FROM fare_taxi_riders"
        " WHERE operator_id = %s AND record_id = %s ORDER BY position",
        [operator_id, record_id],
    )
    riders = [RiderOutcome(p, "", s, r) async for p, s, r, _ in cur2]
    return TaxiOutcome(record_id, row[0], list(row[1]), riders, duplicate=True)


async def submit_taxi_ride(
    conn: AsyncConnection,
    key: bytes,
    ride: TaxiRide,
    book: PolicyBook,
    road_distance: DistanceLookup | None = None,
) -> TaxiOutcome:
    """Decide and record each rider's MyTaku subsidy (idempotent per record id)."""
    day = local_day(ride.pickup_at)
    policy = book.mytaku_at(day)
    fy = fiscal_year(day)
    hashes = [cards.idm_hash(key, i) for i in ride.rider_idms]
    last4 = [cards.normalise_idm(i)[-4:] for i in ride.rider_idms]
    within = in_hours(policy, ride.pickup_at.astimezone(JST).time())
    touches = inside_maebashi(ride.pickup_lon, ride.pickup_lat) or inside_maebashi(
        ride.dropoff_lon, ride.dropoff_lat
    )
    flags: list[str] = []
    if not within:
        flags.append("outside-hours")
    if not touches:
        flags.append("outside-city")
    dist = (
        road_distance(ride.pickup_lon, ride.pickup_lat, ride.dropoff_lon, ride.dropoff_lat)
        if road_distance
        else None
    )
    if dist is None:
        dist = DETOUR_FACTOR * great_circle_m(
            ride.pickup_lon, ride.pickup_lat, ride.dropoff_lon, ride.dropoff_lat
        )
    if fare_far_from_expected(ride.meter_fare_yen, dist):
        flags.append("fare-far-from-distance")

    async with conn.transaction():
        cur = await conn.execute(
            "SELECT 1 FROM fare_taxi_riders WHERE idm_hash = ANY(%s)"
            " AND pickup_at < %s AND dropoff_at > %s"
            " AND NOT (operator_id = %s AND record_id = %s) LIMIT 1",
            [hashes, ride.dropoff_at, ride.pickup_at, ride.operator_id, ride.record_id],
        )
        if await cur.fetchone() is not None:
            flags.append("card-in-two-taxis")
        cur = await conn.execute(
            "INSERT INTO fare_taxi_rides (operator_id, record_id, vehicle_id, pickup_at,"
            " dropoff_at, pickup_lon, pickup_lat, dropoff_lon, dropoff_lat, meter_fare_yen,"
            " riders, flags, policy_version) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                ride.operator_id,
                ride.record_id,
                ride.vehicle_id,
                ride.pickup_at,
                ride.dropoff_at,
                ride.pickup_lon,
                ride.pickup_lat,
                ride.dropoff_lon,
                ride.dropoff_lat,
                ride.meter_fare_yen,
                len(hashes),
                flags,
                policy.version,
            ],
        )
        if cur.rowcount == 0:
            dup = await _stored_taxi(conn, ride.operator_id, ride.record_id)
            dup.riders = [
                RiderOutcome(
                    r.position,
                    cards.mask(last4[r.position]) if r.position < len(last4) else "",
                    r.subsidy_yen,
                    r.reason,
                )
                for r in dup.riders
            ]
            return dup

        owners = await cards.residents_for_cards(conn, hashes)
        rids = sorted({owners[h] for h in hashes if h in owners})
        if rids:
            await conn.execute(
                "SELECT 1 FROM fare_residents WHERE resident_id = ANY(%s)"
                " ORDER BY resident_id FOR UPDATE",
                [rids],
            )
        usage = await _usage(conn, rids, day, fy)
        facts = await residents.facts_of(conn, rids)
        seen: set[int] = set()
        usages: list[RiderUsage] = []
        for h in hashes:
            rid = owners.get(h)
            if rid is None:
                usages.append(RiderUsage(registered=False, eligible=False))
                continue
            today, year = usage.get(rid, (0, 0))
            eligible = mytaku_eligibility(policy, facts_on(facts[rid], day), day) is not None
            usages.append(RiderUsage(True, eligible, rid in seen, today, year))
            seen.add(rid)
        decisions = taxi_subsidies(
            policy, ride.meter_fare_yen, usages, within_hours=within, touches_city=touches
        )
        outcome: list[RiderOutcome] = []
        period = month_start(day)
        for pos, (h, d) in enumerate(zip(hashes, decisions, strict=True)):
            rid = owners.get(h)
            await conn.execute(
                "INSERT INTO fare_taxi_riders (operator_id, record_id, position, idm_hash,"
                " resident_id, pickup_at, dropoff_at, subsidy_yen, reason)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    ride.operator_id,
                    ride.record_id,
                    pos,
                    h,
                    rid,
                    ride.pickup_at,
                    ride.dropoff_at,
                    d.subsidy_yen,
                    d.reason.value,
                ],
            )
            if d.reason is Reason.SUBSIDISED:
                await conn.execute(
                    "INSERT INTO fare_ledger (period, operator_id, source, record_id,"
                    " resident_id, kind, amount_yen, ride_at, service_day, fiscal_year,"
                    " policy_version) VALUES (%s, %s, 'taxi', %s, %s, 'mytaku', %s, %s, %s,"
                    " %s, %s)",
                    [
                        period,
                        ride.operator_id,
                        ride.record_id,
                        rid,
                        d.subsidy_yen,
                        ride.pickup_at,
                        day,
                        fy,
                        policy.version,
                    ],
                )
            outcome.append(RiderOutcome(pos, cards.mask(last4[pos]), d.subsidy_yen, d.reason))
    return TaxiOutcome(ride.record_id, policy.version, flags, outcome)


@dataclass(frozen=True)
class BusTap:
    operator_id: str
    record_id: str
    route_id: str
    origin_stop_id: str
    dest_stop_id: str
    tap_on_at: datetime
    tap_off_at: datetime
    idm: str


@dataclass
class BusOutcome:
    record_id: str
    policy_version: str
    fare_yen: int
    discount_yen: int
    discount: str | None
    flags: list[str] = field(default_factory=list)
    duplicate: bool = False

    @property
    def pay_yen(self) -> int:
        return self.fare_yen - self.discount_yen


class FareUnknownError(LookupError):
    """The GTFS feed has no fare for this route and pair of stops."""


async def submit_bus_tap(
    conn: AsyncConnection, key: bytes, tap: BusTap, book: PolicyBook, fare_lookup: FareLookup
) -> BusOutcome:
    """Compute the fare (GTFS zones) and the resident's discount; record it once."""
    day = local_day(tap.tap_on_at)
    policy = book.bus_at(day)
    fare = await fare_lookup(conn, tap.route_id, tap.origin_stop_id, tap.dest_stop_id)
    if fare is None:
        raise FareUnknownError
    h = cards.idm_hash(key, tap.idm)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT policy_version, fare_yen, discount_yen, discount, flags FROM fare_bus_taps"
            " WHERE operator_id = %s AND record_id = %s",
            [tap.operator_id, tap.record_id],
        )
        row = await cur.fetchone()
        if row is not None:
            return BusOutcome(tap.record_id, row[0], row[1], row[2], row[3], list(row[4]), True)
        owners = await cards.residents_for_cards(conn, [h])
        rid = owners.get(h)
        age = None
        if rid is not None:
            birth = residents.birth_date_of((await residents.facts_of(conn, [rid]))[rid])
            age = age_on(birth, day) if birth else None
        d = bus_discount(policy, tap.operator_id, tap.route_id, fare, age)
        flags = ["tap-off-before-tap-on"] if tap.tap_off_at < tap.tap_on_at else []
        cur = await conn.execute(
            "INSERT INTO fare_bus_taps (operator_id, record_id, route_id, origin_stop_id,"
            " dest_stop_id, tap_on_at, tap_off_at, idm_hash, resident_id, fare_yen,"
            " discount_yen, discount, flags, policy_version) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                tap.operator_id,
                tap.record_id,
                tap.route_id,
                tap.origin_stop_id,
                tap.dest_stop_id,
                tap.tap_on_at,
                tap.tap_off_at,
                h,
                rid,
                fare,
                d.discount_yen,
                d.discount,
                flags,
                policy.version,
            ],
        )
        if cur.rowcount == 0:  # a concurrent submission of the same record committed first
            cur = await conn.execute(
                "SELECT policy_version, fare_yen, discount_yen, discount, flags"
                " FROM fare_bus_taps WHERE operator_id = %s AND record_id = %s",
                [tap.operator_id, tap.record_id],
            )
            row = await cur.fetchone()
            assert row is not None
            return BusOutcome(tap.record_id, row[0], row[1], row[2], row[3], list(row[4]), True)
        if rid is not None and d.discount_yen > 0:
            await conn.execute(
                "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id,"
                " kind, amount_yen, ride_at, service_day, fiscal_year, policy_version)"
                " VALUES (%s, %s, 'bus', %s, %s, 'bus_discount', %s, %s, %s, %s, %s)",
                [
                    month_start(day),
                    tap.operator_id,
                    tap.record_id,
                    rid,
                    d.discount_yen,
                    tap.tap_on_at,
                    day,
                    fiscal_year(day),
                    policy.version,
                ],
            )
    return BusOutcome(tap.record_id, policy.version, fare, d.discount_yen, d.discount, flags)


async def reverse_record(
    conn: AsyncConnection, operator_id: str, source: str, record_id: str, note: str
) -> list[int]:
    """Cancel every live entry of a record with reversal rows; returns the new entry ids."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT entry_id, resident_id FROM fare_ledger l WHERE operator_id = %s"
            " AND source = %s AND record_id = %s AND kind <> 'reversal'"
            " AND NOT EXISTS (SELECT 1 FROM fare_ledger r WHERE r.reverses = l.entry_id)"
            " ORDER BY entry_id",
            [operator_id, source, record_id],
        )
        entries = [(int(e), int(r)) async for e, r in cur]
        if entries:
            await conn.execute(
                "SELECT 1 FROM fare_residents WHERE resident_id = ANY(%s)"
                " ORDER BY resident_id FOR UPDATE",
                [sorted({r for _, r in entries})],
            )
        new_ids: list[int] = []
        for entry_id, _ in entries:
            cur = await conn.execute(
                "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id,"
                " kind, amount_yen, ride_at, service_day, fiscal_year, policy_version,"
                " reverses, note)"
                " SELECT date_trunc('month', now() AT TIME ZONE 'Asia/Tokyo')::date,"
                " operator_id, source, record_id, resident_id, 'reversal', -amount_yen,"
                " ride_at, service_day, fiscal_year, policy_version, entry_id, %s"
                " FROM fare_ledger WHERE entry_id = %s ON CONFLICT (reverses) DO NOTHING"
                " RETURNING entry_id",
                [note, entry_id],
            )
            row = await cur.fetchone()
            if row:
                new_ids.append(int(row[0]))
    return new_ids


@dataclass(frozen=True)
class SubsidyStatus:
    policy_version: str
    fiscal_year: int
    eligible_as: str | None
    rides_today: int
    rides_left_today: int
    rides_this_year: int
    rides_left_this_year: int
    subsidy_yen_this_year: int
    bus_discount_yen_this_year: int


_STANDING_SQL = """
SELECT
  count(*) FILTER (WHERE kind = 'mytaku' AND service_day = %(d)s AND NOT EXISTS
    (SELECT 1 FROM fare_ledger r WHERE r.reverses = l.entry_id)),
  count(*) FILTER (WHERE kind = 'mytaku' AND NOT EXISTS
    (SELECT 1 FROM fare_ledger r WHERE r.reverses = l.entry_id)),
  coalesce(sum(amount_yen) FILTER (WHERE source = 'taxi'), 0),
  coalesce(sum(amount_yen) FILTER (WHERE source = 'bus'), 0),
  (SELECT coalesce(json_agg(json_build_array(kind, value, valid_from, valid_to)
                            ORDER BY fact_id), '[]')
   FROM fare_eligibility_facts WHERE resident_id = %(r)s)
FROM fare_ledger l WHERE resident_id = %(r)s AND fiscal_year = %(fy)s
"""


def _d(v: str | None) -> date | None:
    return date.fromisoformat(v) if v else None


@dataclass(frozen=True)
class Standing:
    """A resident's usage this day and fiscal year, and their eligibility facts."""

    rides_today: int
    rides_this_year: int
    taxi_yen: int
    bus_yen: int
    facts: list[Fact]


async def standing(conn: AsyncConnection, resident_id: int, day: date) -> Standing:
    """One round trip: what the resident has used and the facts that decide eligibility."""
    cur = await conn.execute(
        _STANDING_SQL, {"d": day, "r": resident_id, "fy": fiscal_year(day)}, prepare=True
    )
    row = await cur.fetchone()
    assert row is not None
    facts = [Fact(k, v, _d(f), _d(t)) for k, v, f, t in row[4]]
    return Standing(int(row[0]), int(row[1]), int(row[2]), int(row[3]), facts)


async def subsidy_status(
    conn: AsyncConnection, resident_id: int, book: PolicyBook, now: datetime
) -> SubsidyStatus:
    day = local_day(now)
    policy = book.mytaku_at(day)
    st = await standing(conn, resident_id, day)
    eligible = mytaku_eligibility(policy, facts_on(st.facts, day), day)
    return SubsidyStatus(
        policy_version=policy.version,
        fiscal_year=fiscal_year(day),
        eligible_as=eligible,
        rides_today=st.rides_today,
        rides_left_today=max(0, policy.rides_per_day - st.rides_today) if eligible else 0,
        rides_this_year=st.rides_this_year,
        rides_left_this_year=(
            max(0, policy.rides_per_fiscal_year - st.rides_this_year) if eligible else 0
        ),
        subsidy_yen_this_year=st.taxi_yen,
        bus_discount_yen_this_year=st.bus_yen,
    )


async def resident_rides(
    conn: AsyncConnection, resident_id: int, limit: int = 100
) -> list[dict[str, object]]:
    cur = await conn.execute(
        "SELECT entry_id, source, kind, amount_yen, ride_at, policy_version, reverses"
        " FROM fare_ledger WHERE resident_id = %s ORDER BY entry_id DESC LIMIT %s",
        [resident_id, limit],
    )
    cols = ["entry_id", "source", "kind", "amount_yen", "ride_at", "policy_version", "reverses"]
    return [dict(zip(cols, r, strict=True)) async for r in cur]
