"""``mebuku portal ...``: the notice sender and its VAPID key."""

from __future__ import annotations

import asyncio
import logging
import sys

import typer

from core.i18n import L_
from core.i18n import cli_gettext as _
from core.settings import get_settings

app = typer.Typer(help=_("The resident portal: push notices (Web Push)."), no_args_is_help=True)
log = logging.getLogger(__name__)


@app.command(
    "vapid-key",
    help=_("Print a new VAPID private key (PEM) for MEBUKU_PORTAL_VAPID_PRIVATE_KEY."),
)
def vapid_key() -> None:
    """Print a new VAPID private key (PEM) for MEBUKU_PORTAL_VAPID_PRIVATE_KEY."""
    from portal.push import new_vapid_key

    print(new_vapid_key(), end="")


@app.command(
    "notify",
    help=_(
        "Queue notices for new rides, taps, lost cards and late buses, and deliver them "
        "(at-least-once, retried, quiet hours respected)."
    ),
)
def notify(
    once: bool = typer.Option(
        False, "--once", help=_("One scan and one delivery round, then exit.")
    ),
    interval: float = typer.Option(15.0, min=1.0, help=_("Seconds between rounds.")),
) -> None:
    """Queue notices for new rides, taps, lost cards and late buses, and deliver them
    (at-least-once, retried, quiet hours respected)."""
    import psycopg

    from portal import notices
    from portal.push import load_vapid, webpush_sender

    s = get_settings().require("database_url", "portal_vapid_private_key")
    assert s.portal_vapid_private_key is not None
    send = webpush_sender(
        load_vapid(s.portal_vapid_private_key.get_secret_value()), s.portal_vapid_subject
    )
    url = s.require_database_url()

    async def rounds() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while True:
                queued = await notices.scan(conn)
                sent = await notices.deliver_due(conn, send)
                if queued or sent:
                    log.info(L_("notices: %d queued, %d delivered"), queued, sent)
                if once:
                    return
                await asyncio.sleep(interval)

    try:
        asyncio.run(rounds())
    except KeyboardInterrupt:
        sys.exit(0)
