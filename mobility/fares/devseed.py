"""Demo residents (development only): a few dozen residents with facts, linked IC cards and
a month of bus taps and MyTaku taxi rides, recorded through the same functions the API
uses (sign-in enrolment, fact records, card links, the ledger), so statements, subsidy
status and Grafana show believable numbers at once.

Each record is submitted ten minutes after its ride ends, inside the submission window,
exactly as an operator's system would have sent it. Everything is deterministic for a
given seed, and seeding a database that already holds demo residents does nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cryptography import x509
from psycopg import AsyncConnection

from mobility.fares import cards, ledger, residents
from mobility.fares.devcard import DevCA, issue_card
from mobility.fares.identity import certificate_hash
from mobility.fares.policy import load_policies
from mobility.fares.rules import JST, Fact, local_day

BUS_OPERATOR = "gunmachuo"
TAXI_OPERATOR = "demo-taxi"
# Routes of the bundled feed that run inside Maebashi (新前橋駅 - 中央前橋駅).
BUS_ROUTES = ("新前橋駅西口線_A", "新前橋駅西口線_B")
# Places inside Maebashi for taxi pick-ups and drop-offs (lon, lat).
PLACES = (
    (139.0634, 36.3895),  # 前橋駅
    (139.0608, 36.3911),  # 前橋市役所
    (139.0743, 36.3922),  # 中央前橋駅
    (139.1086, 36.4050),  # 群馬大学医学部附属病院 area
    (139.0469, 36.3827),  # 新前橋
    (139.1270, 36.3712),  # 前橋赤十字病院 area
    (139.0911, 36.4155),  # 荒牧
)
RECORDED_BY = "demo-seed"
TOKEN_RESIDENT = "resident-01"  # the demo prints a session token for this one


@dataclass(frozen=True)
class Profile:
    """One demo resident: card name, birth date, licence, and what they ride."""

    name: str
    birth: date
    licence: str
    idm: str
    bus_per_week: int
    taxi_per_week: int


def profiles(today: date, count: int = 36, seed: int = 13) -> list[Profile]:
    """Residents of every age the rules care about: youths (13-22, bus discount), adults,
    65-74 without a licence and 75+ (MyTaku), 70+ (senior bus discount)."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        band = i % 6
        # resident-01 is 78 and has surrendered the licence: both subsidies apply.
        age = (78, 16, 45, 72, 81, 20)[band] + rnd.randint(0, 3)
        licence = ("surrendered", "none", "held", "none", "lapsed", "held")[band]
        birth = date(today.year - age, rnd.randint(1, 12), rnd.randint(1, 28))
        taxi = 2 if band in (0, 3, 4) else 0
        bus = (3, 8, 4, 2, 1, 6)[band]
        idm = f"01{seed:02X}{i:04X}{rnd.getrandbits(32):08X}"
        out.append(Profile(f"resident-{i + 1:02d}", birth, licence, idm, bus, taxi))
    return out


async def already_seeded(conn: AsyncConnection) -> bool:
    """Whether the demo residents exist already, so seeding runs once per database."""
    cur = await conn.execute(
        "SELECT 1 FROM fare_eligibility_facts WHERE recorded_by = %s LIMIT 1", [RECORDED_BY]
    )
    return await cur.fetchone() is not None


async def _bus_trips(conn: AsyncConnection) -> list[tuple[str, str, str]]:
    """(route, origin stop, destination stop) with a fare in the current feed."""
    cur = await conn.execute(
        "SELECT r.route_id, o.stop_id, d.stop_id FROM gtfs_fare_rules r"
        " JOIN gtfs_feed_versions v ON v.id = r.feed_version AND v.is_current"
        " JOIN gtfs_stops o ON o.feed_version = r.feed_version AND o.zone_id = r.origin_id"
        " JOIN gtfs_stops d ON d.feed_version = r.feed_version AND d.zone_id = r.destination_id"
        " WHERE r.route_id = ANY(%s) ORDER BY 1, 2, 3 LIMIT 400",
        [list(BUS_ROUTES)],
    )
    return [(str(a), str(b), str(c)) for a, b, c in await cur.fetchall()]


@dataclass
class SeedReport:
    """How many residents, cards and rides the seeding created."""

    residents: int = 0
    cards: int = 0
    bus_taps: int = 0
    bus_discounted: int = 0
    taxi_rides: int = 0
    taxi_subsidised: int = 0


def _at(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), JST).astimezone(UTC)


async def seed_residents(
    conn: AsyncConnection,
    key: bytes,
    ca: DevCA,
    *,
    days: int = 30,
    window: timedelta,
    now: datetime | None = None,
    count: int = 36,
) -> SeedReport | None:
    """Seed once; None when the database already holds the demo residents."""
    from mobility.gtfs.fares import zone_fare_async

    if await already_seeded(conn):
        return None
    now = now or datetime.now(UTC)
    today = local_day(now)
    book = load_policies()
    trips = await _bus_trips(conn)
    rnd = random.Random(1313)
    rep = SeedReport()
    for p in profiles(today, count):
        cert = x509.load_pem_x509_certificate(issue_card(ca, p.name).read_bytes())
        h = certificate_hash(key, cert)
        rid, _ = await residents.sign_in_resident(conn, h, cert.not_valid_after_utc)
        await residents.record_fact(
            conn, rid, Fact("birth_date", p.birth.isoformat()), RECORDED_BY, "demo resident"
        )
        await residents.record_fact(
            conn, rid, Fact("driving_licence", p.licence), RECORDED_BY, "demo resident"
        )
        await cards.link_card(conn, key, rid, p.idm, book.max_active_cards_at(today))
        rep.residents += 1
        rep.cards += 1
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            week_share = rnd.random() * 7
            if trips and week_share < p.bus_per_week:
                route, o, d = rnd.choice(trips)
                on = _at(day, rnd.choice((7, 8, 9, 11, 14, 16, 17)), rnd.randint(0, 59))
                off = on + timedelta(minutes=rnd.randint(6, 25))
                tap = ledger.BusTap(
                    BUS_OPERATOR, f"{p.name}-bus-{day:%Y%m%d}", route, o, d, on, off, p.idm
                )
                out = await ledger.submit_bus_tap(
                    conn,
                    key,
                    tap,
                    book,
                    zone_fare_async,
                    now=off + timedelta(minutes=10),
                    window=window,
                )
                rep.bus_taps += 1
                rep.bus_discounted += out.discount_yen > 0
            if rnd.random() * 7 < p.taxi_per_week:
                (plon, plat), (dlon, dlat) = rnd.sample(PLACES, 2)
                pick = _at(day, rnd.randint(8, 16), rnd.randint(0, 59))
                drop = pick + timedelta(minutes=rnd.randint(8, 22))
                ride = ledger.TaxiRide(
                    TAXI_OPERATOR,
                    f"{p.name}-taxi-{day:%Y%m%d}",
                    f"taxi-{rnd.randint(1, 12):02d}",
                    pick,
                    drop,
                    plon,
                    plat,
                    dlon,
                    dlat,
                    rnd.randrange(1200, 3200, 10),
                    (p.idm,),
                )
                taxi = await ledger.submit_taxi_ride(
                    conn, key, ride, book, now=drop + timedelta(minutes=10), window=window
                )
                rep.taxi_rides += 1
                rep.taxi_subsidised += any(r.subsidy_yen > 0 for r in taxi.riders)
    return rep
