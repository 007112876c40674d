"""The ``mebuku`` command. Core owns the root and ``db``; packages add groups.

Groups come from the ``mebuku.cli`` entry-point group (see pyproject.toml and
core/plugins.py), so core never imports a domain package. A group that fails to import
stops ``mebuku`` (exit 1) with its error and the entry point's module named.
"""

from __future__ import annotations

import sys
import traceback

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.table import Table

from core import migrator, plugins, timeseries
from core.broker import app as broker_app
from core.db import TimescaleError
from core.logging import settings_secrets, setup_logging
from core.settings import get_settings

console = Console(stderr=True)
app = typer.Typer(
    name="mebuku",
    help="Maebashi's MaaS and local-5G data platform.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="Database schema: migrate, status, maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")


@app.callback()
def _root(
    log_level: str = typer.Option(None, help="Override MEBUKU_LOG_LEVEL."),
    log_format: str = typer.Option(None, help="text or json (override MEBUKU_LOG_FORMAT)."),
) -> None:
    try:
        s = get_settings()
    except (ValidationError, SettingsError) as e:  # one clear line, not a traceback
        console.print(
            f"[red]invalid setting:[/] {_settings_problem(e)}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
    setup_logging(log_level or s.log_level, log_format or s.log_format, settings_secrets(s))


def _settings_problem(e: ValidationError | SettingsError) -> str:
    if isinstance(e, SettingsError):  # e.g. a list setting that is not JSON
        return f'{e} (list settings are JSON, e.g. ["10.0.0.1"])'
    return "; ".join(
        f"MEBUKU_{'_'.join(map(str, err['loc'])).upper()}: "
        + err["msg"].removeprefix("Value error, ")
        for err in e.errors()
    )


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (safe to run twice, or from two processes at once)."""
    s = get_settings()
    try:
        applied = migrator.migrate(
            s.require_database_url(), s, on_apply=lambda m: console.print(f"  applied {m.version}")
        )
    except TimescaleError as e:  # one line that names the fix, no traceback
        console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"[green]{len(applied)} migration(s) applied[/]" if applied else "up to date")


@db_app.command("status")
def db_status() -> None:
    """List applied and pending migrations."""
    s = get_settings()
    table = Table("migration", "applied at", "note")
    pending = 0
    for st in migrator.status(s.require_database_url()):
        pending += st.applied_at is None
        table.add_row(
            st.version,
            st.applied_at.isoformat(timespec="seconds") if st.applied_at else "[yellow]pending[/]",
            "[red]file changed since applied[/]" if st.checksum_changed else "",
        )
    Console().print(table)
    console.print(f"{pending} pending")


@db_app.command("roles")
def db_roles(
    check: bool = typer.Option(
        False, "--check", help="Only list relations with no grant decision; exit 1 if any."
    ),
) -> None:
    """Create the service roles, re-apply core/roles/grants.toml and set the passwords
    given in MEBUKU_DB_<ROLE>_PASSWORD (run as the schema owner; `db migrate` does it too)."""
    import psycopg

    from core import roles

    s = get_settings()
    policy = roles.load_policy()
    with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
        if check:
            missing = roles.uncovered(conn, policy)
        else:
            missing = roles.apply(conn, policy)
            passwords = roles.passwords_from(s, policy)
            roles.set_passwords(conn, passwords, policy)
            table = Table("role", "password", "purpose")
            for short, purpose in policy.roles.items():
                table.add_row(
                    policy.role(short),
                    "set now" if short in passwords else f"unchanged ({roles.password_env(short)})",
                    purpose,
                )
            Console().print(table)
    for rel in missing:
        console.print(f"[red]no grant decision for {rel}[/] (add it to core/roles/grants.toml)")
    if missing:
        raise typer.Exit(1)


@db_app.command("maintain")
def db_maintain() -> None:
    """Refresh rollups and expire old rows (plain PostgreSQL; TimescaleDB uses policies)."""
    s = get_settings()
    try:
        report = timeseries.maintain(s.require_database_url(), s)
    except TimescaleError as e:
        console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(
        f"refreshed {len(report.rollups_refreshed)} rollup(s); expired {report.rows_expired}"
    )


@app.command("demo")
def demo(
    api_port: int = typer.Option(8000, help="Port of the HTTP API."),
) -> None:
    """Run the whole platform with simulated Maebashi traffic until Ctrl-C.

    Starts a private PostgreSQL and Mosquitto under MEBUKU_STATE_DIR (default .mebuku/)
    unless MEBUKU_DATABASE_URL / MEBUKU_MQTT_URL are set.
    """
    from core.demo import run_demo

    run_demo(get_settings(), api_port=api_port)


def _load_plugins() -> None:
    """Add every declared CLI group; a group that fails to import raises PluginError."""
    for p in plugins.load("mebuku.cli"):
        if isinstance(p.obj, typer.Typer):
            app.add_typer(p.obj, name=p.name)
        else:
            app.command(p.name)(p.obj)


def main() -> None:
    try:
        _load_plugins()
    except plugins.PluginError as e:  # the cause's traceback, then one line naming it
        cause = e.__cause__
        if cause is not None:
            traceback.print_exception(cause, file=sys.stderr)
        console.print(f"[red]mebuku: {e}[/]", markup=True, highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    app()


if __name__ == "__main__":
    main()
