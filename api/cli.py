"""``mebuku api`` (serve the API) and ``mebuku operators`` (API keys)."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from api.screen import AccessLogFilter
from core import tables
from core.db import connect
from core.settings import get_settings

console = Console(stderr=True)
operators_app = typer.Typer(
    help="API keys for operators, council and city staff.", no_args_is_help=True
)


DropQueryString = AccessLogFilter  # the earlier name: drops the query, masks 12-digit runs


def serve(
    host: str = typer.Option(None, help="Listen address (default MEBUKU_API_HOST)."),
    port: int = typer.Option(None, help="Listen port (default MEBUKU_API_PORT)."),
) -> None:
    """Serve the HTTP API with uvicorn (OpenAPI at /docs)."""
    import uvicorn

    from api.app import create_app

    s = get_settings()
    app = create_app(s)  # checks every setting a route needs before anything listens
    logging.getLogger("uvicorn.access").addFilter(AccessLogFilter())
    uvicorn.run(
        app,
        host=host or s.api_host,
        port=port or s.api_port,
        log_config=None,  # keep mebuku's logging setup
        proxy_headers=False,
    )


@operators_app.command("create")
def create(
    role: str = typer.Option("operator", help="operator, council or admin."),
    operator_id: str = typer.Option(None, "--operator-id", help="Required for role operator."),
    label: str = typer.Option("", help="A note: who holds the key."),
) -> None:
    """Create an API key and print it once (only its digest is stored)."""
    from api.keys import create_api_key
    from core.operators import registry

    op = registry().get(operator_id) if operator_id else None
    if operator_id and op is None:  # one identity per operator: no key for a stray name
        known = ", ".join(o.id for o in registry().operators)
        sys.stderr.write(
            f"mebuku: operator {operator_id!r} is not in core/operators.toml: add it there "
            f"first, or use its id or corporate number ({known})\n"
        )
        raise typer.Exit(2)
    try:
        with connect(get_settings().require_database_url(), autocommit=True) as conn:
            key = create_api_key(conn, role, operator_id=operator_id, label=label)
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    whose = f"role {role}"
    if op is not None:
        whose += f", operator {op.id} ({op.legal_name})"
    # stderr: what the key is for; stdout: the key alone on its line, never wrapped
    sys.stderr.write(f"New API key for {whose} (shown once; send it as X-API-Key):\n")
    print(key)


@operators_app.command("list")
def list_keys(
    all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
) -> None:
    """List API keys (ids and scopes; secrets cannot be shown)."""
    from api.keys import list_api_keys

    with connect(get_settings().require_database_url(), autocommit=True) as conn:
        keys = list_api_keys(conn, include_revoked=all_)
    table = tables.table("key id", "role", "operator", "label", "created", "last used", "revoked")

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
    for row in rows:
        table.add_row(*row)
    tables.console().print(table)


@operators_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key id from `mebuku operators list`."),
) -> None:
    """Revoke an API key at once."""
    from api.keys import revoke_api_key

    with connect(get_settings().require_database_url(), autocommit=True) as conn:
        if not revoke_api_key(conn, key_id):
            console.print(f"[red]no live key {key_id}[/]")
            raise typer.Exit(1)
    console.print(f"revoked {key_id}")
