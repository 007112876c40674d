"""`mebuku opendata`: load the town table, set budgets, publish releases."""

from __future__ import annotations

import psycopg
import typer

from core import tables
from core.i18n import gettext, process_lang
from core.settings import get_settings
from opendata.towns import load_towns, read_towns

app = typer.Typer(help="Open data: towns, budgets, releases.", no_args_is_help=True)
out = tables.console()


@app.command("towns")
def towns_cmd() -> None:
    """Load Maebashi's town blocks and population (as the schema owner)."""
    url = get_settings().require_database_url()
    with psycopg.connect(url) as conn:
        n = load_towns(conn, read_towns())
    out.print(gettext("{n} towns loaded", process_lang()).format(n=n))


@app.command("budget")
def budget_cmd(
    fiscal_year: int = typer.Argument(..., help="fiscal year (April-March), e.g. 2026"),
    budget_yen: int = typer.Argument(..., min=0, help="budget in yen"),
    program: str = typer.Option("mytaku", help="mytaku or bus_discount"),
) -> None:
    """Record a programme's budget for a fiscal year (as the schema owner)."""
    url = get_settings().require_database_url()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO opendata_budgets (fiscal_year, program, budget_yen) VALUES (%s, %s, %s)"
            " ON CONFLICT (fiscal_year, program) DO UPDATE SET budget_yen = EXCLUDED.budget_yen",
            [fiscal_year, program, budget_yen],
        )
    out.print(gettext("Budget recorded", process_lang()))
