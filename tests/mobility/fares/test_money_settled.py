"""Money that stays settled: the submission window, closed months stored byte for byte,
late records and reversals as adjustments of the next open month, plausibility flags, and
limits that cannot be reused by backdating (real PostgreSQL, real API app, real CLI)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.embedded import EmbeddedMosquitto
from mobility.fares import cards, ledger, residents, settlement
from mobility.fares.policy import load_policies
from mobility.fares.rules import JST, Fact, fiscal_year
from tests.conftest import TEST_PSEUDONYM_KEY, make_settings
from tests.support.credentials import OPERATOR, Credentials
from tests.support.wait import wait_until

KEY = TEST_PSEUDONYM_KEY.encode()
BOOK = load_policies()
WINDOW = timedelta(days=14)
STATION = (139.072877, 36.38373)
CHUO = (139.074485, 36.392176)
JULY, AUGUST = date(2026, 7, 1), date(2026, 8, 1)
OPS = ("taxi-akagi", "taxi-tone")
_n = iter(range(10**6))


def at(d: date, h: int, m: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, h, m, tzinfo=JST)


def taxi(op: str, record: str, when: datetime, idm: str, fare: int = 2000) -> ledger.TaxiRide:
    return ledger.TaxiRide(
        op, record, "v-1", when, when + timedelta(minutes=12), *STATION, *CHUO, fare, (idm,)
    )


async def new_resident(url: str, born: int = 1940) -> str:
    """An eligible resident with one linked card; returns the IDm."""
    idm = f"0DAE{next(_n):06X}BCDEF0"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("INSERT INTO fare_residents DEFAULT VALUES RETURNING resident_id")
        row = await cur.fetchone()
        assert row is not None
        await residents.record_fact(conn, row[0], Fact("birth_date", f"{born}-01-15"), "t")
        await cards.link_card(conn, KEY, row[0], idm, 3)
    return idm


async def submit(url: str, ride: ledger.TaxiRide, now: datetime) -> ledger.TaxiOutcome:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await ledger.submit_taxi_ride(conn, KEY, ride, BOOK, now=now, window=WINDOW)


async def reverse(url: str, op: str, record: str, now: datetime) -> list[int]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await ledger.reverse_record(conn, op, "taxi", record, "late fix", now=now)


def mebuku(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        MEBUKU_DATABASE_URL=url,
        MEBUKU_PSEUDONYM_KEY=TEST_PSEUDONYM_KEY,
        MEBUKU_LANG="ja",  # the default language of the CLI, whatever the machine's locale
    )
    return subprocess.run(
        [str(Path(sys.executable).parent / "mebuku"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def strict_client(
    db_url: str, mqtt_broker: EmbeddedMosquitto, jpki_files: tuple[Path, Path]
) -> Iterator[TestClient]:
    """The API with the default submission window (14 days)."""
    anchors, crl = jpki_files
    s = make_settings(db_url, mqtt_broker.url, jpki_trust_anchors=anchors, jpki_crl=crl)
    assert s.fares_submission_window_days == 14
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.anyio
async def test_closed_month_stays_byte_identical_and_late_records_adjust_the_next(
    db_url: str, tmp_path: Path, strict_client: TestClient, keys: Credentials
) -> None:
    a, b = await new_resident(db_url), await new_resident(db_url)
    end_of_july = at(date(2026, 7, 31), 20)
    for i, day in enumerate(range(20, 31)):
        op = OPS[i % 2]
        await submit(db_url, taxi(op, f"J-{day}", at(date(2026, 7, day), 10), a), end_of_july)
    await submit(db_url, taxi(OPS[0], "J-b", at(date(2026, 7, 25), 11), b, fare=1500), end_of_july)

    closed = mebuku(db_url, "settle", "--month", "2026-07", "--close", "--out", str(tmp_path))
    assert closed.returncode == 0, closed.stderr
    issued = {p.name: p.read_bytes() for p in tmp_path.glob("statement-*-2026-07.*")}
    assert len(issued) == 4
    with psycopg.connect(db_url) as conn:
        july_yen = conn.execute(
            "SELECT sum(amount_yen) FROM fare_ledger WHERE period = %s", [JULY]
        ).fetchone()
    assert july_yen is not None and july_yen[0] == 10 * 1000 + 750 + 1000  # 11 rides + b's

    # after closing: a late ride of 30 July (within the window) and a reversal of a July ride
    late = await submit(
        db_url, taxi(OPS[0], "J-late", at(date(2026, 7, 30), 15), b, 1200), at(AUGUST, 9)
    )
    assert late.subsidy_yen == 600
    assert await reverse(db_url, OPS[1], "J-21", at(date(2026, 8, 6), 9))
    await submit(db_url, taxi(OPS[0], "A-1", at(date(2026, 8, 3), 10), a), at(date(2026, 8, 3), 11))

    # the closed month is re-issued byte for byte, by the CLI and by the API
    again = tmp_path / "again"
    out = mebuku(db_url, "settle", "--month", "2026-07", "--out", str(again))
    assert out.returncode == 0, out.stderr
    assert "締め済み" in out.stderr  # month closed: stored statements, SHA-256 verified
    assert {p.name: p.read_bytes() for p in again.glob("statement-*")} == issued
    h = {"X-API-Key": keys.admin}
    for op in OPS:
        for fmt in ("csv", "json"):
            r = strict_client.get(f"/v1/operators/{op}/statements/2026-07?format={fmt}", headers=h)
            assert r.status_code == 200 and r.content == issued[f"statement-{op}-2026-07.{fmt}"]

    # nothing can be added to, changed in or reopened from the closed month
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RestrictViolation, match="closed"):
            conn.execute(
                "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id,"
                " kind, amount_yen, ride_at, service_day, fiscal_year, policy_version)"
                " SELECT period, operator_id, source, 'sneak', resident_id, kind, amount_yen,"
                " ride_at, service_day, fiscal_year, policy_version FROM fare_ledger"
                " WHERE period = %s LIMIT 1",
                [JULY],
            )
        for sql in (
            "DELETE FROM fare_closed_periods",
            "UPDATE fare_closed_statements SET body = 'x'",
            "TRUNCATE fare_closed_periods CASCADE",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation):
                conn.execute(sql)

    # August carries the adjustments, each naming the ride's original date, and reconciles
    aug = tmp_path / "aug"
    out = mebuku(db_url, "settle", "--month", "2026-08", "--out", str(aug))
    assert out.returncode == 0, out.stderr
    js = {op: json.loads((aug / f"statement-{op}-2026-08.json").read_bytes()) for op in OPS}
    adj = {
        (op, line["record_id"], line["kind"]): (line["adjusts_service_day"], line["amount_yen"])
        for op in OPS
        for line in js[op]["lines"]
    }
    assert adj == {
        (OPS[0], "J-late", "mytaku"): ("2026-07-30", 600),
        (OPS[0], "A-1", "mytaku"): (None, 1000),
        (OPS[1], "J-21", "reversal"): ("2026-07-21", -1000),
    }
    assert js[OPS[0]]["totals"]["adjustment_yen"] == 600
    assert js[OPS[0]]["totals"]["total_yen"] == 1600
    assert js[OPS[1]]["totals"]["total_yen"] == -1000
    csv_rows = (aug / f"statement-{OPS[0]}-2026-08.csv").read_bytes().decode("utf-8-sig")
    assert "2026-07-30\r\n" in csv_rows  # the adjustment column of the CSV
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT period, sum(amount_yen) FROM fare_ledger WHERE operator_id = ANY(%s)"
            " GROUP BY 1 ORDER BY 1",
            [list(OPS)],
        ).fetchall()
    assert rows == [(JULY, july_yen[0]), (AUGUST, 600)]
    # what the city pays over both months equals every subsidy minus every reversal
    july_paid = sum(
        json.loads(issued[f"statement-{op}-2026-07.json"])["totals"]["total_yen"] for op in OPS
    )
    assert july_paid + 1600 - 1000 == july_yen[0] + 600


def test_closing_refuses_an_unfinished_month_and_is_idempotent(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEBUKU_LANG", "en")  # the refusal speaks the process language
    now = datetime.now(UTC)
    this_month = now.astimezone(JST).date().replace(day=1)
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(settlement.PeriodError, match="has not ended"):
            settlement.close_month(conn, this_month, "test", now)
        first = settlement.close_month(conn, date(2025, 1, 1), "test", now)
        second = settlement.close_month(conn, date(2025, 1, 1), "test", now)
        assert first == second == []
        assert conn.execute(
            "SELECT count(*) FROM fare_closed_periods WHERE period = '2025-01-01'"
        ).fetchone() == (1,)


@pytest.mark.anyio
async def test_the_annual_limit_cannot_be_reused_by_backdating(db_url: str) -> None:
    idm = await new_resident(db_url)
    now = at(date(2026, 6, 10), 12)
    with psycopg.connect(db_url, autocommit=True) as conn:
        (rid,) = conn.execute(
            "SELECT resident_id FROM fare_ic_cards WHERE idm_hash = %s",
            [cards.idm_hash(KEY, idm)],
        ).fetchone() or (None,)
        for i in range(70):  # fiscal year 2026 used up by 10 June
            day = date(2026, 4, 1) + timedelta(days=i // 2)
            conn.execute(
                "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id,"
                " kind, amount_yen, ride_at, service_day, fiscal_year, policy_version)"
                " VALUES (%s, 'seed', 'taxi', %s, %s, 'mytaku', 500, %s, %s, %s, 'seed')",
                [day.replace(day=1), f"fy-{i}", rid, at(day, 10), day, fiscal_year(day)],
            )
    today = await submit(db_url, taxi(OPS[0], "L-now", at(date(2026, 6, 10), 10), idm), now)
    assert today.subsidy_yen == 0 and today.riders[0].reason == "annual-limit"
    for when in (at(date(2026, 3, 20), 10), at(date(2019, 7, 1), 10), at(date(2016, 2, 1), 10)):
        with pytest.raises(ledger.OutsideWindowError) as e:
            await submit(db_url, taxi(OPS[0], f"L-{when:%Y%m%d}", when, idm), now)
        assert e.value.violation.rule == "submission-window"
    with psycopg.connect(db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM fare_taxi_rides WHERE record_id LIKE 'L-2%%'"
        ).fetchone() == (0,)


@pytest.mark.anyio
async def test_records_outside_the_window_are_refused_with_422(
    strict_client: TestClient, keys: Credentials, db_url: str
) -> None:
    idm = await new_resident(db_url)
    h = {"X-API-Key": keys.operator}
    url = f"/v1/operators/{OPERATOR}/taxi-rides"
    now = datetime.now(JST).replace(microsecond=0)

    def body(record: str, pickup: datetime, minutes: int = 12) -> dict[str, object]:
        return {
            "record_id": record,
            "vehicle_id": "taxi-1",
            "pickup_at": pickup.isoformat(),
            "dropoff_at": (pickup + timedelta(minutes=minutes)).isoformat(),
            "pickup": {"lon": STATION[0], "lat": STATION[1]},
            "dropoff": {"lon": CHUO[0], "lat": CHUO[1]},
            "meter_fare_yen": 1500,
            "rider_cards": [idm],
        }

    cases = {
        "W-2016": (datetime(2016, 2, 1, 10, tzinfo=JST), "submission-window"),
        "W-2019": (datetime(2019, 7, 1, 10, tzinfo=JST), "submission-window"),
        "W-15d": (now - timedelta(days=15), "submission-window"),
        "W-2099": (datetime(2099, 1, 5, 10, tzinfo=JST), "no-future-records"),
        "W-1h": (now + timedelta(hours=1), "no-future-records"),
    }
    for record, (pickup, rule) in cases.items():
        r = strict_client.post(url, json=body(record, pickup), headers=h)
        assert r.status_code == 422, (record, r.text)
        p = r.json()
        assert p["type"].endswith("outside-submission-window") and p["rule"] == rule
    # a drop-off more than 5 minutes in the future is refused too
    r = strict_client.post(url, json=body("W-drop", now - timedelta(minutes=5), 60), headers=h)
    assert r.status_code == 422 and r.json()["rule"] == "no-future-records"
    tap = {
        "record_id": "W-bus",
        "route_id": "R1",
        "origin_stop_id": "a",
        "destination_stop_id": "b",
        "tap_on_at": "2019-07-01T10:00:00+09:00",
        "tap_off_at": "2019-07-01T10:20:00+09:00",
        "card": idm,
    }
    r = strict_client.post(f"/v1/operators/{OPERATOR}/bus-taps", json=tap, headers=h)
    assert r.status_code == 422 and r.json()["rule"] == "submission-window"
    with psycopg.connect(db_url) as conn:
        stored = conn.execute(
            "SELECT (SELECT count(*) FROM fare_taxi_rides WHERE record_id LIKE 'W-%%'),"
            " (SELECT count(*) FROM fare_bus_taps WHERE record_id LIKE 'W-%%')"
        ).fetchone()
    assert stored == (0, 0)
    # within the window (13 days ago, in hours) the ride is accepted
    ok_day = (now - timedelta(days=13)).date()
    r = strict_client.post(url, json=body("W-ok", at(ok_day, 10)), headers=h)
    assert r.status_code == 200, r.text


@pytest.mark.anyio
async def test_long_rides_and_impossible_speeds_are_flagged_and_not_subsidised(db_url: str) -> None:
    idm = await new_resident(db_url)
    pickup = at(date(2026, 9, 1), 10)
    month = ledger.TaxiRide(
        OPS[0], "P-30d", "v", pickup, pickup + timedelta(days=30), *STATION, *CHUO, 1500, (idm,)
    )
    # a drop-off 30 days later is refused whenever it is sent: before the drop-off it lies in
    # the future, after it the pickup is older than the window
    for now in (pickup + timedelta(hours=1), pickup + timedelta(days=30, minutes=1)):
        with pytest.raises(ledger.OutsideWindowError):
            await submit(db_url, month, now)
    long = ledger.TaxiRide(
        OPS[0], "P-long", "v", pickup, pickup + timedelta(hours=5), *STATION, *CHUO, 1500, (idm,)
    )
    out = await submit(db_url, long, pickup + timedelta(hours=5, minutes=1))
    assert "long-ride" in out.flags and out.subsidy_yen == 0
    assert out.riders[0].reason == "implausible-ride"
    assert out.riders[0].public_reason == "flagged-for-review"
    # Maebashi station to Takasaki station (about 9 km) in 2 minutes
    fast = ledger.TaxiRide(
        OPS[0],
        "P-fast",
        "v",
        pickup,
        pickup + timedelta(minutes=2),
        *STATION,
        139.0126,
        36.3228,
        3500,
        (idm,),
    )
    out = await submit(db_url, fast, pickup + timedelta(minutes=3))
    assert "impossible-speed" in out.flags and out.subsidy_yen == 0
    later = pickup + timedelta(hours=6)  # after the long ride, within MyTaku hours
    ok = await submit(db_url, taxi(OPS[0], "P-ok", later, idm), later + timedelta(hours=1))
    assert ok.flags == [] and ok.subsidy_yen == 1000


@pytest.mark.anyio
async def test_closing_waits_for_an_entry_in_flight(db_url: str) -> None:
    """A ledger writer that decided its period before the close commits first, and its
    entry is in the closed statement; a writer after the close goes to the next month."""
    import threading

    idm = await new_resident(db_url)
    month = date(2026, 5, 1)
    ride = taxi(OPS[0], "C-1", at(date(2026, 5, 29), 10), idm)
    closed: list[list[settlement.StoredStatement]] = []

    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        # the submission's transaction, paused after it decided the period
        assert await ledger.open_period(conn, month) == month

        def close() -> None:
            with psycopg.connect(db_url, autocommit=True) as c:
                closed.append(settlement.close_month(c, month, "t", datetime.now(UTC)))

        closer = threading.Thread(target=close)
        closer.start()
        with psycopg.connect(db_url, autocommit=True) as watch:

            def close_waits() -> bool:  # the close is queued behind our shared period lock
                row = watch.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()
                return bool(row and row[0] > 0)

            waited = await asyncio.to_thread(wait_until, close_waits, 30, 0.05)
            assert waited, "close never waited"
        assert not closed
        await conn.execute(
            "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id,"
            " kind, amount_yen, ride_at, service_day, fiscal_year, policy_version)"
            " SELECT %s, %s, 'taxi', 'C-0', resident_id, 'mytaku', 700, %s, %s, 2026, 'x'"
            " FROM fare_residents LIMIT 1",
            [month, OPS[0], at(date(2026, 5, 28), 10), date(2026, 5, 28)],
        )
        await conn.commit()
        await asyncio.to_thread(closer.join, 60)
    (stored,) = [st for st in closed[0] if st.operator_id == OPS[0]]
    assert stored.total_yen == 700 and b'"record_id":"C-0"' in stored.json
    late = await submit(db_url, ride, at(date(2026, 6, 2), 9))
    assert late.subsidy_yen == 1000
    with psycopg.connect(db_url) as check:
        assert check.execute(
            "SELECT period FROM fare_ledger WHERE record_id = 'C-1'"
        ).fetchone() == (date(2026, 6, 1),)
