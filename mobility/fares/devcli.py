"""``mebuku dev ...``: development-only tools (a test card authority, demo residents).

Every command refuses to run unless ``MEBUKU_ENVIRONMENT=development``: a test CA next to
a production API would let anyone who can read its key sign in as anyone.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import typer

from core.i18n import cli_gettext as _
from core.settings import Settings, get_settings
from mobility.fares import devcard

app = typer.Typer(help=_("Development-only tools (MEBUKU_ENVIRONMENT=development)."))
card_app = typer.Typer(
    help=_("A test card authority: CA, CRL, card certificates, signed challenges, sessions."),
    no_args_is_help=True,
)
app.add_typer(card_app, name="card")

DirOption = typer.Option(
    None, "--dir", help=_("The CA folder (default: <MEBUKU_STATE_DIR>/dev-ca).")
)


def _fail(msg: str, code: int = 2) -> typer.Exit:
    sys.stderr.write(f"mebuku dev: {msg}\n")
    return typer.Exit(code)


def _dev_settings() -> Settings:
    s = get_settings()
    if s.environment != "development":
        raise _fail(
            "refused: development-only; set MEBUKU_ENVIRONMENT=development "
            "(never on a deployment that serves real residents)"
        )
    return s


def _ca(folder: Path | None) -> devcard.DevCA:
    s = _dev_settings()
    return devcard.DevCA(folder or s.state_dir / "dev-ca")


@card_app.command(
    "init",
    help=_("Create the test CA and its CRL (kept if they exist); print the settings to use."),
)
def card_init(folder: Path = DirOption) -> None:
    """Create the test CA and its CRL (kept if they exist); print the settings to use."""
    ca = _ca(folder)
    made = devcard.init_ca(ca)
    said = _("created the test CA in {folder}") if made else _("kept the test CA in {folder}")
    sys.stderr.write(said.format(folder=ca.folder) + "\n")
    print(f"MEBUKU_JPKI_TRUST_ANCHORS={ca.cert_path.absolute()}")
    print(f"MEBUKU_JPKI_CRL={ca.crl_path.absolute()}")


@card_app.command(
    "issue",
    help=_("Issue a test card certificate and key (kept if it exists); print the certificate."),
)
def card_issue(
    name: str = typer.Argument(..., help=_("A name for the card")), folder: Path = DirOption
) -> None:
    """Issue a test card certificate and key (kept if it exists); print the certificate."""
    ca = _ca(folder)
    try:
        devcard.issue_card(ca, name)
        print(devcard.card_certificate_pem(ca, name), end="")
    except devcard.DevCardError as e:
        raise _fail(str(e)) from None


@card_app.command(
    "revoke", help=_("Revoke a test card: a new CRL the API picks up at once (its sessions end).")
)
def card_revoke(name: str = typer.Argument(...), folder: Path = DirOption) -> None:
    """Revoke a test card: a new CRL the API picks up at once (its sessions end)."""
    ca = _ca(folder)
    try:
        serial = devcard.revoke_card(ca, name)
    except devcard.DevCardError as e:
        raise _fail(str(e)) from None
    print(
        _("revoked {name} (serial {serial}) in {crl}").format(
            name=name, serial=f"{serial:x}", crl=ca.crl_path
        )
    )


@card_app.command(
    "sign", help=_("Sign a challenge nonce as the card would; print the base64url signature.")
)
def card_sign(
    name: str = typer.Argument(...),
    nonce: str = typer.Argument(..., help=_("The nonce from POST /v1/auth/challenge")),
    folder: Path = DirOption,
) -> None:
    """Sign a challenge nonce as the card would; print the base64url signature."""
    ca = _ca(folder)
    try:
        print(devcard.sign_nonce(ca, name, nonce))
    except devcard.DevCardError as e:
        raise _fail(str(e)) from None


def _post(url: str, body: dict[str, str] | None) -> dict[str, object]:
    req = urllib.request.Request(  # noqa: S310 (the API's URL, given by the user)
        url,
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        raise _fail(f"{url}: HTTP {e.code}: {detail}", 1) from None
    except urllib.error.URLError as e:
        raise _fail(f"{url}: {e.reason}", 1) from None


def sign_in(ca: devcard.DevCA, name: str, api: str) -> str:
    """The whole card sign-in over HTTP: challenge, signature, session; the token."""
    base = api.rstrip("/")
    nonce = str(_post(f"{base}/v1/auth/challenge", None)["nonce"])
    body = {
        "nonce": nonce,
        "certificate": devcard.card_certificate_pem(ca, name),
        "signature": devcard.sign_nonce(ca, name, nonce),
    }
    return str(_post(f"{base}/v1/auth/session", body)["token"])


@card_app.command(
    "login", help=_("Sign in with a test card (issued if new) and print the session token.")
)
def card_login(
    name: str = typer.Argument(...),
    api: str = typer.Option("http://127.0.0.1:8000", "--api", help=_("The API's base URL.")),
    folder: Path = DirOption,
) -> None:
    """Sign in with a test card (issued if new) and print the session token."""
    ca = _ca(folder)
    try:
        devcard.issue_card(ca, name)
        print(sign_in(ca, name, api))
    except devcard.DevCardError as e:
        raise _fail(str(e)) from None


@app.command("seed", help=_("Seed demo residents, cards and a month of rides (once per database)."))
def seed(
    folder: Path = DirOption,
    days: int = typer.Option(30, min=1, max=60, help=_("Days of ride history.")),
    count: int = typer.Option(36, min=1, max=500, help=_("How many residents.")),
) -> None:
    """Seed demo residents, cards and a month of rides (once per database)."""
    import psycopg

    from mobility.fares.devseed import seed_residents

    ca = _ca(folder)
    s = _dev_settings()
    devcard.init_ca(ca)
    url, key = s.require_database_url(), s.require_pseudonym_key()
    window = timedelta(days=s.fares_submission_window_days)

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            rep = await seed_residents(conn, key, ca, days=days, window=window, count=count)
        if rep is None:
            print(_("demo residents: seeded already"))
            return
        print(
            _(
                "demo residents: {residents} residents, {cards} IC cards, {taps} bus taps "
                "({discounted} discounted), {rides} taxi rides ({subsidised} subsidised)"
            ).format(
                residents=rep.residents,
                cards=rep.cards,
                taps=rep.bus_taps,
                discounted=rep.bus_discounted,
                rides=rep.taxi_rides,
                subsidised=rep.taxi_subsidised,
            )
        )

    asyncio.run(run())
