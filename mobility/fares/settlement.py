"""Monthly operator statements from the ledger: CSV for Excel (Japanese) and JSON.

A statement lists every ledger entry of the operator whose period is the month (subsidies
in the ride's month, reversals in the month they were posted) and its totals, so the city
pays exactly what the ledger says. The CSV is UTF-8 with a byte-order mark and CRLF line
ends, which Excel opens as Japanese text without an import dialog.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg import AsyncConnection

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
)
SOURCE_JA = {"taxi": "タクシー", "bus": "バス"}
KIND_JA = {"mytaku": "マイタク補助", "bus_discount": "バス割引", "reversal": "取消"}

LINES_SQL = """
SELECT entry_id,
       to_char(posted_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD HH24:MI:SS'),
       source, record_id, kind,
       to_char(ride_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD HH24:MI:SS'),
       amount_yen, policy_version, reverses
FROM fare_ledger WHERE period = %s AND operator_id = %s ORDER BY entry_id
"""
OPERATORS_SQL = "SELECT DISTINCT operator_id FROM fare_ledger WHERE period = %s ORDER BY 1"
LEDGER_TOTAL_SQL = (
    "SELECT count(*), coalesce(sum(amount_yen), 0) FROM fare_ledger"
    " WHERE period = %s AND operator_id = %s"
)

Line = tuple[int, str, str, str, str, str, int, str, int | None]


def parse_month(text: str) -> date:
    m = _MONTH.fullmatch(text)
    if not m:
        raise ValueError("month must be YYYY-MM")
    return date(int(m.group(1)), int(m.group(2)), 1)


@dataclass
class Totals:
    lines: int = 0
    mytaku_yen: int = 0
    bus_discount_yen: int = 0
    reversal_yen: int = 0

    @property
    def total_yen(self) -> int:
        return self.mytaku_yen + self.bus_discount_yen + self.reversal_yen

    def add(self, kind: str, amount: int) -> None:
        self.lines += 1
        if kind == "mytaku":
            self.mytaku_yen += amount
        elif kind == "bus_discount":
            self.bus_discount_yen += amount
        else:
            self.reversal_yen += amount

    def as_dict(self) -> dict[str, int]:
        return {
            "lines": self.lines,
            "mytaku_yen": self.mytaku_yen,
            "bus_discount_yen": self.bus_discount_yen,
            "reversal_yen": self.reversal_yen,
            "total_yen": self.total_yen,
        }


@dataclass
class Statement:
    operator_id: str
    month: date
    lines: list[Line] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)

    def extend(self, rows: Iterable[Line]) -> None:
        for r in rows:
            self.lines.append(r)
            self.totals.add(r[4], r[6])


def to_csv(st: Statement) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(("事業者", st.operator_id, "対象月", st.month.strftime("%Y-%m")))
    w.writerow(HEADER)
    for e, posted, src, rec, kind, ride, amount, ver, rev in st.lines:
        w.writerow((e, posted, SOURCE_JA[src], rec, KIND_JA[kind], ride, amount, ver, rev or ""))
    t = st.totals
    w.writerow(("件数", t.lines))
    w.writerow(("マイタク補助 合計(円)", t.mytaku_yen))
    w.writerow(("バス割引 合計(円)", t.bus_discount_yen))
    w.writerow(("取消 合計(円)", t.reversal_yen))
    w.writerow(("請求額 合計(円)", t.total_yen))
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def to_json(st: Statement) -> dict[str, Any]:
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
    )
    return {
        "operator_id": st.operator_id,
        "month": st.month.strftime("%Y-%m"),
        "currency": "JPY",
        "totals": st.totals.as_dict(),
        "lines": [dict(zip(cols, r, strict=True)) for r in st.lines],
    }


class ReconciliationError(RuntimeError):
    """The statement does not add up to the ledger (must never happen)."""


def _check(st: Statement, ledger_count: int, ledger_sum: int) -> None:
    if (st.totals.lines, st.totals.total_yen) != (ledger_count, ledger_sum):
        raise ReconciliationError(
            f"{st.operator_id} {st.month:%Y-%m}: statement {st.totals.lines} lines"
            f" {st.totals.total_yen} yen, ledger {ledger_count} lines {ledger_sum} yen"
        )


def monthly_statements(
    conn: psycopg.Connection, month: date, operator_id: str | None = None
) -> list[Statement]:
    """Every operator's statement for the month from one consistent snapshot, reconciled."""
    out: list[Statement] = []
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
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


async def operator_statement(conn: AsyncConnection, operator_id: str, month: date) -> Statement:
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
