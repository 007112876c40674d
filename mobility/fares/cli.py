"""``mebuku fares ...`` (policies, fact recording) and ``mebuku settle --month YYYY-MM``."""

from __future__ import annotations

import getpass
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from core import tables
from core.db import connect
from core.i18n import N_
from core.i18n import cli_gettext as _
from core.operators import registry
from core.settings import get_settings
from mobility.fares import settlement
from mobility.fares.policy import load_policies

console = Console(stderr=True)
app = typer.Typer(help=_("Fares and subsidies: policies and administration."), no_args_is_help=True)


@app.command(
    "policies",
    help=_("List the policy versions shipped with this release and when each takes effect."),
)
def policies() -> None:
    """List the policy versions shipped with this release and when each takes effect."""
    book = load_policies()
    table = tables.table(_("scheme"), _("version"), _("effective from"), _("key values"))
    for p in book.mytaku:
        table.add_row(
            _("MyTaku"),
            p.version,
            p.effective_from.isoformat(),
            _(
                "{rate}% up to {alone} yen riding alone, up to {shared} yen shared; "
                "{per_day} a day, {per_year} a fiscal year; {start}-{end}"
            ).format(
                rate=p.alone_rate_percent,
                alone=p.alone_cap_yen,
                shared=p.shared_cap_yen,
                per_day=p.rides_per_day,
                per_year=p.rides_per_fiscal_year,
                start=f"{p.hours_start:%H:%M}",
                end=f"{p.hours_end:%H:%M}",
            ),
        )
    for b in book.bus:
        table.add_row(
            _("bus discount"),
            b.version,
            b.effective_from.isoformat(),
            _(", ").join(
                _discount(d.name, d.min_age, d.max_age, d.rate_percent) for d in b.discounts
            ),
        )
    tables.console().print(table)


DISCOUNT_NAMES = {"senior": N_("seniors"), "youth": N_("young people")}


def _discount(name: str, low: int, high: int | None, rate: float) -> str:
    """A bus discount as words: who (by the policy's name and ages) and how much."""
    who = _(DISCOUNT_NAMES[name]) if name in DISCOUNT_NAMES else name
    if high is None:
        return _("{name} aged {low} and over: {rate}%").format(name=who, low=low, rate=rate)
    return _("{name} aged {low} to {high}: {rate}%").format(name=who, low=low, high=high, rate=rate)


TOTAL_KEYS = ("lines", "mytaku_yen", "bus_discount_yen", "reversal_yen", "total_yen")


def settle(
    month: str = typer.Option(..., help=_("Settlement month, YYYY-MM (Japan time).")),
    out: Path = typer.Option(Path("statements"), help=_("Folder for the statement files.")),
    operator: str | None = typer.Option(None, help=_("Only this operator.")),
    close: bool = typer.Option(
        False, "--close", help=_("Close the month: store its statements for good (SHA-256).")
    ),
    by: str | None = typer.Option(None, help=_("Who closes the month (default: the OS user).")),
) -> None:
    """Write each operator's monthly statement (CSV for Excel and JSON), reconciled to the
    ledger to the yen; exits non-zero if anything does not add up.

    A closed month re-emits its stored statements byte for byte after checking their
    SHA-256 and that the ledger still holds what was closed. --close closes a month that has
    ended; later records and reversals of it land in the next open month as adjustments.
    """
    try:
        m = settlement.parse_month(month)
    except ValueError:
        raise typer.BadParameter(_("month must be YYYY-MM"), param_hint="--month") from None
    if close and operator:
        raise typer.BadParameter(_("a month is closed for every operator"), param_hint="--operator")
    if operator:  # a corporate number or GTFS agency id names the same operator
        from core.operators import canonical_operator_id

        operator = canonical_operator_id(operator)
    started = time.perf_counter()
    rows: list[tuple[str, bytes, bytes, tuple[str, ...]]] = []
    try:
        with connect(get_settings().require_database_url(), autocommit=True) as conn:
            if close:
                settlement.close_month(conn, m, by or _user(), datetime.now(UTC))
            stored = settlement.stored_statements(conn, m, operator)
            if stored is None:
                for st in settlement.monthly_statements(conn, m, operator):
                    totals = st.totals.as_dict()
                    rows.append(
                        (
                            st.operator_id,
                            settlement.to_csv(st),
                            settlement.to_json_bytes(st),
                            tuple(f"{totals[k]:,}" for k in TOTAL_KEYS),
                        )
                    )
            else:
                for ss in stored:
                    t = json.loads(ss.json)["totals"]
                    cells = tuple(f"{t[k]:,}" for k in TOTAL_KEYS)
                    rows.append((ss.operator_id, ss.csv, ss.json, cells))
    except settlement.PeriodError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from None
    out.mkdir(parents=True, exist_ok=True)
    table = tables.table(
        _("operator"),
        _("name"),
        _("ledger lines"),
        _("MyTaku subsidy (yen)"),
        _("bus discounts (yen)"),
        _("reversals (yen)"),
        _("total (yen)"),
    )
    names = {o.id: o.legal_name for o in registry().operators}
    # The operator id is what people copy into --operator: never folded across lines.
    table.columns[0].no_wrap = True
    table.columns[0].min_width = max((len(r[0]) for r in rows), default=8)
    for op, csv_bytes, json_bytes, cells in rows:
        stem = out / f"statement-{op}-{month}"
        stem.with_suffix(".csv").write_bytes(csv_bytes)
        stem.with_suffix(".json").write_bytes(json_bytes)
        table.add_row(op, names.get(op, ""), *cells)
    tables.console().print(table)
    state = _("closed: stored statements, SHA-256 verified") if stored is not None else _("open")
    console.print(
        _(
            "{n} statement(s) for {month} in {folder}/ ({seconds:.1f} s), reconciled with the "
            "ledger; month {state}"
        ).format(
            n=len(rows),
            month=month,
            folder=out,
            seconds=time.perf_counter() - started,
            state=state,
        )
    )


SETTLE_HELP = (
    N_(
        "Write each operator's monthly statement (CSV for Excel and JSON), reconciled to the "
        "ledger to the yen; exits non-zero if anything does not add up."
    ),
    N_(
        "A closed month re-emits its stored statements byte for byte after checking their "
        "SHA-256 and that the ledger still holds what was closed. --close closes a month that "
        "has ended; later records and reversals of it land in the next open month as "
        "adjustments."
    ),
)
# `settle` is a top-level command (entry point): its help is its docstring, in the locale.
settle.__doc__ = "\n\n".join(_(part) for part in SETTLE_HELP)


def _user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
