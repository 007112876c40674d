"""Limits hold when submissions race: real concurrent transactions on real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.roles import role_url
from mobility.fares import cards, ledger, residents
from mobility.fares.policy import load_policies
from mobility.fares.rules import JST, Fact
from tests.conftest import TEST_PSEUDONYM_KEY

KEY = TEST_PSEUDONYM_KEY.encode()
BOOK = load_policies()
STATION = (139.072877, 36.38373)
CHUO = (139.074485, 36.392176)
_counter = iter(range(10**9))


async def new_resident(url: str, born: int = 1940) -> tuple[int, str]:
    """An eligible resident with a linked card; returns (resident id, IDm)."""
    n = next(_counter)
    idm = f"0A0B{n:012X}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("INSERT INTO fare_residents DEFAULT VALUES RETURNING resident_id")
        row = await cur.fetchone()
        assert row is not None
        rid = int(row[0])
        await residents.record_fact(conn, rid, Fact("birth_date", f"{born}-01-15"), "test")
        await cards.link_card(conn, KEY, rid, idm, 3)
    return rid, idm


async def seed_rides(url: str, rid: int, n: int, day: date) -> None:
    """``n`` earlier subsidised rides in ``day``'s fiscal year (on other days)."""
    from mobility.fares.rules import fiscal_year

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for i in range(n):
            await conn.execute(
                "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id,"
                " kind, amount_yen, ride_at, service_day, fiscal_year, policy_version)"
                " VALUES (%s, 'seed', 'taxi', %s, %s, 'mytaku', 100, %s, %s, %s, 'seed')",
                [
                    day.replace(day=1),
                    f"seed-{rid}-{i}",
                    rid,
                    datetime(2000, 1, 1, tzinfo=JST),
                    date(2000, 1, 1),
                    fiscal_year(day),
                ],
            )


def taxi(record: str, when: datetime, idms: list[str], fare: int = 2000) -> ledger.TaxiRide:
    return ledger.TaxiRide(
        "race-taxi",
        record,
        f"v-{record}",
        when,
        when + timedelta(minutes=10),
        *STATION,
        *CHUO,
        fare,
        tuple(idms),
    )


async def race(url: str, rides: list[ledger.TaxiRide]) -> list[ledger.TaxiOutcome]:
    # As deployed: the API's own role (no UPDATE/DELETE on the ledger, core/roles).
    api_url = role_url(url, "api")
    conns = [await psycopg.AsyncConnection.connect(api_url, autocommit=True) for _ in rides]
    try:
        # Every submission starts only once all of them are ready: a real barrier.
        start = asyncio.Barrier(len(rides))

        async def one(conn: psycopg.AsyncConnection, r: ledger.TaxiRide) -> ledger.TaxiOutcome:
            await start.wait()
            return await ledger.submit_taxi_ride(conn, KEY, r, BOOK)

        return list(await asyncio.gather(*(one(c, r) for c, r in zip(conns, rides, strict=True))))
    finally:
        for c in conns:
            await c.close()


def at(d: date, h: int, m: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, h, m, tzinfo=JST)


@pytest.mark.anyio
async def test_two_concurrent_at_the_daily_limit_only_one_is_subsidised(db_url: str) -> None:
    day = date(2026, 6, 10)
    for trial in range(8):
        _rid, idm = await new_resident(db_url)
        first = await race(db_url, [taxi(f"d{trial}-0", at(day, 8), [idm])])
        assert first[0].subsidy_yen == 1000
        out = await race(
            db_url,
            [taxi(f"d{trial}-1", at(day, 9), [idm]), taxi(f"d{trial}-2", at(day, 10), [idm])],
        )
        reasons = sorted(o.riders[0].reason for o in out)
        assert reasons == ["daily-limit", "subsidised"], reasons


@pytest.mark.anyio
async def test_concurrent_duplicates_record_once(db_url: str) -> None:
    _rid, idm = await new_resident(db_url)
    out = await race(db_url, [taxi("dup-1", at(date(2026, 6, 11), 9), [idm])] * 4)
    assert sorted(o.duplicate for o in out) == [False, True, True, True]
    assert {o.subsidy_yen for o in out} == {1000}
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM fare_ledger WHERE record_id = 'dup-1'")
        assert await cur.fetchone() == (1,)


@pytest.mark.slow
@pytest.mark.anyio
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(left=st.integers(0, 3), racers=st.integers(1, 5), shared=st.booleans())
async def test_annual_limit_under_concurrency(
    db_url: str, left: int, racers: int, shared: bool
) -> None:
    """With ``left`` rides left this fiscal year, ``racers`` concurrent rides on different
    days (some shared with a partner) subsidise exactly min(left, racers)."""

    day = date(2026, 9, 1)
    rid, idm = await new_resident(db_url)
    await seed_rides(db_url, rid, 70 - left, day)
    partner = (await new_resident(db_url))[1] if shared else None
    tag = next(_counter)
    rides = [
        taxi(f"y{tag}-{i}", at(day + timedelta(days=i), 10), [idm, partner] if partner else [idm])
        for i in range(racers)
    ]
    out = await race(db_url, rides)
    mine = [o.riders[0] for o in out]
    assert sum(r.reason == "subsidised" for r in mine) == min(left, racers)
    assert all(r.reason in ("subsidised", "annual-limit") for r in mine)
    for o in out:
        assert o.subsidy_yen <= 2000
        cap = 500 if partner and o.riders[0].reason == "subsidised" else 1000
        assert o.riders[0].subsidy_yen <= cap


@pytest.mark.anyio
async def test_fiscal_year_boundary_on_the_database(db_url: str) -> None:
    """70 rides in FY2025: refused on 31 March, subsidised on 1 April (even raced)."""

    rid, idm = await new_resident(db_url)
    await seed_rides(db_url, rid, 70, date(2026, 3, 1))
    out = await race(
        db_url,
        [
            taxi("fy-a", at(date(2026, 3, 31), 18), [idm]),
            taxi("fy-b", at(date(2026, 4, 1), 7, 5), [idm]),
        ],
    )
    assert [o.riders[0].reason for o in out] == ["annual-limit", "subsidised"]
    # 07:30 on 1 April in Japan is still 31 March in UTC: counts in the new year
    rid2, idm2 = await new_resident(db_url)
    await seed_rides(db_url, rid2, 70, date(2026, 3, 1))
    utc_ts = datetime.fromisoformat("2026-03-31T22:30:00+00:00")  # 07:30 JST on 1 April
    (o,) = await race(db_url, [taxi("fy-c", utc_ts, [idm2])])
    assert o.riders[0].reason == "subsidised"
