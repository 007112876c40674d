"""Mosquitto access control generated from the registries: ``mebuku broker acl|passwd``.

A device's broker user name is its registry id. A bus may publish only the streams whose
topic has exactly a ``{vehicle_id}`` (``maebashi/bus/{vehicle_id}/telemetry|event``), for its
own vehicle id; a 5G device only the streams with ``{site_id}`` and ``{device_id}``
(``maebashi/5g/{site_id}/{device_id}/radio|senml|status``), for its own device id and the
sites of the trials it is registered in. The topics come from the stream catalogue
(``mebuku.streams``, :mod:`core.streams`), so a new stream needs no edit here. The ACL
has no ``pattern`` lines, so nothing is granted that is not listed under an account, and
Mosquitto denies the rest (a denied QoS 1 publish
gets PUBACK 0x87 "not authorized" in MQTT 5; a denied QoS 0 publish is dropped and the
connection closed, eclipse-mosquitto/mosquitto#2579).

Core never imports a domain: registries contribute accounts through the
``mebuku.broker`` entry-point group, each a ``def accounts(conn) -> list[Account]``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import typer

from core import plugins, streams
from core.i18n import cli_gettext as _
from core.settings import get_settings

log = logging.getLogger(__name__)

# Ids that are safe as one MQTT topic level and as an ACL/password-file user name:
# no "/", "+", "#", ":", whitespace or control characters.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

INGEST_USER = "mebuku-ingest"
SIMULATOR_USER = "mebuku-simulator"

# Mosquitto 2's "$7$" password hash: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash. The
# broker reads the iteration count from each line; mosquitto_passwd uses 101, we use more.
HASH_ITERATIONS = 20_000


@dataclass(frozen=True)
class Account:
    """One broker user and exactly the topics it may publish (write) or subscribe (read)."""

    username: str
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    note: str = ""


def bus_account(vehicle_id: str, note: str = "") -> Account:
    """A bus: every catalogue stream keyed by ``{vehicle_id}``, for its own id only."""
    return Account(vehicle_id, write=streams.device_topics(vehicle_id=vehicle_id), note=note)


def fiveg_account(device_id: str, site_ids: Iterable[str], note: str = "") -> Account:
    """A 5G device: every catalogue stream keyed by ``{site_id}/{device_id}``, for its own
    id under each of its sites."""
    topics = [
        t
        for site in sorted(set(site_ids))
        for t in streams.device_topics(site_id=site, device_id=device_id)
    ]
    return Account(device_id, write=tuple(topics), note=note)


def service_accounts(*, simulator: bool) -> list[Account]:
    """The platform's own users: the ingestor reads everything, the demo simulator writes."""
    found = [Account(INGEST_USER, read=("maebashi/#",), note="ingest workers")]
    if simulator:
        found.append(
            Account(
                SIMULATOR_USER,
                write=("maebashi/bus/#", "maebashi/5g/#"),
                note="mebuku simulate (demo traffic; leave out in production)",
            )
        )
    return found


def merge_accounts(
    services: list[Account], devices: Iterable[Account]
) -> tuple[list[Account], list[str]]:
    """Services first, then devices by name (one entry per user name, topics merged).

    Returns the accounts and a problem line for each device refused: an id that is not
    :data:`SAFE_ID` or that names a service account. Pure.
    """
    problems: list[str] = []
    reserved = {a.username for a in services}
    by_name: dict[str, Account] = {}
    for a in devices:
        if not SAFE_ID.fullmatch(a.username):
            problems.append(f"{a.username!r}: not a safe broker id ({a.note or 'device'})")
            continue
        if a.username in reserved:
            problems.append(f"{a.username!r}: is a service account name ({a.note or 'device'})")
            continue
        bad = [t for t in a.write + a.read if not _safe_topic(t)]
        if bad:
            problems.append(f"{a.username!r}: unsafe topic {bad[0]!r}")
            continue
        if (prev := by_name.get(a.username)) is not None:
            notes = "; ".join(n for n in (prev.note, a.note) if n)
            a = Account(
                a.username,
                tuple(dict.fromkeys(prev.write + a.write)),
                tuple(dict.fromkeys(prev.read + a.read)),
                notes,
            )
        by_name[a.username] = a
    return [*services, *(by_name[k] for k in sorted(by_name))], problems


def _safe_topic(topic: str) -> bool:
    levels = topic.split("/")
    return all(level and (SAFE_ID.fullmatch(level) or level == "#") for level in levels)


def render_acl(accounts: Iterable[Account]) -> str:
    """A Mosquitto ``acl_file``: one ``user`` block per account, no patterns. Pure."""
    out = [
        "# Generated by `mebuku broker acl` from the vehicle and 5G device registries.",
        "# Do not edit: register devices, then generate again (see docs/security.md).",
        "# No pattern lines: an account may use exactly the topics listed under it.",
    ]
    for a in accounts:
        out.append("")
        if a.note:
            out.append(f"# {a.note}")
        out.append(f"user {a.username}")
        out += [f"topic write {t}" for t in a.write]
        out += [f"topic read {t}" for t in a.read]
    return "\n".join(out) + "\n"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file hash (``$7$``) of ``password``."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${HASH_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def set_passwords(path: Path, passwords: dict[str, str]) -> None:
    """Write ``user:hash`` lines for these users into a password file, keeping the others."""
    kept: list[str] = []
    if path.exists():
        kept = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and line.split(":", 1)[0] not in passwords
        ]
    lines = kept + [f"{user}:{hash_password(pw)}" for user, pw in passwords.items()]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)


AccountSource = Callable[[psycopg.Connection], list[Account]]


def registry_accounts(conn: psycopg.Connection) -> list[Account]:
    """Every device account the installed registries contribute (``mebuku.broker``)."""
    found: list[Account] = []
    for p in plugins.load("mebuku.broker"):  # a registry that fails to import stops here
        source: AccountSource = p.obj
        found += source(conn)
    return found


app = typer.Typer(help=_("MQTT broker access: ACL and password file."), no_args_is_help=True)


@app.command(
    "acl",
    help=_("Print the Mosquitto ACL for every registered bus and 5G device, and the services."),
)
def acl(
    simulator: bool = typer.Option(
        True, help=_("Include the demo simulator's account (write maebashi/bus/# and 5g/#).")
    ),
    output: Path = typer.Option(None, "-o", "--output", help=_("Write here (default stdout).")),
) -> None:
    """Print the Mosquitto ACL for every registered bus and 5G device, and the services."""
    s = get_settings()
    with psycopg.connect(s.require_database_url(), autocommit=True) as conn:
        devices = registry_accounts(conn)
    accounts, problems = merge_accounts(service_accounts(simulator=simulator), devices)
    for p in problems:
        typer.echo(_("left out {account}").format(account=p), err=True)
    text = render_acl(accounts)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
    typer.echo(
        _("{n} accounts, {left} left out").format(n=len(accounts), left=len(problems)), err=True
    )


@app.command(
    "passwd",
    help=_(
        "Give each user a new random password: its hash goes into FILE, the password is "
        "printed once (``user<TAB>password`` on stdout) for the device's provisioning."
    ),
)
def passwd(
    users: list[str] = typer.Argument(..., help=_("Broker user names (vehicle or device ids).")),
    file: Path = typer.Option(..., "--file", "-f", help=_("Mosquitto password file to update.")),
) -> None:
    """Give each user a new random password: its hash goes into FILE, the password is
    printed once (``user<TAB>password`` on stdout) for the device's provisioning."""
    bad = [u for u in users if not SAFE_ID.fullmatch(u)]
    if bad:
        typer.echo(_("not a safe broker id: {ids}").format(ids=", ".join(map(repr, bad))), err=True)
        raise typer.Exit(2)
    fresh = {u: secrets.token_urlsafe(24) for u in users}
    set_passwords(file, fresh)
    for user, pw in fresh.items():
        sys.stdout.write(f"{user}\t{pw}\n")
