"""Idempotent batch writes: COPY into temp staging tables, INSERT ... ON CONFLICT DO NOTHING.

One transaction per batch holds the rows of every table plus the batch's reject rows, so
a batch is either wholly committed (then acknowledged) or not at all (then redelivered).
Database errors are classified: temporary ones propagate to the caller, which retries
the same batch after reconnecting; permanent ones (bad data that passed the parser) make
the batch split in halves until the offending message is alone and goes to
``ingest_rejects``.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

from ingest.rows import TABLES, Parsed, Reject, Rows, TableSpec

# SQLSTATE classes that mean "this data can never be stored": data exception (22) and
# integrity constraint violation (23). Everything else (connection loss 08, admin
# shutdown 57, resources 53, serialization 40, missing tables 42 before migration...) is
# worth retrying: the messages stay unacknowledged meanwhile.
PERMANENT_CLASSES = frozenset({"22", "23"})


@dataclass(frozen=True)
class Item:
    """One message on its way to the database."""

    topic: str
    payload: bytes
    parsed: Parsed


@dataclass
class WriteResult:
    inserted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    splits: int = 0

    def add(self, other: WriteResult) -> None:
        self.inserted.update(other.inserted)
        self.duplicates.update(other.duplicates)
        self.rejects.update(other.rejects)
        self.splits += other.splits


def classify(exc: BaseException) -> Literal["retry", "split"]:
    """Temporary database trouble -> "retry"; data the database refuses -> "split"."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if state[:2] in PERMANENT_CLASSES:
            return "split"
    return "retry"


def _stage(t: TableSpec) -> str:
    return f"_stage_{t.name}"


def prepare(conn: psycopg.Connection) -> None:
    """Create this session's staging tables (emptied at each commit)."""
    with conn.transaction():
        for t in TABLES.values():
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                    "ON COMMIT DELETE ROWS"
                ).format(sql.Identifier(_stage(t)), sql.Identifier(t.name))
            )
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _stage_rejects (topic text, payload bytea, "
            "payload_sha256 bytea, reason text) ON COMMIT DELETE ROWS"
        )


def _copy_insert(cur: psycopg.Cursor[Any], t: TableSpec, rows: list[tuple[Any, ...]]) -> int:
    cols = sql.SQL(", ").join(map(sql.Identifier, t.columns))
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(_stage(t)), cols)) as cp:
        for r in rows:
            cp.write_row(r)
    cur.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(t.name), cols, cols, sql.Identifier(_stage(t))
        )
    )
    return max(cur.rowcount, 0)


def _clean(s: str) -> str:
    return s.replace("\x00", "\\0")


def write_once(conn: psycopg.Connection, items: Sequence[Item]) -> WriteResult:
    """Store ``items`` in one transaction (raises on any database error)."""
    res = WriteResult()
    by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    rejects: list[tuple[str, bytes, bytes, str]] = []
    for it in items:
        if isinstance(it.parsed, Rows):
            by_table[it.parsed.table.name].extend(it.parsed.rows)
        else:
            rejects.append(_reject_row(it, it.parsed))
            res.rejects[it.parsed.code] += 1
    with conn.transaction(), conn.cursor() as cur:
        for name, rows in by_table.items():
            n = _copy_insert(cur, TABLES[name], rows)
            res.inserted[name] += n
            res.duplicates[name] += len(rows) - n
        if rejects:
            with cur.copy(
                "COPY _stage_rejects (topic, payload, payload_sha256, reason) FROM STDIN"
            ) as cp:
                for r in rejects:
                    cp.write_row(r)
            cur.execute(
                "INSERT INTO ingest_rejects (topic, payload, payload_sha256, reason) "
                "SELECT topic, payload, payload_sha256, reason FROM _stage_rejects "
                "ON CONFLICT DO NOTHING"
            )
    return res


def _reject_row(it: Item, rej: Reject) -> tuple[str, bytes, bytes, str]:
    return (_clean(it.topic), it.payload, hashlib.sha256(it.payload).digest(), _clean(rej.reason))


def write_batch(conn: psycopg.Connection, items: Sequence[Item]) -> WriteResult:
    """Store a batch; rows the database refuses are isolated and dead-lettered.

    Temporary errors propagate (the caller reconnects and retries the whole batch).
    """
    try:
        return write_once(conn, items)
    except psycopg.Error as e:
        if classify(e) == "retry" or not items:
            raise
        if len(items) == 1:
            it = items[0]
            detail = f"{e.sqlstate} {str(e).splitlines()[0][:200]}"
            res = write_once(conn, [Item(it.topic, it.payload, Reject("db_refused", detail))])
            res.splits += 1
            return res
        mid = len(items) // 2
        res = write_batch(conn, items[:mid])
        res.add(write_batch(conn, items[mid:]))
        res.splits += 1
        return res
