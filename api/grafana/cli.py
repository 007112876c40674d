"""``mebuku grafana build|push|check``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from api.grafana import build as build_mod
from core.extras import MissingExtraError, require
from core.i18n import cli_gettext as _

console = Console(stderr=True)
app = typer.Typer(help=_("Grafana dashboards: build JSON, publish, check."), no_args_is_help=True)


@app.command(
    "build",
    help=_(
        "Write every package's dashboards, Japanese and English, to "
        "grafana/dashboards/<folder>/<uid>.json, and the provisioning files they need."
    ),
)
def build(
    out: Path = typer.Option(build_mod.DEFAULT_OUT, help=_("Dashboards folder.")),
    provisioning: Path = typer.Option(
        build_mod.PROVISIONING, help=_("Provisioning folder (dashboard providers, alert rules).")
    ),
    check_only: bool = typer.Option(
        False, "--check", help=_("Only report whether the files are current (exit 1 if not).")
    ),
) -> None:
    """Write every package's dashboards, Japanese and English, to
    grafana/dashboards/<folder>/<uid>.json, and the provisioning files they need."""
    if check_only:
        diffs = build_mod.differences(out) + build_mod.provisioning_differences(provisioning)
        for d in diffs:
            console.print(f"[red]{d}[/]")
        if diffs:
            raise typer.Exit(1)
        console.print(_("dashboards are current"))
        return
    paths = build_mod.write(out)
    build_mod.write_provisioning(provisioning)
    console.print(_("wrote {n} dashboard(s) under {folder}").format(n=len(paths), folder=out))


def _env(name: str, allow_empty: bool = False) -> str:
    value = os.environ.get(name)
    if value is None or (not value and not allow_empty):
        console.print(
            "[red]" + _("{name} is not set (or pass the option)").format(name=name) + "[/]"
        )
        raise typer.Exit(2)
    return value


def _need_grafana_client() -> None:
    """One line naming the ``grafana`` extra when grafana-client is not installed."""
    try:
        require("grafana_client", "grafana")
    except MissingExtraError as e:
        console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _api(url: str, token: str) -> Any:
    from grafana_client.api import GrafanaApi

    return GrafanaApi.from_url(url=url, credential=token, timeout=10)


@app.command(
    "push", help=_("Create or update the data sources, folders and dashboards (safe to repeat).")
)
def push(  # noqa: PLR0913 (each argument is one command-line option)
    url: str = typer.Option(..., envvar="GRAFANA_URL", help=_("Grafana base URL.")),
    token: str = typer.Option(
        ..., envvar="GRAFANA_TOKEN", help=_("Service account token (Editor or Admin).")
    ),
    db_host: str = typer.Option(None, help=_("host:port as Grafana reaches the database.")),
    db_name: str = typer.Option(None),
    db_user: str = typer.Option(None, help=_("Preferably a read-only role.")),
    api_url: str = typer.Option(None, help=_("The Mebuku API as Grafana reaches it.")),
    sslmode: str = typer.Option("disable", help=_("disable, require, verify-ca, verify-full")),
    city_team: list[str] = typer.Option(
        [], help=_("Grafana team that may view the city folder (repeat); default: admins only.")
    ),
) -> None:
    """Create or update the data sources, folders and dashboards (safe to repeat).

    Secrets come from the environment only: MEBUKU_DB_PASSWORD and MEBUKU_GRAFANA_API_KEY
    (an API key with role council, from `mebuku operators create --role council`).
    """
    _need_grafana_client()
    from api.grafana.push import Connection, GrafanaSetupError
    from api.grafana.push import push as do_push

    conn = Connection(
        db_host=db_host or _env("MEBUKU_DB_HOST"),
        db_name=db_name or _env("MEBUKU_DB_NAME"),
        db_user=db_user or _env("MEBUKU_DB_USER"),
        db_password=_env("MEBUKU_DB_PASSWORD", allow_empty=True),  # trust/peer auth
        api_url=api_url or _env("MEBUKU_API_URL"),
        api_key=_env("MEBUKU_GRAFANA_API_KEY"),
        db_sslmode=sslmode,
    )
    try:
        report = do_push(_api(url, token), conn, city_teams=city_team)
    except GrafanaSetupError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from e
    for item in report.created:
        console.print(_("created {item}").format(item=item))
    for item in report.updated:
        console.print(_("updated {item}").format(item=item))


@app.command(
    "check", help=_("Ask Grafana to health-check each Mebuku data source (exit 1 if any fails).")
)
def check(
    url: str = typer.Option(..., envvar="GRAFANA_URL", help=_("Grafana base URL.")),
    token: str = typer.Option(..., envvar="GRAFANA_TOKEN", help=_("Service account token.")),
) -> None:
    """Ask Grafana to health-check each Mebuku data source (exit 1 if any fails)."""
    _need_grafana_client()
    from api.grafana.push import check as do_check

    results = do_check(_api(url, token))
    for h in results:
        colour = "green" if h.ok else "red"
        verdict = _("ok") if h.ok else _("FAILED")
        console.print(f"[{colour}]{h.uid}: {verdict}[/] {h.message}")
    if not all(h.ok for h in results):
        raise typer.Exit(1)
