"""Monthly operator statements from the ledger: CSV for Excel (Japanese) and JSON.

A statement lists every ledger entry of the operator whose period is the month (subsidies
in the ride's month, reversals in the month they were posted) and its totals, so the city
pays exactly what the ledger says. The CSV is UTF-8 with a byte-order mark and CRLF line
ends, which Excel opens as Japanese text without an import dialog.

Closing a month (:func:`close_month`) freezes it: its statements are stored with their
SHA-256 and every later issue of that month serves those bytes; the database refuses any
new entry in it, and late records and reversals become adjustment lines of the next open
month, each naming the ride's original date.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection

from core.i18n import cli_gettext as _

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")  # fullmatch: "$" would allow a final \n

HEADER = (
    "明細番号",
    "計上日時",
    "区分",
    "記録ID",
    "種別",
    "乗車日時",
    "金額(円)",
    "適用ルール版",
    "取消対象明細",
    "調整元の乗車日",
)
SOURCE_JA = {"taxi": "タクシー", "bus": "バス"}
KIND_JA = {"mytaku": "マイタク補助", "bus_discount": "バス割引", "reversal": "取消"}

LINES_SQL = """
SELECT entry_id,
       to_char(posted_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD HH24:MI:SS'),
       source, record_id, kind,
       to_char(ride_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD HH24:MI:SS'),
       amount_yen, policy_version, reverses,
       CASE WHEN date_trunc('month', service_day)::date <> period
            THEN to_char(service_day, 'YYYY-MM-DD') END
FROM fare_ledger WHERE period = %s AND operator_id = %s ORDER BY entry_id
"""
OPERATORS_SQL = "SELECT DISTINCT operator_id FROM fare_ledger WHERE period = %s ORDER BY 1"
LEDGER_TOTAL_SQL = (
    "SELECT count(*), coalesce(sum(amount_yen), 0) FROM fare_ledger"
    " WHERE period = %s AND operator_id = %s"
)

# entry, posted, source, record, kind, ride time, yen, policy, reverses, adjusts (the ride's
# original day when the entry settles in a later month than the ride: a late record or a
# reversal)
Line = tuple[int, str, str, str, str, str, int, str, int | None, str | None]


def parse_month(text: str) -> date:
    """A ``YYYY-MM`` month as its first day."""
    m = _MONTH.fullmatch(text)
    if not m:
        raise ValueError("month must be YYYY-MM")
    return date(int(m.group(1)), int(m.group(2)), 1)


@dataclass
class Totals:
    """Running totals of a statement, so the sums printed match the lines."""

    lines: int = 0
    mytaku_yen: int = 0
    bus_discount_yen: int = 0
    reversal_yen: int = 0
    adjustment_yen: int = 0

    @property
    def total_yen(self) -> int:
        """What the city pays the operator for the month."""
        return self.mytaku_yen + self.bus_discount_yen + self.reversal_yen

    def add(self, kind: str, amount: int, adjusts: str | None = None) -> None:
        """Count one ledger line into the totals."""
        self.lines += 1
        if adjusts is not None:
            self.adjustment_yen += amount  # informational: also counted by kind below
        if kind == "mytaku":
            self.mytaku_yen += amount
        elif kind == "bus_discount":
            self.bus_discount_yen += amount
        else:
            self.reversal_yen += amount

    def as_dict(self) -> dict[str, int]:
        """The totals as plain numbers, for JSON."""
        return {
            "lines": self.lines,
            "mytaku_yen": self.mytaku_yen,
            "bus_discount_yen": self.bus_discount_yen,
            "reversal_yen": self.reversal_yen,
            "adjustment_yen": self.adjustment_yen,
            "total_yen": self.total_yen,
        }


@dataclass
class Statement:
    """One operator's monthly statement: the ledger lines and their totals."""

    operator_id: str
    month: date
    lines: list[Line] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)

    def extend(self, rows: Iterable[Line]) -> None:
        """Add ledger lines, keeping the totals in step."""
        for r in rows:
            self.lines.append(r)
            self.totals.add(r[4], r[6], r[9])


def to_csv(st: Statement) -> bytes:
    """The statement as CSV with Japanese headings and CRLF lines, as the city's accounting software
    reads it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(("事業者", st.operator_id, "対象月", st.month.strftime("%Y-%m")))
    w.writerow(HEADER)
    for e, posted, src, rec, kind, ride, amount, ver, rev, adj in st.lines:
        w.writerow(
            (e, posted, SOURCE_JA[src], rec, KIND_JA[kind], ride, amount, ver, rev or "", adj or "")
        )
    t = st.totals
    w.writerow(("件数", t.lines))
    w.writerow(("マイタク補助 合計(円)", t.mytaku_yen))
    w.writerow(("バス割引 合計(円)", t.bus_discount_yen))
    w.writerow(("取消 合計(円)", t.reversal_yen))
    w.writerow(("請求額 合計(円)", t.total_yen))
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def to_json(st: Statement) -> dict[str, Any]:
    """The statement as JSON, for the API."""
    cols = (
        "entry_id",
        "posted_at",
        "source",
        "record_id",
        "kind",
        "ride_at",
        "amount_yen",
        "policy_version",
        "reverses",
        "adjusts_service_day",
    )
    return {
        "operator_id": st.operator_id,
        "month": st.month.strftime("%Y-%m"),
        "currency": "JPY",
        "totals": st.totals.as_dict(),
        "lines": [dict(zip(cols, r, strict=True)) for r in st.lines],
    }


def to_json_bytes(st: Statement) -> bytes:
    """The JSON statement as issued (compact, UTF-8): the bytes a closed month stores."""
    return json.dumps(to_json(st), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def render(st: Statement, fmt: str) -> bytes:
    """The statement in the format asked for."""
    return to_csv(st) if fmt == "csv" else to_json_bytes(st)


class ReconciliationError(RuntimeError):
    """The statement does not add up to the ledger (must never happen)."""


def _check(st: Statement, ledger_count: int, ledger_sum: int) -> None:
    if (st.totals.lines, st.totals.total_yen) != (ledger_count, ledger_sum):
        raise ReconciliationError(
            f"{st.operator_id} {st.month:%Y-%m}: statement {st.totals.lines} lines"
            f" {st.totals.total_yen} yen, ledger {ledger_count} lines {ledger_sum} yen"
        )


def _read_statements(
    conn: psycopg.Connection, month: date, operator_id: str | None = None
) -> list[Statement]:
    out: list[Statement] = []
    ops = (
        [operator_id]
        if operator_id
        else [r[0] for r in conn.execute(OPERATORS_SQL, [month]).fetchall()]
    )
    for op in ops:
        st = Statement(op, month)
        with conn.cursor(name=f"settle_{len(out)}") as cur:
            cur.itersize = 20_000
            cur.execute(LINES_SQL, [month, op])
            st.extend(cur)
        row = conn.execute(LEDGER_TOTAL_SQL, [month, op]).fetchone()
        assert row is not None
        _check(st, int(row[0]), int(row[1]))
        out.append(st)
    return out


def monthly_statements(
    conn: psycopg.Connection, month: date, operator_id: str | None = None
) -> list[Statement]:
    """Every operator's statement for the month from one consistent snapshot, reconciled."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _read_statements(conn, month, operator_id)


# ---------------------------------------------------------------- closed periods

# The ledger writers' advisory lock (mobility.fares.ledger.PERIOD_LOCK, repeated here so
# settlement does not import the ledger's async code).
PERIOD_LOCK = 0x6D656275


class PeriodError(RuntimeError):
    """The month cannot be closed (not over yet) or its stored statements do not verify."""


@dataclass(frozen=True)
class StoredStatement:
    """A closed month's statement as issued: the exact CSV and JSON bytes."""

    operator_id: str
    csv: bytes
    json: bytes
    lines: int
    total_yen: int


def month_end(month: date) -> date:
    """The first day after ``month`` (its half-open end)."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def close_month(
    conn: psycopg.Connection, month: date, closed_by: str, now: datetime
) -> list[StoredStatement]:
    """Freeze the month: store each operator's CSV and JSON with their SHA-256.

    Only a month that has ended (Japan time) can be closed. Ledger writers hold the period
    lock shared while they decide an entry's period, so taking it exclusively here means no
    entry of this month is in flight while the statements are read. Closing twice is a
    no-op that returns the stored statements.
    """
    from mobility.fares.rules import local_day

    if local_day(now) < month_end(month):
        raise PeriodError(  # said to the city staff member at `mebuku settle --close`
            _("{month} has not ended yet (Japan time); it cannot be closed").format(
                month=f"{month:%Y-%m}"
            )
        )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [PERIOD_LOCK])
        if conn.execute("SELECT 1 FROM fare_closed_periods WHERE period = %s", [month]).fetchone():
            closed = stored_statements(conn, month)
            assert closed is not None
            return closed
        statements = _read_statements(conn, month)
        conn.execute(
            "INSERT INTO fare_closed_periods (period, closed_by, statements, lines, total_yen)"
            " VALUES (%s, %s, %s, %s, %s)",
            [
                month,
                closed_by,
                len(statements),
                sum(st.totals.lines for st in statements),
                sum(st.totals.total_yen for st in statements),
            ],
        )
        out: list[StoredStatement] = []
        for st in statements:
            bodies = {"csv": to_csv(st), "json": to_json_bytes(st)}
            for fmt, body in bodies.items():
                conn.execute(
                    "INSERT INTO fare_closed_statements (period, operator_id, format, body,"
                    " sha256, lines, total_yen) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        month,
                        st.operator_id,
                        fmt,
                        body,
                        hashlib.sha256(body).digest(),
                        st.totals.lines,
                        st.totals.total_yen,
                    ],
                )
            out.append(
                StoredStatement(
                    st.operator_id,
                    bodies["csv"],
                    bodies["json"],
                    st.totals.lines,
                    st.totals.total_yen,
                )
            )
    return out


def _verified(op: str, month: date, fmt: str, body: bytes, digest: bytes) -> bytes:
    if hashlib.sha256(body).digest() != digest:
        raise PeriodError(
            _("stored {format} statement of {operator} {month} fails its SHA-256").format(
                format=fmt.upper(), operator=op, month=f"{month:%Y-%m}"
            )
        )
    return body


def stored_statements(
    conn: psycopg.Connection, month: date, operator_id: str | None = None
) -> list[StoredStatement] | None:
    """The closed month's statements with verified digests; None if the month is open.

    Also checks that the ledger still holds exactly what was closed (lines and yen per
    operator), so a tampered ledger is reported rather than silently re-issued.
    """
    if not conn.execute("SELECT 1 FROM fare_closed_periods WHERE period = %s", [month]).fetchone():
        return None
    rows = conn.execute(
        "SELECT operator_id, format, body, sha256, lines, total_yen FROM fare_closed_statements"
        " WHERE period = %s AND (%s::text IS NULL OR operator_id = %s)"
        " ORDER BY operator_id, format",
        [month, operator_id, operator_id],
    ).fetchall()
    by_op: dict[str, dict[str, Any]] = {}
    for op, fmt, body, digest, lines, total in rows:
        d = by_op.setdefault(op, {"lines": lines, "total": total})
        d[fmt] = _verified(op, month, fmt, bytes(body), bytes(digest))
    out = []
    for op, d in by_op.items():
        row = conn.execute(LEDGER_TOTAL_SQL, [month, op]).fetchone()
        assert row is not None
        if (int(row[0]), int(row[1])) != (d["lines"], d["total"]):
            raise PeriodError(
                _("ledger of {operator} {month} no longer matches its closed statement").format(
                    operator=op, month=f"{month:%Y-%m}"
                )
            )
        out.append(StoredStatement(op, d["csv"], d["json"], d["lines"], d["total"]))
    return out


async def closed_statement_body(
    conn: AsyncConnection, operator_id: str, month: date, fmt: str
) -> bytes | None:
    """The stored bytes of a closed month's statement (digest verified); None if the month
    is open. A closed month without a statement for this operator issues the empty one."""
    cur = await conn.execute("SELECT 1 FROM fare_closed_periods WHERE period = %s", [month])
    if await cur.fetchone() is None:
        return None
    cur = await conn.execute(
        "SELECT body, sha256 FROM fare_closed_statements WHERE period = %s"
        " AND operator_id = %s AND format = %s",
        [month, operator_id, fmt],
    )
    row = await cur.fetchone()
    if row is None:
        return render(Statement(operator_id, month), fmt)
    return _verified(operator_id, month, fmt, bytes(row[0]), bytes(row[1]))


async def operator_statement(conn: AsyncConnection, operator_id: str, month: date) -> Statement:
    """An operator's statement for a month, read in one consistent snapshot."""
    st = Statement(operator_id, month)
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur = await conn.execute(LINES_SQL, [month, operator_id])
        st.extend(await cur.fetchall())
        cur = await conn.execute(LEDGER_TOTAL_SQL, [month, operator_id])
        row = await cur.fetchone()
        assert row is not None
        _check(st, int(row[0]), int(row[1]))
    return st
