"""Reconciliation helpers: what should be in the database after a set of messages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingest.parse import parse_message
from ingest.rows import TABLES, Reject
from ingest.simulate.messages import SimMessage
from tests.support.wait import wait_until as wait_until  # the ingest tests import it here


@dataclass
class Expected:
    keys: dict[str, set[tuple[Any, ...]]] = field(
        default_factory=lambda: {t: set() for t in TABLES}
    )
    rejects: set[tuple[str, bytes]] = field(default_factory=set)
    sent: int = 0
    distinct: int = 0

    @property
    def rows(self) -> Counter[str]:
        return Counter({t: len(k) for t, k in self.keys.items()})


def expected(msgs: Iterable[SimMessage], now: datetime | None = None) -> Expected:
    """Keys each table must hold and the distinct rejects, computed by the pure parser."""
    now = now or datetime.now(UTC)
    e = Expected()
    seen: set[tuple[str, bytes]] = set()
    for m in msgs:
        e.sent += 1
        if (m.topic, m.payload) in seen:
            continue
        seen.add((m.topic, m.payload))
        r = parse_message(m.topic, m.payload, now)
        if isinstance(r, Reject):
            e.rejects.add((m.topic, m.payload))
            continue
        idx = [r.table.columns.index(c) for c in r.table.key]
        for row in r.rows:
            e.keys[r.table.name].add(tuple(row[i] for i in idx))
    e.distinct = len(seen)
    return e


def counts(url: str) -> Counter[str]:
    c: Counter[str] = Counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for t in (*TABLES, "ingest_rejects"):
            c[t] = conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
    return c


def stored_keys(url: str, table: str) -> set[tuple[Any, ...]]:
    spec = TABLES[table]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(f"SELECT {', '.join(spec.key)} FROM {table}").fetchall()
    return {tuple(r) for r in rows}


def reconciled(url: str, exp: Expected) -> bool:
    c = counts(url)
    return all(c[t] == n for t, n in exp.rows.items()) and c["ingest_rejects"] == len(exp.rejects)


def assert_reconciled(url: str, exp: Expected) -> None:
    c = counts(url)
    assert {t: c[t] for t in TABLES} == {t: exp.rows[t] for t in TABLES}
    assert c["ingest_rejects"] == len(exp.rejects)
    for t in TABLES:
        assert stored_keys(url, t) == exp.keys[t], t
    with psycopg.connect(url, autocommit=True) as conn:
        got = set(conn.execute("SELECT topic, payload FROM ingest_rejects").fetchall())
    assert got == exp.rejects
