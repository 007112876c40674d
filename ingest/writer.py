"""Idempotent batch writes: COPY into temp staging tables, INSERT ... ON CONFLICT DO NOTHING.

One transaction per batch holds the rows of every table plus the batch's reject rows, so
a batch is either wholly committed (then acknowledged) or not at all (then redelivered).

Failures are classified by what they are (:func:`classify`). Only those that mean the
database cannot be reached, is restarting or asks us to try again ("retry") propagate to
the caller, which reconnects and retries the same batch. Every other failure (a value
the database refuses, a string the driver cannot encode, a bug in row building) makes
the batch split in halves until the offending message is alone; it goes to
``ingest_rejects`` with the reason and the rest is stored.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

from ingest.rows import TABLES, Parsed, Reject, Rows, TableSpec

# SQLSTATEs (classes by their first two characters) that mean "the database is away, is
# restarting, or asks for a retry", not "this data is bad": connection exceptions (08),
# transaction rollbacks (40: serialization failure, deadlock), insufficient resources
# (53: too many connections, disk full), operator intervention (57: admin or crash
# shutdown, cannot connect now, query cancelled), system errors (58: I/O), lock not
# available (55P03). Missing tables, columns or rights (42P01, 42703, 42501) mean the
# database is not migrated or granted yet: retried too, and the worker's health query
# checks the tables, so the poison budget never turns a missing migration into rejects.
RETRY_CLASSES = frozenset({"08", "40", "53", "57", "58"})
RETRY_STATES = frozenset({"55P03", "42P01", "42703", "42501", "42883"})

# What a reject row keeps of a payload above the size limit.
PAYLOAD_PREFIX = 4096


@dataclass(frozen=True)
class Item:
    """One message on its way to the database.

    ``size`` and ``sha256`` describe the whole payload when ``payload`` holds only its
    first bytes (an oversize message); otherwise they are derived from ``payload``.
    """

    topic: str
    payload: bytes
    parsed: Parsed
    size: int | None = None
    sha256: bytes | None = None


@dataclass
class WriteResult:
    """What one write did, by table (inserted, duplicates) and by reason (rejects)."""

    inserted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    splits: int = 0

    def add(self, other: WriteResult) -> None:
        """Add another write's counts, to report a whole batch."""
        self.inserted.update(other.inserted)
        self.duplicates.update(other.duplicates)
        self.rejects.update(other.rejects)
        self.splits += other.splits


def classify(exc: BaseException) -> Literal["retry", "split"]:
    """Database away or asking for a retry -> "retry"; anything else -> "split"."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:
            # raised by the driver itself: connection trouble, or a value it cannot send
            return (
                "retry"
                if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
                else "split"
            )
        return "retry" if state[:2] in RETRY_CLASSES or state in RETRY_STATES else "split"
    if isinstance(exc, OSError):  # socket errors, timeouts, refused connections
        return "retry"
    return "split"


def describe(exc: BaseException) -> str:
    """One line naming the failure: SQLSTATE and message, or the exception type."""
    first = (str(exc).splitlines() or [""])[0][:200]
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        return f"{exc.sqlstate} {first}"
    return f"{type(exc).__name__}: {first}"


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
            "payload_sha256 bytea, reason text, payload_size bigint) ON COMMIT DELETE ROWS"
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


def clean_text(s: str) -> str:
    """Text that can always be stored: lone surrogates and NUL become visible escapes."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")


RejectRow = tuple[str, bytes, bytes, str, int]


def _reject_row(it: Item, rej: Reject) -> RejectRow:
    sha = it.sha256 if it.sha256 is not None else hashlib.sha256(it.payload).digest()
    size = it.size if it.size is not None else len(it.payload)
    return (clean_text(it.topic), it.payload, sha, clean_text(rej.reason), size)


def write_once(conn: psycopg.Connection, items: Sequence[Item]) -> WriteResult:
    """Store ``items`` in one transaction (raises on any failure, nothing committed)."""
    res = WriteResult()
    by_table: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    rejects: list[RejectRow] = []
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
                "COPY _stage_rejects (topic, payload, payload_sha256, reason, payload_size) "
                "FROM STDIN"
            ) as cp:
                for r in rejects:
                    cp.write_row(r)
            cur.execute(
                "INSERT INTO ingest_rejects (topic, payload, payload_sha256, reason, payload_size)"
                " SELECT topic, payload, payload_sha256, reason, payload_size FROM _stage_rejects "
                "ON CONFLICT DO NOTHING"
            )
    return res


Connector = psycopg.Connection | Callable[[], psycopg.Connection]


def write_batch(
    db: Connector,
    items: Sequence[Item],
    *,
    poison: bool = False,
    healthy: Callable[[], bool] | None = None,
) -> WriteResult:
    """Store a batch; a message that cannot be stored is isolated and dead-lettered.

    ``db`` is a connection, or a function returning a live one (it may reconnect between
    the halves of a split). "retry" failures propagate: the caller retries the whole
    batch (what was committed before is dropped by ON CONFLICT). With ``poison`` (the
    batch kept failing while the database answered), "retry" failures split too, as long
    as ``healthy()`` says the database still answers.
    """
    conn = db() if callable(db) else db
    try:
        return write_once(conn, items)
    except Exception as e:
        if not items:
            raise
        if classify(e) == "retry" and not (poison and healthy is not None and healthy()):
            raise
        if len(items) > 1:
            mid = len(items) // 2
            res = write_batch(db, items[:mid], poison=poison, healthy=healthy)
            res.add(write_batch(db, items[mid:], poison=poison, healthy=healthy))
            res.splits += 1
            return res
        return _dead_letter(db, items[0], e, poison=poison)


def _dead_letter(db: Connector, it: Item, e: Exception, *, poison: bool) -> WriteResult:
    """The message that fails alone goes to ingest_rejects with what went wrong."""
    if isinstance(e, psycopg.Error) and e.sqlstate and classify(e) == "split":
        rej = Reject("db_refused", describe(e))
    elif poison and classify(e) == "retry":
        rej = Reject("poison", f"fails alone while the database answers: {describe(e)}")
    else:
        rej = Reject("write_error", describe(e))
    conn = db() if callable(db) else db
    try:
        res = write_once(conn, [Item(it.topic, it.payload, rej, it.size, it.sha256)])
    except Exception as again:
        if classify(again) == "retry":
            raise
        # the reject row itself is refused (should not happen): keep the bare facts
        bare = Reject(rej.code, type(e).__name__)
        topic = it.topic.encode("ascii", "backslashreplace").decode("ascii")
        sha = it.sha256 or hashlib.sha256(it.payload).digest()
        size = it.size if it.size is not None else len(it.payload)
        conn = db() if callable(db) else db
        res = write_once(conn, [Item(topic, it.payload[:PAYLOAD_PREFIX], bare, size, sha)])
    res.splits += 1
    return res
