"""Ride and tap submissions decided atomically against the limits, and the ledger.

A submission runs in one transaction that locks the riders' resident rows (in id order, so
two submissions cannot deadlock); the second of two concurrent submissions at a limit waits
and then sees the first one's ledger entry. The operator's record id makes re-submission a
no-op: the ride row is inserted first and a duplicate returns the stored decision (a different
record under the same id is a conflict).

Money stays settled: a record must arrive within the submission window, and every ledger
entry goes to the first *open* period at or after its month (a late record or a reversal of
a closed month becomes an adjustment of the next open one). Ledger writers hold a shared
advisory lock (:data:`PERIOD_LOCK`) while they decide the period; closing a month takes it
exclusively, so no entry can slip into a month while its statement is being frozen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import anyio
from psycopg import AsyncConnection

from core.i18n import F_
from mobility.fares import cards, residents
from mobility.fares.city import inside_maebashi
from mobility.fares.plausibility import (
    BLOCKING_FLAGS,
    DETOUR_FACTOR,
    MULTI_CARD_WINDOW,
    fare_far_from_expected,
    great_circle_m,
    ride_flags,
)
from mobility.fares.policy import MyTakuPolicy, PolicyBook
from mobility.fares.rules import (
    JST,
    Fact,
    Reason,
    RiderUsage,
    WindowViolation,
    age_on,
    bus_discount,
    facts_on,
    fiscal_year,
    in_hours,
    local_day,
    mytaku_eligibility,
    public_reason,
    submission_window_violation,
    taxi_subsidies,
)

FareLookup = Callable[[AsyncConnection, str, str, str], Awaitable[int | None]]
DistanceLookup = Callable[[float, float, float, float], float | None]


@dataclass(frozen=True)
class TaxiRide:
    """A MyTaku taxi ride as the operator reports it."""

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


# Advisory lock key shared by ledger writers (shared) and period closing (exclusive). The
# ledger's insert trigger takes it too, so even a writer that forgets cannot race a close.
PERIOD_LOCK = 0x6D656275


class OutsideWindowError(ValueError):
    """The record is outside the submission window (too old or in the future)."""

    def __init__(self, violation: WindowViolation) -> None:
        super().__init__(violation.detail)
        self.violation = violation


class RecordConflictError(ValueError):
    """The record id was already used for a different record (other card, time or fare)."""


@dataclass(frozen=True)
class RiderOutcome:
    """The subsidy decided for one rider of a shared ride."""

    position: int
    card: str
    subsidy_yen: int
    reason: str
    public_reason: str = ""

    @property
    def status(self) -> str:
        """``subsidised`` or ``not-subsidised``: what anyone may be told about the rider."""
        return "subsidised" if self.subsidy_yen > 0 else "not-subsidised"


@dataclass
class TaxiOutcome:
    """What the ledger recorded for one taxi ride, with its plausibility flags."""

    record_id: str
    policy_version: str
    flags: list[str]
    riders: list[RiderOutcome]
    duplicate: bool = False

    @property
    def subsidy_yen(self) -> int:
        """The ride's subsidy: the riders' subsidies summed."""
        return sum(r.subsidy_yen for r in self.riders)


def month_start(day: date) -> date:
    """The first day of the month, as monthly caps and statements count by month."""
    return day.replace(day=1)


def next_month(m: date) -> date:
    """The first day of the next month (the end of a month's half-open range)."""
    return date(m.year + m.month // 12, m.month % 12 + 1, 1)


def first_open_period(month: date, closed: set[date]) -> date:
    """The settlement period an entry of ``month`` goes to: the month itself, or the first
    month after it that is not closed (so a late entry adjusts the next open statement)."""
    m = month_start(month)
    while m in closed:
        m = next_month(m)
    return m


async def open_period(conn: AsyncConnection, month: date) -> date:
    """Take the shared period lock (until commit) and return the first open period."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", [PERIOD_LOCK])
    cur = await conn.execute(
        "SELECT period FROM fare_closed_periods WHERE period >= %s", [month_start(month)]
    )
    return first_open_period(month, {r[0] async for r in cur})


def _check_window(
    started: datetime, times: tuple[datetime, ...], now: datetime | None, window: timedelta | None
) -> None:
    if window is None:
        return
    v = submission_window_violation(started, times, now or datetime.now(UTC), window)
    if v is not None:
        raise OutsideWindowError(v)


async def _usage(
    conn: AsyncConnection, resident_ids: list[int], day: date, fy: int
) -> dict[int, tuple[int, int]]:
    """(rides today, rides this fiscal year) that were subsidised and not reversed."""
    cur = await conn.execute(
        "SELECT resident_id, count(*) FILTER (WHERE service_day = %s), count(*)"
        " FROM fare_ledger l WHERE resident_id = ANY(%s) AND fiscal_year = %s"
        " AND kind = 'mytaku' AND amount_yen > 0"
        " AND NOT EXISTS (SELECT 1 FROM fare_ledger r WHERE r.reverses = l.entry_id)"
        " GROUP BY resident_id",
        [day, resident_ids, fy],
    )
    return {int(r): (int(d), int(y)) async for r, d, y in cur}


def _public(reason: str, flags: list[str]) -> str:
    return public_reason(
        Reason(reason),
        within_hours="outside-hours" not in flags,
        touches_city="outside-city" not in flags,
        plausible=not BLOCKING_FLAGS & set(flags),
    ).value


async def _stored_taxi(
    conn: AsyncConnection, ride: TaxiRide, hashes: list[bytes], last4: list[str]
) -> TaxiOutcome | None:
    """The stored decision for this record id, exactly as first made; None if new.

    A replay must be the same record: the same cards in the same order, times, places,
    vehicle and fare. Anything else under the same id is a conflict, never a new decision.
    """
    cur = await conn.execute(
        "SELECT policy_version, flags, vehicle_id, pickup_at, dropoff_at, pickup_lon,"
        " pickup_lat, dropoff_lon, dropoff_lat, meter_fare_yen FROM fare_taxi_rides"
        " WHERE operator_id = %s AND record_id = %s",
        [ride.operator_id, ride.record_id],
    )
    row = await cur.fetchone()
    if row is None:
        return None
    cur2 = await conn.execute(
        "SELECT position, subsidy_yen, reason, idm_hash FROM fare_taxi_riders"
        " WHERE operator_id = %s AND record_id = %s ORDER BY position",
        [ride.operator_id, ride.record_id],
    )
    stored = await cur2.fetchall()
    same = [bytes(r[3]) for r in stored] == hashes and tuple(row[2:10]) == (
        ride.vehicle_id,
        ride.pickup_at,
        ride.dropoff_at,
        ride.pickup_lon,
        ride.pickup_lat,
        ride.dropoff_lon,
        ride.dropoff_lat,
        ride.meter_fare_yen,
    )
    if not same:
        raise RecordConflictError(
            F_(
                "record {record} was already submitted with different contents",
                record=ride.record_id,
            )
        )
    flags = list(row[1])
    riders = [
        RiderOutcome(p, cards.mask(last4[p]), s, r, _public(r, flags)) for p, s, r, _ in stored
    ]
    return TaxiOutcome(ride.record_id, row[0], flags, riders, duplicate=True)


async def _road_m(ride: TaxiRide, road_distance: DistanceLookup | None) -> float | None:
    """The shortest road distance, computed in a worker thread: a path search on a city
    graph takes milliseconds of CPU that would otherwise stall every other request."""
    if road_distance is None:
        return None
    return await anyio.to_thread.run_sync(
        road_distance, ride.pickup_lon, ride.pickup_lat, ride.dropoff_lon, ride.dropoff_lat
    )


def _taxi_checks(
    ride: TaxiRide, day: date, book: PolicyBook, road_m: float | None
) -> tuple[MyTakuPolicy, list[str], bool, bool, bool]:
    """The policy in force and the ride-level rules: hours, city, plausibility flags."""
    policy = book.mytaku_at(day)
    within = in_hours(policy, ride.pickup_at.astimezone(JST).time())
    touches = inside_maebashi(ride.pickup_lon, ride.pickup_lat) or inside_maebashi(
        ride.dropoff_lon, ride.dropoff_lat
    )
    flags: list[str] = []
    if not within:
        flags.append("outside-hours")
    if not touches:
        flags.append("outside-city")
    dist = road_m
    if dist is None:
        dist = DETOUR_FACTOR * great_circle_m(
            ride.pickup_lon, ride.pickup_lat, ride.dropoff_lon, ride.dropoff_lat
        )
    if fare_far_from_expected(ride.meter_fare_yen, dist):
        flags.append("fare-far-from-distance")
    flags += ride_flags(ride.dropoff_at - ride.pickup_at, dist)
    plausible = not BLOCKING_FLAGS & set(flags)

    return policy, flags, within, touches, plausible


async def submit_taxi_ride(
    conn: AsyncConnection,
    key: bytes,
    ride: TaxiRide,
    book: PolicyBook,
    road_distance: DistanceLookup | None = None,
    *,
    now: datetime | None = None,
    window: timedelta | None = None,
) -> TaxiOutcome:
    """Decide and record each rider's MyTaku subsidy (idempotent per record id).

    ``window``: the submission window (None only for imports and simulations of history);
    ``now``: the submission time (default: the clock).
    """
    day = local_day(ride.pickup_at)
    fy = fiscal_year(day)
    hashes = [cards.idm_hash(key, i) for i in ride.rider_idms]
    last4 = [cards.normalise_idm(i)[-4:] for i in ride.rider_idms]
    road_m = await _road_m(ride, road_distance)  # before the transaction: no locks held
    async with conn.transaction():
        dup = await _stored_taxi(conn, ride, hashes, last4)
        if dup is not None:
            return dup
        _check_window(ride.pickup_at, (ride.dropoff_at,), now, window)
        policy, flags, within, touches, plausible = _taxi_checks(ride, day, book, road_m)
        period = await open_period(conn, day)
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
        if cur.rowcount == 0:  # a concurrent submission of the same record committed first
            dup = await _stored_taxi(conn, ride, hashes, last4)
            assert dup is not None
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
            policy,
            ride.meter_fare_yen,
            usages,
            within_hours=within,
            touches_city=touches,
            plausible=plausible,
        )
        outcome: list[RiderOutcome] = []
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
            outcome.append(
                RiderOutcome(
                    pos,
                    cards.mask(last4[pos]),
                    d.subsidy_yen,
                    d.reason.value,
                    _public(d.reason.value, flags),
                )
            )
    return TaxiOutcome(ride.record_id, policy.version, flags, outcome)


@dataclass(frozen=True)
class BusTap:
    """A bus tap as the operator reports it."""

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
    """The fare and discount the ledger recorded for one bus tap."""

    record_id: str
    policy_version: str
    fare_yen: int
    discount_yen: int
    discount: str | None
    flags: list[str] = field(default_factory=list)
    duplicate: bool = False

    @property
    def pay_yen(self) -> int:
        """What the rider paid: fare minus discount."""
        return self.fare_yen - self.discount_yen

    @property
    def public_reason(self) -> str:
        """What the operator is told: discounted or not, nothing about the holder."""
        return "subsidised" if self.discount_yen > 0 else "not-subsidised"


class FareUnknownError(LookupError):
    """The GTFS feed has no fare for this route and pair of stops."""


_TAP_COLS = "policy_version, fare_yen, discount_yen, discount, flags, idm_hash, route_id,"
_TAP_COLS += " origin_stop_id, dest_stop_id, tap_on_at, tap_off_at"


async def _stored_tap(conn: AsyncConnection, tap: BusTap, h: bytes) -> BusOutcome | None:
    """The stored outcome of this record id; a different tap under the same id conflicts."""
    cur = await conn.execute(
        f"SELECT {_TAP_COLS} FROM fare_bus_taps WHERE operator_id = %s AND record_id = %s",
        [tap.operator_id, tap.record_id],
    )
    row = await cur.fetchone()
    if row is None:
        return None
    if (bytes(row[5]), *row[6:11]) != (
        h,
        tap.route_id,
        tap.origin_stop_id,
        tap.dest_stop_id,
        tap.tap_on_at,
        tap.tap_off_at,
    ):
        raise RecordConflictError(
            F_(
                "record {record} was already submitted with different contents",
                record=tap.record_id,
            )
        )
    return BusOutcome(tap.record_id, row[0], row[1], row[2], row[3], list(row[4]), True)


async def submit_bus_tap(
    conn: AsyncConnection,
    key: bytes,
    tap: BusTap,
    book: PolicyBook,
    fare_lookup: FareLookup,
    *,
    now: datetime | None = None,
    window: timedelta | None = None,
) -> BusOutcome:
    """Compute the fare (GTFS zones) and the resident's discount; record it once.

    A tap on another card of the same resident within :data:`MULTI_CARD_WINDOW` of one
    already recorded is flagged ``cards-of-one-resident`` and gets no discount.
    """
    day = local_day(tap.tap_on_at)
    h = cards.idm_hash(key, tap.idm)
    async with conn.transaction():
        stored = await _stored_tap(conn, tap, h)
        if stored is not None:
            return stored
        _check_window(tap.tap_on_at, (tap.tap_off_at,), now, window)
        policy = book.bus_at(day)
        fare = await fare_lookup(conn, tap.route_id, tap.origin_stop_id, tap.dest_stop_id)
        if fare is None:
            raise FareUnknownError
        period = await open_period(conn, day)
        owners = await cards.residents_for_cards(conn, [h])
        rid = owners.get(h)
        age = None
        flags = ["tap-off-before-tap-on"] if tap.tap_off_at < tap.tap_on_at else []
        if rid is not None:
            # one resident's taps are decided one at a time, so parallel taps see each other
            await conn.execute(
                "SELECT 1 FROM fare_residents WHERE resident_id = %s FOR UPDATE", [rid]
            )
            birth = residents.birth_date_of((await residents.facts_of(conn, [rid]))[rid])
            age = age_on(birth, day) if birth else None
            cur = await conn.execute(
                "SELECT 1 FROM fare_bus_taps WHERE resident_id = %s AND idm_hash <> %s"
                " AND tap_on_at > %s AND tap_on_at < %s LIMIT 1",
                [rid, h, tap.tap_on_at - MULTI_CARD_WINDOW, tap.tap_on_at + MULTI_CARD_WINDOW],
            )
            if await cur.fetchone() is not None:
                flags.append("cards-of-one-resident")
                age = None  # one person cannot ride on two cards: no discount
        d = bus_discount(policy, tap.operator_id, tap.route_id, fare, age)
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
            stored = await _stored_tap(conn, tap, h)
            assert stored is not None
            return stored
        if rid is not None and d.discount_yen > 0:
            await conn.execute(
                "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id,"
                " kind, amount_yen, ride_at, service_day, fiscal_year, policy_version)"
                " VALUES (%s, %s, 'bus', %s, %s, 'bus_discount', %s, %s, %s, %s, %s)",
                [
                    period,
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
    conn: AsyncConnection,
    operator_id: str,
    source: str,
    record_id: str,
    note: str,
    *,
    now: datetime | None = None,
) -> list[int]:
    """Cancel every live entry of a record with reversal rows; returns the new entry ids.

    Reversals are posted in the first open period at or after the posting month, so a
    reversal of a ride in a closed month is an adjustment of the next open statement.
    """
    posted = local_day(now or datetime.now(UTC))
    async with conn.transaction():
        period = await open_period(conn, posted)
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
                " SELECT %s, operator_id, source, record_id, resident_id, 'reversal',"
                " -amount_yen, ride_at, service_day, fiscal_year, policy_version, entry_id, %s"
                " FROM fare_ledger WHERE entry_id = %s ON CONFLICT (reverses) DO NOTHING"
                " RETURNING entry_id",
                [period, note, entry_id],
            )
            row = await cur.fetchone()
            if row:
                new_ids.append(int(row[0]))
    return new_ids


@dataclass(frozen=True)
class SubsidyStatus:
    """A resident's subsidy standing this fiscal year, for ``GET /v1/me/subsidy``."""

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
  count(*) FILTER (WHERE kind = 'mytaku' AND amount_yen > 0 AND service_day = %(d)s
    AND NOT EXISTS (SELECT 1 FROM fare_ledger r WHERE r.reverses = l.entry_id)),
  count(*) FILTER (WHERE kind = 'mytaku' AND amount_yen > 0 AND NOT EXISTS
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
    """The resident's eligibility and what is left of this year's and month's subsidy."""
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
    """The resident's latest rides, newest first (their own data only)."""
    cur = await conn.execute(
        "SELECT entry_id, source, kind, amount_yen, ride_at, policy_version, reverses"
        " FROM fare_ledger WHERE resident_id = %s ORDER BY entry_id DESC LIMIT %s",
        [resident_id, limit],
    )
    cols = ["entry_id", "source", "kind", "amount_yen", "ride_at", "policy_version", "reverses"]
    return [dict(zip(cols, r, strict=True)) async for r in cur]
