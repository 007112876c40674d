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
from core.i18n import as_lang, process_lang, validation_lines
from core.i18n import cli_gettext as _
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
from fiveg.labels import KPI_LABELS, THEME_LABELS, VERDICTS
from fiveg.store import HIST_WIDTH, ROLLUP_WIDTH
from fiveg.trial import load_definition

T = TypeVar("T")
app = typer.Typer(help=_("Local-5G trials: registry, KPIs, reports."), no_args_is_help=True)
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
            err.print("[red]" + _("no trial {trial!r}").format(trial=trial_id) + "[/]")
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
        raise typer.BadParameter(
            _("{option}: not an ISO 8601 time: {text!r}").format(option=name, text=text)
        ) from e
    if ts.tzinfo is None:
        raise typer.BadParameter(
            _("{option} needs a UTC offset, e.g. 2026-11-20T09:00+09:00").format(option=name)
        )
    return ts


def _print_scorecard(card: Scorecard) -> None:
    table = tables.table(_("KPI"), _("target"), _("measured"), _("result"), _("availability"))
    passed, failed = _(VERDICTS["pass"]), _(VERDICTS["fail"])
    for r in card.results:
        t = r.target
        res = (f"[green]{passed}[/]" if r.passed else f"[red]{failed}[/]") + (
            _(" (reference value)") if t.reference else ""
        )
        bound = _("{value} {unit} or more") if t.op == ">=" else _("{value} {unit} or less")
        table.add_row(
            _(KPI_LABELS[t.kpi]) if t.kpi in KPI_LABELS else t.kpi,
            bound.format(value=f"{t.value:g}", unit=t.info.unit),
            "-" if r.measured is None else f"{r.measured:.2f}",
            res,
            "-" if r.availability_pct is None else f"{r.availability_pct:.1f} %",
        )
    out.print(table)
    colour = {"pass": "green", "fail": "red", "insufficient-data": "yellow"}[card.verdict]
    verdict = f"[{colour}]{_(VERDICTS[card.verdict])}[/]"
    if card.verdict == "insufficient-data":
        verdict += _(" (below {pct:g} % data coverage)").format(pct=card.min_coverage_pct)
    out.print(
        _("overall: {verdict} · data coverage {pct:.1f} % · {gaps} gap(s)").format(
            verdict=verdict, pct=card.data_coverage_pct, gaps=len(card.gaps)
        )
    )


@app.command(
    "load-trial", help=_("Register (or replace) trials from .toml/.json definition files.")
)
def load_trial(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False),
    starting_now: bool = typer.Option(
        False,
        help=_("Let the trials start now (to the minute) instead of at their file's period_start."),
    ),
    hours: float = typer.Option(
        0.0, min=0, help=_("With --starting-now: the trials last this many hours (0 = as filed).")
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
            err.print("[red]" + _("{file}: invalid trial definition").format(file=f) + "[/]")
            # pydantic's errors field by field in the language of the process; a file that
            # is not TOML/JSON at all: the parser's own words
            why = (
                validation_lines(e.errors(), process_lang())
                if isinstance(e, ValidationError)
                else [str(e)]
            )
            err.print(
                "\n".join(f"  {line}" for line in why),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from e
        _run(lambda c, d=d: store.save_trial(c, d))  # type: ignore[misc]
        err.print(
            _("loaded {trial} ({theme}, {n} devices)").format(
                trial=d.trial_id, theme=_(THEME_LABELS[d.theme]), n=len(d.devices)
            )
        )


@app.command("list", help=_("List registered trials."))
def list_trials(
    theme: str = typer.Option(None, help=_("transport, education or emergency")),
) -> None:
    """List registered trials."""
    table = tables.table(_("trial"), _("theme"), _("period"), _("devices"), _("title"))
    for t in _run(lambda c: store.list_trials(c, theme)):
        d = t.definition
        period = f"{d.period_start:%Y-%m-%d} – {d.period_end:%Y-%m-%d}"
        theme_label = _(THEME_LABELS[d.theme])
        table.add_row(d.trial_id, theme_label, period, str(len(t.devices)), d.title)
    out.print(table)


@app.command("kpis", help=_("KPIs and the scorecard of a trial over its whole period."))
def kpis(
    trial_id: str,
    source: str = typer.Option("auto", help=_("raw (exact), rollup (fast) or auto")),
    as_json: bool = typer.Option(False, "--json", help=_("Print the API's JSON body.")),
) -> None:
    """KPIs and the scorecard of a trial over its whole period."""
    if source not in ("raw", "rollup", "auto"):
        raise typer.BadParameter(_("source is raw, rollup or auto"))
    k = _kpis(trial_id, source)  # type: ignore[arg-type]
    if as_json:
        from fiveg.schemas import kpis_out

        out.print_json(kpis_out(k).model_dump_json(by_alias=True))
        return
    out.print(
        _("{trial}: {n:,} samples ({source})").format(
            trial=trial_id, n=k.overall.n, source=k.source
        )
    )
    _print_scorecard(k.scorecard)


@app.command("report", help=_("Write the council's PDF report for a trial."))
def report(
    trial_id: str,
    output: Path = typer.Option(None, "-o", help=_("PDF path (default fiveg-TRIAL-report.pdf)")),
    source: str = typer.Option("auto", help=_("raw (exact), rollup (fast) or auto")),
    start: str = typer.Option(
        None, "--from", help=_("Start, ISO 8601 with offset (default: trial start)")
    ),
    end: str = typer.Option(
        None, "--to", help=_("End, ISO 8601 with offset (default: now or trial end)")
    ),
    lang: str = typer.Option(None, help=_("ja or en (default: MEBUKU_LANG, the locale, else ja)")),
) -> None:
    """Write the council's PDF report for a trial."""
    if source not in ("raw", "rollup", "auto"):
        raise typer.BadParameter(_("source is raw, rollup or auto"))
    try:
        from fiveg.report import build_report
    except ModuleNotFoundError as e:  # one line naming the extra, not a traceback
        msg = str(missing("report", e.name or "fiveg.report"))
        err.print(msg, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    chosen = as_lang(lang) if lang else (get_settings().lang or process_lang())
    if chosen is None:
        raise typer.BadParameter(_("lang is ja or en"))
    lo, hi = _when(start, "--from"), _when(end, "--to")

    async def go(conn: psycopg.AsyncConnection) -> bytes:
        t = await store.get_trial(conn, trial_id)
        if t is None:
            err.print("[red]" + _("no trial {trial!r}").format(trial=trial_id) + "[/]")
            raise typer.Exit(1)
        try:
            k = await _trial_kpis(conn, t, source, lo, hi)  # type: ignore[arg-type]
        except KpiRequestError as e:
            err.print(f"[red]{_(str(e))}[/]")
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
    err.print(_("wrote {path}").format(path=path))


@app.command("compare", help=_("Scorecards of every trial (auto source), side by side."))
def compare(theme: str = typer.Option(None)) -> None:
    """Scorecards of every trial (auto source), side by side."""
    rows = []
    for t in _run(lambda c: store.list_trials(c, theme)):
        k = _kpis(t.definition.trial_id, "auto")
        rows.append({"trial": t.definition.trial_id, "theme": t.definition.theme,
                     "passed": k.scorecard.passed, "samples": k.overall.n})  # fmt: skip
    out.print_json(json.dumps(rows))
