"""``residents.facts_of``: one resident's facts (a plain parameter) are exactly what the
several-residents query (an array) gives for them, in recording order."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from mobility.fares import residents
from mobility.fares.rules import Fact


@pytest.mark.anyio
async def test_one_resident_reads_what_several_read(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        rids = []
        for _ in range(3):
            cur = await conn.execute(
                "INSERT INTO fare_residents DEFAULT VALUES RETURNING resident_id"
            )
            row = await cur.fetchone()
            assert row is not None
            rids.append(int(row[0]))
        a, b, c = rids
        recorded = {
            a: [
                Fact("birth_date", "1940-01-15"),
                Fact("license_returned", "true", date(2025, 4, 1), None),
                Fact("birth_date", "1941-01-15"),  # a correction, recorded later
            ],
            b: [Fact("birth_date", "1950-06-30", None, date(2030, 3, 31))],
            c: [],
        }
        for rid in (b, a):  # interleaved with another resident's
            for fact in recorded[rid]:
                await residents.record_fact(conn, rid, fact, "test")
        several = await residents.facts_of(conn, rids)
        assert several == recorded
        for rid in rids:
            assert await residents.facts_of(conn, [rid]) == {rid: recorded[rid]}
        assert await residents.facts_of(conn, [a, a]) == {a: recorded[a]}
        assert await residents.facts_of(conn, []) == {}
