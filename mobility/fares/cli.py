"""``mebuku fares ...`` (policies, fact recording) and ``mebuku settle --month YYYY-MM``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from core.db import connect
from core.settings import get_settings
from mobility.fares import settlement
from mobility.fares.policy import load_policies

console = Console(stderr=True)
app = typer.Typer(help="Fares and subsidies: policies and administration.", no_args_is_help=True)


@app.command("policies")
def policies() -> None:
    """List the policy versions shipped with this release and when each takes effect."""
    book = load_policies()
    table = Table("scheme", "version", "effective from", "key values")
    for p in book.mytaku:
        table.add_row(
            "mytaku",
            p.version,
            p.effective_from.isoformat(),
            f"{p.alone_rate_percent}% <= {p.alone_cap_yen} yen alone, <= {p.shared_cap_yen}"
            f" shared; {p.rides_per_day}/day, {p.rides_per_fiscal_year}/FY;"
            f" {p.hours_start:%H:%M}-{p.hours_end:%H:%M}",
        )
    for b in book.bus:
        table.add_row(
            "bus",
            b.version,
            b.effective_from.isoformat(),
            ", ".join(
                f"{d.name} {d.min_age}-{d.max_age or ''}: {d.rate_percent}%" for d in b.discounts
            ),
        )
    Console().print(table)


def settle(
    month: str = typer.Option(..., help="Settlement month, YYYY-MM (Japan time)."),
    out: Path = typer.Option(Path("statements"), help="Folder for the statement files."),
    operator: str | None = typer.Option(None, help="Only this operator."),
) -> None:
    """Write each operator's monthly statement (CSV for Excel and JSON), reconciled to the
    ledger to the yen; exits non-zero if anything does not add up."""
    try:
        m = settlement.parse_month(month)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--month") from None
    started = time.perf_counter()
    with connect(get_settings().require_database_url(), autocommit=True) as conn:
        statements = settlement.monthly_statements(conn, m, operator)
    out.mkdir(parents=True, exist_ok=True)
    table = Table("operator", "lines", "mytaku yen", "bus discount yen", "reversals", "total yen")
    for st in statements:
        stem = out / f"statement-{st.operator_id}-{month}"
        stem.with_suffix(".csv").write_bytes(settlement.to_csv(st))
        stem.with_suffix(".json").write_text(
            json.dumps(settlement.to_json(st), ensure_ascii=False, separators=(",", ":")),
            encoding="utf-8",
        )
        t = st.totals
        table.add_row(
            st.operator_id,
            str(t.lines),
            f"{t.mytaku_yen:,}",
            f"{t.bus_discount_yen:,}",
            f"{t.reversal_yen:,}",
            f"{t.total_yen:,}",
        )
    Console().print(table)
    console.print(
        f"{len(statements)} statement(s) for {month} in {out}/"
        f" ({time.perf_counter() - started:.1f} s), reconciled with the ledger"
    )
