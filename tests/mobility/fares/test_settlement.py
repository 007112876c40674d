"""A simulated month: thousands of residents ride, some rides are reversed, and
``mebuku settle`` produces statements that match both the ledger and an independent replay
of the rules, to the yen."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from mobility.fares import cards, ledger
from mobility.fares.policy import load_policies
from mobility.fares.rules import JST, Reason, RiderUsage, taxi_subsidies
from tests.conftest import TEST_PSEUDONYM_KEY

KEY = TEST_PSEUDONYM_KEY.encode()
BOOK = load_policies()
RESIDENTS = 2000
RIDES = 3000
MONTH = date(2026, 7, 1)
OPERATORS = ("taxi-akagi", "taxi-hirose", "taxi-tone")
STATION = (139.072877, 36.38373)
CHUO = (139.074485, 36.392176)


def make_residents(url: str) -> list[str]:
    """RESIDENTS eligible residents (born 1930-1950) with one card each; returns the IDms."""
    idms = [f"0C0D{i:012X}" for i in range(RESIDENTS)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO fare_residents SELECT FROM generate_series(1, %s) RETURNING resident_id",
            [RESIDENTS],
        )
        rids = [r[0] for r in cur.fetchall()]
        cur.executemany(
            "INSERT INTO fare_eligibility_facts (resident_id, kind, value, recorded_by)"
            " VALUES (%s, 'birth_date', %s, 'sim')",
            [(rid, f"{1930 + rid % 20}-05-05") for rid in rids],
        )
        cur.executemany(
            "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, %s, %s)",
            [
                (cards.idm_hash(KEY, idm), idm[-4:], rid)
                for idm, rid in zip(idms, rids, strict=True)
            ],
        )
    return idms


def plan(idms: list[str]) -> list[ledger.TaxiRide]:
    rng = random.Random(7)
    rides = []
    for i in range(RIDES):
        day = MONTH + timedelta(days=rng.randrange(31))
        when = datetime(
            day.year, day.month, day.day, rng.randrange(6, 20), rng.randrange(60), tzinfo=JST
        )
        # a small pool of frequent riders so the daily limit bites
        party = [rng.choice(idms[:40]) if rng.random() < 0.3 else rng.choice(idms)]
        if rng.random() < 0.15:
            party.append(rng.choice(idms))
        rides.append(
            ledger.TaxiRide(
                rng.choice(OPERATORS),
                f"sim-{i}",
                f"v{i % 50}",
                when,
                when + timedelta(minutes=12),
                *STATION,
                *CHUO,
                rng.randrange(700, 4500),
                tuple(party),
            )
        )
    return rides


def replay(rides: list[ledger.TaxiRide]) -> Counter[str]:
    """Expected yen per operator from the pure rules, counting usage independently."""
    per_day: Counter[tuple[str, date]] = Counter()
    expected: Counter[str] = Counter()
    p = BOOK.mytaku_at(MONTH)
    for r in rides:
        day = r.pickup_at.astimezone(JST).date()
        seen: set[str] = set()
        usages = []
        for idm in r.rider_idms:
            usages.append(RiderUsage(True, True, idm in seen, per_day[idm, day], 0))
            seen.add(idm)
        hours = p.hours_start <= r.pickup_at.astimezone(JST).time() < p.hours_end
        for idm, d in zip(
            r.rider_idms,
            taxi_subsidies(p, r.meter_fare_yen, usages, within_hours=hours),
            strict=True,
        ):
            if d.reason is Reason.SUBSIDISED:
                per_day[idm, day] += 1
                expected[r.operator_id] += d.subsidy_yen
    return expected


@pytest.mark.anyio
async def test_simulated_month_settles_and_reconciles(db_url: str, tmp_path: Path) -> None:
    idms = make_residents(db_url)
    rides = plan(idms)

    async def submit_all() -> int:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            total = 0
            for r in rides:
                total += (await ledger.submit_taxi_ride(conn, KEY, r, BOOK)).subsidy_yen
            # operators correct a few records: reversals
            for r in rides[:25]:
                await ledger.reverse_record(conn, r.operator_id, "taxi", r.record_id, "sim")
            return total

    submitted = await submit_all()
    expected = replay(rides)
    assert submitted == sum(expected.values())

    env = dict(os.environ, MEBUKU_DATABASE_URL=db_url, MEBUKU_PSEUDONYM_KEY=TEST_PSEUDONYM_KEY)
    mebuku = Path(sys.executable).parent / "mebuku"
    out = subprocess.run(
        [str(mebuku), "settle", "--month", "2026-07", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    with psycopg.connect(db_url) as conn:
        ledger_rows: dict[str, int] = dict(
            conn.execute(
                "SELECT operator_id, sum(amount_yen) FROM fare_ledger WHERE period = %s GROUP BY 1",
                [MONTH],
            ).fetchall()
        )
        reversed_yen: dict[str, int] = dict(
            conn.execute(
                "SELECT operator_id, -sum(amount_yen) FROM fare_ledger WHERE kind = 'reversal'"
                " GROUP BY 1"
            ).fetchall()
        )
    assert set(ledger_rows) == set(OPERATORS)
    for op in OPERATORS:
        js = json.loads((tmp_path / f"statement-{op}-2026-07.json").read_text(encoding="utf-8"))
        assert js["totals"]["total_yen"] == ledger_rows[op] == expected[op]
        assert js["totals"]["mytaku_yen"] == expected[op]
        raw = (tmp_path / f"statement-{op}-2026-07.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
        assert int(rows[-1][1]) == expected[op]
        assert sum(int(r[6]) for r in rows[2:-5]) == expected[op]
    # reversals were posted this month (Japan time), and settle there
    now_month = f"{datetime.now(JST):%Y-%m}"
    out = subprocess.run(
        [str(mebuku), "settle", "--month", now_month, "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    for op, yen in reversed_yen.items():
        js = json.loads((tmp_path / f"statement-{op}-{now_month}.json").read_text("utf-8"))
        assert js["totals"]["reversal_yen"] == -yen
