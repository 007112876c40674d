"""``mebuku api`` (serve the API) and ``mebuku operators`` (API keys)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from api.screen import AccessLogFilter
from core import tables
from core.db import connect
from core.i18n import N_
from core.i18n import cli_gettext as _
from core.logging import settings_secrets, setup_logging
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

console = Console(stderr=True)
operators_app = typer.Typer(
    help=_("API keys for operators, council and city staff."), no_args_is_help=True
)


ROLE_LABELS = {
    "operator": N_("operator"),
    "council": N_("council"),
    "admin": N_("city staff (admin)"),
    "resident": N_("resident"),
}

DropQueryString = AccessLogFilter  # the earlier name: drops the query, masks 12-digit runs

# How `mebuku api` runs uvicorn; bench/fares_api_bench.py serves with exactly these, so its
# CPU per request is this configuration's. httptools and uvloop come with uvicorn[standard].
UVICORN_OPTIONS: dict[str, Any] = {
    "http": "httptools",
    "loop": "uvloop",
    "log_config": None,  # keep mebuku's logging setup: the access log goes through it
    "proxy_headers": False,  # client addresses: core.web.client_address (trusted proxies)
}


def install_access_log_filter() -> None:
    """Route uvicorn's access log (one line per request, on whenever mebuku's logging is set
    up at INFO) through :class:`AccessLogFilter`, once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFilter) for f in access.filters):
        access.addFilter(AccessLogFilter())


# What a log record would compute for these fields only (logging's documented switches:
# the caller's frame, thread, process); mebuku's formatters print none of them.
_RECORD_EXTRAS = (
    *("pathname", "filename", "module", "funcName", "lineno", "stack_info"),
    *("thread", "threadName", "process", "processName"),
)


def lean_log_records() -> bool:
    """Let the serving process skip finding the caller's frame, thread and process for each
    log record (about a fifth of an access-log line's CPU) when no installed formatter
    prints them, so every line reads the same; True when switched."""
    for handler in logging.getLogger().handlers:
        fmt = getattr(handler.formatter, "_fmt", None) or ""
        if handler.formatter is None or any(f"%({f})" in fmt for f in _RECORD_EXTRAS):
            return False
    logging._srcfile = None  # see the logging HOWTO, Optimization
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    return True


def serving_app(settings: Settings | None = None) -> FastAPI:
    """The API as ``mebuku api`` serves it, built in the process that serves it.

    A uvicorn worker process (``--workers`` above 1) starts without mebuku's logging, so
    it is set up here from the settings when the process has none; the access log is
    filtered the same way in every process.
    """
    from api.app import create_app

    s = settings or get_settings()
    if not logging.getLogger().handlers:
        setup_logging(s.log_level, s.log_format, settings_secrets(s))
        lean_log_records()  # this process's records only; mebuku's formatters print the same
    install_access_log_filter()
    return create_app(s)


def serve(
    host: str = typer.Option(None, help=_("Listen address (default MEBUKU_API_HOST).")),
    port: int = typer.Option(None, help=_("Listen port (default MEBUKU_API_PORT).")),
    workers: int = typer.Option(
        1, min=1, help=_("Worker processes (one per core serves the most requests).")
    ),
) -> None:
    """Serve the HTTP API with uvicorn (OpenAPI at /docs)."""
    import uvicorn

    s = get_settings()
    app = serving_app(s)  # checks every setting a route needs before anything listens
    options: dict[str, Any] = {
        "host": host or s.api_host,
        "port": port or s.api_port,
        **UVICORN_OPTIONS,
    }
    if workers == 1:
        uvicorn.run(app, **options)
    else:  # each worker process builds its own app (and logging) from the same settings
        uvicorn.run("api.cli:serving_app", factory=True, workers=workers, **options)


@operators_app.command(
    "create", help=_("Create an API key and print it once (only its digest is stored).")
)
def create(
    role: str = typer.Option("operator", help=_("operator, council or admin.")),
    operator_id: str = typer.Option(None, "--operator-id", help=_("Required for role operator.")),
    label: str = typer.Option("", help=_("A note: who holds the key.")),
) -> None:
    """Create an API key and print it once (only its digest is stored)."""
    from api.keys import create_api_key
    from core.operators import registry

    op = registry().get(operator_id) if operator_id else None
    if operator_id and op is None:  # one identity per operator: no key for a stray name
        known = ", ".join(o.id for o in registry().operators)
        message = _(
            "operator {operator!r} is not in core/operators.toml: add it there first, or use "
            "its id or corporate number ({known})"
        ).format(operator=operator_id, known=known)
        sys.stderr.write(f"mebuku: {message}\n")
        raise typer.Exit(2)
    try:
        with connect(get_settings().require_database_url(), autocommit=True) as conn:
            key = create_api_key(conn, role, operator_id=operator_id, label=label)
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    whose = _("role {role}").format(role=_(ROLE_LABELS.get(role, role)))
    if op is not None:
        whose += _(", operator {id} ({name})").format(id=op.id, name=op.legal_name)
    # stderr: what the key is for; stdout: the key alone on its line, never wrapped
    sys.stderr.write(
        _("New API key for {whose} (shown once; send it as X-API-Key):").format(whose=whose) + "\n"
    )
    print(key)


@operators_app.command("list", help=_("List API keys (ids and scopes; secrets cannot be shown)."))
def list_keys(
    all_: bool = typer.Option(False, "--all", help=_("Include revoked keys.")),
) -> None:
    """List API keys (ids and scopes; secrets cannot be shown)."""
    from api.keys import list_api_keys

    with connect(get_settings().require_database_url(), autocommit=True) as conn:
        keys = list_api_keys(conn, include_revoked=all_)
    table = tables.table(
        _("key id"),
        _("role"),
        _("operator"),
        _("label"),
        _("created"),
        _("last used"),
        _("revoked"),
    )

    def when(t: object) -> str:
        return t.isoformat(timespec="seconds") if hasattr(t, "isoformat") else ""

    rows = [
        (
            k.key_id,
            k.role.value,
            k.operator_id or "",
            k.label,
            when(k.created_at),
            when(k.last_used_at),
            when(k.revoked_at),
        )
        for k in keys
    ]
    if not sys.stdout.isatty():  # scripts get tab-separated lines
        for row in rows:
            print("\t".join(row))
        return
    from core.operators import registry

    names = {o.id: o.legal_name for o in registry().operators}
    for row in rows:
        operator = f"{row[2]}（{names[row[2]]}）" if row[2] in names else row[2]
        table.add_row(row[0], _(ROLE_LABELS.get(row[1], row[1])), operator, *row[3:])
    tables.console().print(table)


@operators_app.command("revoke", help=_("Revoke an API key at once."))
def revoke(
    key_id: str = typer.Argument(..., help=_("The key id from `mebuku operators list`.")),
) -> None:
    """Revoke an API key at once."""
    from api.keys import revoke_api_key

    with connect(get_settings().require_database_url(), autocommit=True) as conn:
        if not revoke_api_key(conn, key_id):
            console.print("[red]" + _("no live key {key}").format(key=key_id) + "[/]")
            raise typer.Exit(1)
    console.print(_("revoked {key}").format(key=key_id))


# `api` is a top-level command (entry point): its help is its docstring, in the locale.
serve.__doc__ = _("Serve the HTTP API with uvicorn (OpenAPI at /docs).")
