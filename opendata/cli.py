"""`mebuku opendata`: load the town table, set budgets, publish releases."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import psycopg
import typer
from rich.console import Console
from rich.progress import Progress

from core import roles, tables
from core.i18n import N_, gettext, process_lang
from core.i18n import cli_gettext as _
from core.settings import ConfigError, get_settings
from opendata.ckan import push_release
from opendata.datasets import BY_ID, DATASETS
from opendata.export import ExportError
from opendata.release import ReleaseOptions, publish
from opendata.towns import load_towns, read_towns


class Program(StrEnum):
    """The fare programmes a budget is recorded for."""

    mytaku = "mytaku"
    bus_discount = "bus_discount"


app = typer.Typer(help=_("Open data: towns, budgets, releases."), no_args_is_help=True)
out = tables.console()
err = Console(stderr=True)
STEPS = {
    "read": N_("Reading the aggregate views"),
    "catalogue": N_("Writing the catalogue"),
    "record": N_("Recording the release"),
}


@app.command("towns", help=_("Load Maebashi's town blocks and population (as the schema owner)."))
def towns_cmd() -> None:
    """Load Maebashi's town blocks and population (as the schema owner)."""
    url = get_settings().require_database_url()
    with psycopg.connect(url) as conn:
        n = load_towns(conn, read_towns())
    out.print(gettext("{n} towns loaded", process_lang()).format(n=n))


@app.command(
    "budget", help=_("Record a programme's budget for a fiscal year (as the schema owner).")
)
def budget_cmd(
    fiscal_year: int = typer.Argument(..., help=_("fiscal year (April-March), e.g. 2026")),
    budget_yen: int = typer.Argument(..., min=0, help=_("budget in yen")),
    program: Program = typer.Option(
        Program.mytaku, help=_("programme: mytaku (MyTaku) or bus_discount (bus discounts)")
    ),
) -> None:
    """Record a programme's budget for a fiscal year (as the schema owner)."""
    url = get_settings().require_database_url()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO opendata_budgets (fiscal_year, program, budget_yen) VALUES (%s, %s, %s)"
            " ON CONFLICT (fiscal_year, program) DO UPDATE SET budget_yen = EXCLUDED.budget_yen",
            [fiscal_year, program.value, budget_yen],
        )
    out.print(gettext("Budget recorded", process_lang()))


def export_url(url: str, password: str | None) -> str:
    """The export's connection: always as mebuku_opendata (never the owner)."""
    from psycopg.conninfo import conninfo_to_dict

    if conninfo_to_dict(url).get("user") == roles.ROLE_PREFIX + "opendata" and not password:
        return url
    return roles.role_url(url, "opendata", password)


@app.command(
    "publish", help=_("Write a new versioned release (and push it to CKAN when configured).")
)
def publish_cmd(
    out_dir: Path | None = typer.Option(
        None, "--out", help=_("release folder (MEBUKU_OPENDATA_DIR)")
    ),
    base_url: str = typer.Option(
        "http://localhost:8000/open/", help=_("where the folder is served (catalogue links)")
    ),
) -> None:
    """Write a new versioned release (and push it to CKAN when configured)."""
    lang = process_lang()
    s = get_settings().require("database_url")
    demo = s.demo_env_file  # a running demo publishes to its own folder (and serves it)
    target = out_dir or s.opendata_dir or (demo.parent / "opendata" if demo else None)
    if target is None:
        raise ConfigError([gettext("MEBUKU_OPENDATA_DIR is not set and --out was not given", lang)])
    pw = s.db_opendata_password.get_secret_value() if s.db_opendata_password else None
    opts = ReleaseOptions(
        target, k=s.opendata_k, epsilon=s.opendata_epsilon, base_url=base_url,
        api_url=base_url.removesuffix("open/"), lang=lang,
    )  # fmt: skip
    steps = len(DATASETS) + 3
    with (
        Progress(console=err, transient=True) as bar,
        psycopg.connect(export_url(s.require_database_url(), pw)) as conn,
    ):
        task = bar.add_task(gettext("Publishing open data", lang), total=steps)

        def step(name: str) -> None:
            title = BY_ID[name].title if name in BY_ID else STEPS.get(name, name)
            bar.update(task, advance=1, description=gettext(title, lang))

        try:
            rel = publish(conn, opts, step)
        except ExportError as e:
            err.print(gettext("Open data not published: {reason}", lang).format(reason=e))
            raise typer.Exit(1) from None
    out.print(
        gettext("Release {id} written to {folder}", lang).format(
            id=rel.release_id, folder=rel.folder
        )
    )
    if s.ckan_url:
        key = s.ckan_api_key.get_secret_value() if s.ckan_api_key else None
        pushed = push_release(rel, s.ckan_url, key, base_url)
        out.print(gettext("{n} datasets sent to CKAN", lang).format(n=pushed))
