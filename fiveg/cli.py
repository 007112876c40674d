"""`mebuku fiveg`: load trial definitions, print KPIs and scorecards, write the report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

import psycopg
import typer
from pydantic import ValidationError
from rich.console import Console

from core import tables
from core.extras import missing
from core.i18n import as_lang, process_lang
from core.settings import get_settings
from fiveg import store
from fiveg.coverage import coverage_geojson
from fiveg.engine import (
    KpiRequestError,
    TrialKpis,
    fit_bucket,
    measured_window,
    trial_kpis,
    zoom_to_data,
)
from fiveg.kpi import Scorecard
from fiveg.store import HIST_WIDTH, ROLLUP_WIDTH
from fiveg.trial import load_definition

T = TypeVar("T")
app = typer.Typer(help="Local-5G trials: registry, KPIs, reports.", no_args_is_help=True)
out = tables.console()
err = Console(stderr=True)


def _run(fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    url = get_settings().require_database_url()

    async def go() -> T:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await fn(conn)

    return asyncio.run(go())


async def _trial_kpis(
    conn: psycopg.AsyncConnection,
    t: store.StoredTrial,
    source: Literal["raw", "rollup", "auto"],
    start: datetime | None = None,
    end: datetime | None = None,
) -> TrialKpis:
    bucket = HIST_WIDTH if source == "rollup" else ROLLUP_WIDTH
    if source != "rollup":
        bucket = max(ROLLUP_WIDTH, fit_bucket(*measured_window(t, start, end)))
    return await trial_kpis(
        conn,
        t,
        start,
        end,
        bucket=bucket,
        source=source,
        min_coverage_pct=get_settings().fiveg_min_coverage_pct,
    )


def _kpis(trial_id: str, source: Literal["raw", "rollup", "auto"]) -> TrialKpis:
    async def go(conn: psycopg.AsyncConnection) -> TrialKpis:
        t = await store.get_trial(conn, trial_id)
        if t is None:
            err.print(f"[red]no trial {trial_id!r}[/]")
            raise typer.Exit(1)
        return await _trial_kpis(conn, t, source)

    return _run(go)


def _when(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time with its UTC offset (a bare date or time is refused, not guessed)."""
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as e:
        raise typer.BadParameter(f"{name}: not an ISO 8601 time: {text!r}") from e
    if ts.tzinfo is None:
        raise typer.BadParameter(f"{name} needs a UTC offset, e.g. 2026-11-20T09:00+09:00")
    return ts


def _print_scorecard(card: Scorecard) -> None:
    table = tables.table("KPI", "target", "measured", "result", "availability")
    for r in card.results:
        t = r.target
        res = ("[green]PASS[/]" if r.passed else "[red]FAIL[/]") + (
            " (ref.)" if t.reference else ""
        )
        table.add_row(
            t.kpi,
            f"{t.op} {t.value:g} {t.info.unit}",
            "-" if r.measured is None else f"{r.measured:.2f}",
            res,
            "-" if r.availability_pct is None else f"{r.availability_pct:.1f} %",
        )
    out.print(table)
    verdict = {
        "pass": "[green]PASS[/]",
        "fail": "[red]FAIL[/]",
        "insufficient-data": (
            f"[yellow]INSUFFICIENT DATA[/] (below {card.min_coverage_pct:g} % data coverage)"
        ),
    }[card.verdict]
    out.print(
        f"overall: {verdict} · data coverage "
        f"{card.data_coverage_pct:.1f} % · {len(card.gaps)} gap(s)"
    )


@app.command("load-trial")
def load_trial(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False),
    starting_now: bool = typer.Option(
        False,
        help="Let the trials start now (to the minute) instead of at their file's period_start.",
    ),
    hours: float = typer.Option(
        0.0, min=0, help="With --starting-now: the trials last this many hours (0 = as filed)."
    ),
) -> None:
    """Register (or replace) trials from .toml/.json definition files."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for f in files:
        try:
            d = load_definition(f)
            if starting_now:
                length = timedelta(hours=hours) if hours else d.period_end - d.period_start
                d = d.model_validate(
                    {**d.model_dump(), "period_start": now, "period_end": now + length}
                )
        except (ValidationError, ValueError) as e:
            err.print(f"[red]{f}: invalid trial definition[/]\n{e}")
            raise typer.Exit(2) from e
        _run(lambda c, d=d: store.save_trial(c, d))  # type: ignore[misc]
        err.print(f"loaded {d.trial_id} ({d.theme}, {len(d.devices)} devices)")


@app.command("list")
def list_trials(theme: str = typer.Option(None, help="transport, education or emergency")) -> None:
    """List registered trials."""
    table = tables.table("trial", "theme", "period", "devices", "title")
    for t in _run(lambda c: store.list_trials(c, theme)):
        d = t.definition
        table.add_row(d.trial_id, d.theme, f"{d.period_start:%Y-%m-%d} – {d.period_end:%Y-%m-%d}",
                      str(len(t.devices)), d.title)  # fmt: skip
    out.print(table)


@app.command("kpis")
def kpis(
    trial_id: str,
    source: str = typer.Option("auto", help="raw (exact), rollup (fast) or auto"),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON body."),
) -> None:
    """KPIs and the scorecard of a trial over its whole period."""
    if source not in ("raw", "rollup", "auto"):
        raise typer.BadParameter("source is raw, rollup or auto")
    k = _kpis(trial_id, source)  # type: ignore[arg-type]
    if as_json:
        from fiveg.schemas import kpis_out

        out.print_json(kpis_out(k).model_dump_json(by_alias=True))
        return
    out.print(f"{trial_id}: {k.overall.n:,} samples ({k.source})")
    _print_scorecard(k.scorecard)


@app.command("report")
def report(
    trial_id: str,
    output: Path = typer.Option(None, "-o", help="PDF path (default fiveg-TRIAL-report.pdf)"),
    source: str = typer.Option("auto", help="raw (exact), rollup (fast) or auto"),
    start: str = typer.Option(
        None, "--from", help="Start, ISO 8601 with offset (default: trial start)"
    ),
    end: str = typer.Option(
        None, "--to", help="End, ISO 8601 with offset (default: now or trial end)"
    ),
    lang: str = typer.Option(None, help="ja or en (default: MEBUKU_LANG, the locale, else ja)"),
) -> None:
    """Write the council's PDF report for a trial."""
    if source not in ("raw", "rollup", "auto"):
        raise typer.BadParameter("source is raw, rollup or auto")
    try:
        from fiveg.report import build_report
    except ModuleNotFoundError as e:  # one line naming the extra, not a traceback
        msg = str(missing("report", e.name or "fiveg.report"))
        err.print(msg, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    chosen = as_lang(lang) if lang else (get_settings().lang or process_lang())
    if chosen is None:
        raise typer.BadParameter("lang is ja or en")
    lo, hi = _when(start, "--from"), _when(end, "--to")

    async def go(conn: psycopg.AsyncConnection) -> bytes:
        t = await store.get_trial(conn, trial_id)
        if t is None:
            err.print(f"[red]no trial {trial_id!r}[/]")
            raise typer.Exit(1)
        try:
            k = await _trial_kpis(conn, t, source, lo, hi)  # type: ignore[arg-type]
        except KpiRequestError as e:
            err.print(f"[red]{e}[/]")
            raise typer.Exit(2) from e
        pts = await store.coverage_points(conn, t.devices, k.start, k.end)
        others = []
        for o in await store.list_trials(conn, None):
            if o.definition.trial_id != trial_id:
                try:
                    others.append(await _trial_kpis(conn, o, "auto", lo, hi))
                except KpiRequestError:
                    continue
        series = await zoom_to_data(conn, t, k, get_settings().fiveg_min_coverage_pct)
        return build_report(k, datetime.now(UTC), chosen, coverage_geojson(pts), others, series)

    path = output or Path(f"fiveg-{trial_id}-report.pdf")
    path.write_bytes(_run(go))
    err.print(f"wrote {path}")


@app.command("compare")
def compare(theme: str = typer.Option(None)) -> None:
    """Scorecards of every trial (auto source), side by side."""
    rows = []
    for t in _run(lambda c: store.list_trials(c, theme)):
        k = _kpis(t.definition.trial_id, "auto")
        rows.append({"trial": t.definition.trial_id, "theme": t.definition.theme,
                     "passed": k.scorecard.passed, "samples": k.overall.n})  # fmt: skip
    out.print_json(json.dumps(rows))
