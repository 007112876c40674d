"""The ``mebuku`` command. Core owns the root and ``db``; packages add groups.

Groups come from the ``mebuku.cli`` entry-point group (see pyproject.toml and
core/plugins.py), so core never imports a domain package. A group that fails to import
stops ``mebuku`` (exit 1) with its error and the entry point's module named.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from core import cli_words, migrator, plugins, tables, timeseries
from core.broker import app as broker_app
from core.db import TimescaleError
from core.i18n import L_, N_
from core.i18n import cli_gettext as _
from core.logging import settings_secrets, setup_logging
from core.settings import ConfigError, get_settings, load_settings

console = Console(stderr=True)
log = logging.getLogger(__name__)
CONFIG_ERROR_EXIT = 2


cli_words.install()  # typer's and click's own words in the process's language


def report_config_error(e: ConfigError) -> None:
    """The problems, one plain line each, on stderr (no traceback, no markup)."""
    for line in e.problems:
        sys.stderr.write(f"mebuku: {line}\n")
    sys.stderr.flush()


# Why libpq could not connect, in words (the first matching fragment of its message).
_DB_REASONS = (
    ("Connection refused", N_("the server refused the connection (not running, or another port)")),
    ("could not translate host name", N_("the host name is unknown")),
    ("Name or service not known", N_("the host name is unknown")),
    ("timeout expired", N_("the server did not answer in time")),
    ("password authentication failed", N_("the user name or password was refused")),
    ("no password supplied", N_("the server asks for a password and none was given")),
    ("does not exist", N_("the database or user does not exist")),
    ("No such file or directory", N_("no server listens on that socket")),
)


def database_unreachable(e: Exception) -> str:
    """One line saying the database could not be reached and why (libpq's reason put in
    words when it is a usual one, else its first line)."""
    text = str(e)
    why = next((_(words) for frag, words in _DB_REASONS if frag in text), None)
    if why is None:
        why = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return _("the database cannot be reached ({variable}): {reason}").format(
        variable="MEBUKU_DATABASE_URL", reason=why
    )


class MebukuGroup(TyperGroup):
    """The root group: a :class:`ConfigError` from any command, at any depth, becomes one
    line per problem and exit status 2; a database that cannot be reached, one line and 1."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context (typer vendors its own click)
        """Turn a configuration error raised in any command into one line per problem and exit 2."""
        import psycopg

        try:
            return super().invoke(ctx)
        except ConfigError as e:
            report_config_error(e)
            raise typer.Exit(CONFIG_ERROR_EXIT) from None
        except psycopg.OperationalError as e:
            if e.sqlstate is not None and not str(e).startswith("connection failed"):
                raise  # the server answered: a real error, with its traceback
            report_config_error(ConfigError([database_unreachable(e)]))
            raise typer.Exit(1) from None


app = typer.Typer(
    name="mebuku",
    help=_("Maebashi's MaaS and local-5G data platform."),
    no_args_is_help=True,
    rich_markup_mode="rich",
    cls=MebukuGroup,
)
db_app = typer.Typer(help=_("Database schema: migrate, status, maintenance."), no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")


@app.callback()
def _root(
    ctx: typer.Context,
    log_level: str = typer.Option(None, help=_("Override MEBUKU_LOG_LEVEL.")),
    log_format: str = typer.Option(None, help=_("text or json (override MEBUKU_LOG_FORMAT).")),
) -> None:
    try:
        s = get_settings()  # every command starts by validating every setting
    except ConfigError:
        if not set(ctx.help_option_names) & set(sys.argv[1:]):
            raise
        setup_logging(log_level or "INFO", log_format or "text")  # --help still works
        return
    setup_logging(log_level or s.log_level, log_format or s.log_format, settings_secrets(s))
    if s.demo_env_file is not None:
        log.debug(
            L_("connection settings not set: using the running demo's from %s"), s.demo_env_file
        )


@db_app.command(
    "migrate",
    help=_("Apply pending migrations (safe to run twice, or from two processes at once)."),
)
def db_migrate() -> None:
    """Apply pending migrations (safe to run twice, or from two processes at once)."""
    s = get_settings()
    try:
        applied = migrator.migrate(
            s.require_database_url(),
            s,
            on_apply=lambda m: console.print(_("  applied {version}").format(version=m.version)),
        )
    except TimescaleError as e:  # one line that names the fix, no traceback
        console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(
        "[green]" + _("{n} migration(s) applied").format(n=len(applied)) + "[/]"
        if applied
        else _("up to date")
    )


@db_app.command("status", help=_("List applied and pending migrations."))
def db_status() -> None:
    """List applied and pending migrations."""
    s = get_settings()
    table = tables.table(_("migration"), _("applied at"), _("note"))
    pending = 0
    for st in migrator.status(s.require_database_url()):
        pending += st.applied_at is None
        table.add_row(
            st.version,
            st.applied_at.isoformat(timespec="seconds")
            if st.applied_at
            else "[yellow]" + _("pending") + "[/]",
            "[red]" + _("file changed since applied") + "[/]" if st.checksum_changed else "",
        )
    tables.console().print(table)
    console.print(_("{n} pending").format(n=pending))


@db_app.command(
    "roles",
    help=_(
        "Create the service roles, re-apply core/roles/grants.toml and set the passwords "
        "given in MEBUKU_DB_<ROLE>_PASSWORD (run as the schema owner; `db migrate` does it too)."
    ),
)
def db_roles(
    check: bool = typer.Option(
        False, "--check", help=_("Only list relations with no grant decision; exit 1 if any.")
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
            table = tables.table(_("role"), _("password"), _("purpose"))
            for short, purpose in policy.roles.items():
                table.add_row(
                    policy.role(short),
                    _("set now")
                    if short in passwords
                    else _("unchanged ({variable})").format(variable=roles.password_env(short)),
                    purpose,
                )
            tables.console().print(table)
    for rel in missing:
        console.print(
            "[red]"
            + _("no grant decision for {relation}").format(relation=rel)
            + "[/] "
            + _("(add it to core/roles/grants.toml)")
        )
    if missing:
        raise typer.Exit(1)


@db_app.command(
    "maintain",
    help=_("Refresh rollups and expire old rows (plain PostgreSQL; TimescaleDB uses policies)."),
)
def db_maintain() -> None:
    """Refresh rollups and expire old rows (plain PostgreSQL; TimescaleDB uses policies)."""
    s = get_settings()
    try:
        report = timeseries.maintain(s.require_database_url(), s)
    except TimescaleError as e:
        console.print(str(e), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(
        _("refreshed {n} rollup(s); expired {rows}").format(
            n=len(report.rollups_refreshed), rows=report.rows_expired
        )
    )


@app.command(
    "demo",
    help=_(
        "Run the whole platform with simulated Maebashi traffic until Ctrl-C or SIGTERM.\n\n"
        "Starts a private PostgreSQL and Mosquitto under MEBUKU_STATE_DIR (default .mebuku/) "
        "unless MEBUKU_DATABASE_URL / MEBUKU_MQTT_URL are set. A port that is not given and "
        "whose usual number is taken is replaced by a free one (the log says so)."
    ),
)
def demo(
    api_port: int = typer.Option(
        None, min=1, max=65535, help=_("API port (MEBUKU_API_PORT, 8000).")
    ),
    metrics_port: int = typer.Option(
        None, min=1, max=65535, help=_("Ingestor metrics port (MEBUKU_METRICS_PORT, 9108).")
    ),
    mobility_metrics_port: int = typer.Option(
        None,
        min=1,
        max=65535,
        help=_("Mobility worker metrics port (MEBUKU_MOBILITY_METRICS_PORT, 9109)."),
    ),
    postgres_port: int = typer.Option(
        None,
        min=1,
        max=65535,
        help=_("Private PostgreSQL port (MEBUKU_DEMO_POSTGRES_PORT; default: kept)."),
    ),
    mqtt_port: int = typer.Option(
        None,
        min=1,
        max=65535,
        help=_("Private Mosquitto port (MEBUKU_DEMO_MQTT_PORT; default: kept)."),
    ),
    ready_timeout: float = typer.Option(
        180, help=_("Seconds to wait for every service's health check.")
    ),
) -> None:
    """Run the whole platform with simulated Maebashi traffic until Ctrl-C or SIGTERM.

    Starts a private PostgreSQL and Mosquitto under MEBUKU_STATE_DIR (default .mebuku/)
    unless MEBUKU_DATABASE_URL / MEBUKU_MQTT_URL are set. A port that is not given and
    whose usual number is taken is replaced by a free one (the log says so).
    """
    from core.demo import run_demo

    # The demo's own settings never come from a running demo's state folder.
    s = load_settings(demo_state=False)
    given = {
        "api_port": api_port,
        "metrics_port": metrics_port,
        "mobility_metrics_port": mobility_metrics_port,
        "demo_postgres_port": postgres_port,
        "demo_mqtt_port": mqtt_port,
    }
    s = s.model_copy(update={k: v for k, v in given.items() if v is not None})
    fixed = {k for k, v in given.items() if v is not None} | set(s.model_fields_set)
    raise typer.Exit(run_demo(s, fixed, ready_timeout=ready_timeout))


def _load_plugins() -> None:
    """Add every declared CLI group; a group that fails to import raises PluginError."""
    for p in plugins.load("mebuku.cli"):
        if isinstance(p.obj, typer.Typer):
            app.add_typer(p.obj, name=p.name)
        else:
            app.command(p.name)(p.obj)


def main() -> None:
    """The ``mebuku`` entry point: a domain that fails to import stops the program with its error
    instead of its commands silently vanishing."""
    try:
        _load_plugins()
    except plugins.PluginError as e:  # the cause's traceback, then one line naming it
        cause = e.__cause__
        if cause is not None:
            traceback.print_exception(cause, file=sys.stderr)
        console.print(f"[red]mebuku: {e}[/]", markup=True, highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    try:
        app()
    except ConfigError as e:  # raised outside a command (e.g. while loading plugins)
        report_config_error(e)
        raise SystemExit(CONFIG_ERROR_EXIT) from None


if __name__ == "__main__":
    main()
