"""`mebuku demo`: the whole platform on one machine with embedded defaults.

Starts a private PostgreSQL and Mosquitto under the state folder when no
``MEBUKU_DATABASE_URL`` / ``MEBUKU_MQTT_URL`` is configured, generates a pseudonym key
once, migrates, runs the one-shot set-up steps (GTFS import) and then supervises the
services (ingestor, mobility worker, simulator, API) as child ``mebuku`` processes until
Ctrl-C. Core starts them by command name only, so it imports no domain package.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from core import migrator, roles, timeseries
from core.embedded import EmbeddedMosquitto, EmbeddedPostgres, free_port
from core.logging import redact_url
from core.resources import default_gtfs
from core.settings import Settings

log = logging.getLogger(__name__)
console = Console(stderr=True)

DEFAULT_GTFS = default_gtfs()
# Trials whose sites and devices are the ones `mebuku simulate` publishes.
# Found by package name (importlib.resources), not imported as code: core stays domain-free.
DEMO_TRIALS = Path(str(resources.files("fiveg").joinpath("demo_trials")))


@dataclass(frozen=True)
class Command:
    """A `mebuku` command the demo runs: a one-shot set-up step or a supervised service.
    Skipped when its CLI group is absent."""

    group: str
    argv: list[str]
    what: str


def setup_steps(settings: Settings) -> list[Command]:
    gtfs = settings.gtfs_path or DEFAULT_GTFS
    trials = [str(p) for p in sorted(DEMO_TRIALS.glob("*.toml"))]
    return [
        Command("gtfs", ["gtfs", "import", str(gtfs)], f"import GTFS-JP feed {gtfs.name}"),
        # The demo trials start now and last four hours, so KPIs cover only what the
        # simulator has sent (a verdict waits for enough data: "insufficient data").
        Command(
            "fiveg",
            ["fiveg", "load-trial", "--starting-now", "--hours", "4", *trials],
            "register the demo 5G trials (starting now, 4 hours)",
        ),
    ]


def services(api_port: int) -> list[Command]:
    return [
        # One worker on a plain subscription (the default): Mosquitto 2.0 does not keep
        # shared subscriptions across its restarts (ingest/README.md, "Broker findings").
        Command(
            "ingest", ["ingest", "--client-id", "mebuku-ingest-demo"], "MQTT -> database ingestor"
        ),
        Command("mobility", ["mobility", "worker"], "live vehicle state and stop events"),
        Command("simulate", ["simulate"], "simulated Maebashi buses, phones and sensors"),
        Command(
            "api",
            ["api", "--host", "127.0.0.1", "--port", str(api_port)],
            f"HTTP API on http://127.0.0.1:{api_port}/docs",
        ),
    ]


# The database role each service logs in as (core/roles/grants.toml); set-up steps and
# administrative commands keep the owner's URL. The embedded server trusts localhost, so
# the role name is enough; against a server of your own, MEBUKU_DB_<ROLE>_PASSWORD.
SERVICE_DB_ROLES = {"ingest": "ingest", "mobility": "mobility", "api": "api"}


def service_db_url(db_url: str, group: str) -> str | None:
    """The database URL a supervised service gets; None: it needs no database."""
    role = SERVICE_DB_ROLES.get(group)
    if role is None:
        return None
    return roles.role_url(db_url, role, os.environ.get(roles.password_env(role)))


def _available_groups() -> set[str]:
    available = set()
    for ep in metadata.entry_points(group="mebuku.cli"):
        try:
            ep.load()
        except ImportError:
            continue
        available.add(ep.name)
    return available


def _ports(state: Path) -> dict[str, int]:
    """Ports chosen once per state folder, so a restarted demo finds its data again."""
    f = state / "ports.json"
    if f.exists():
        return dict(json.loads(f.read_text()))
    ports = {"postgres": free_port(), "mqtt": free_port()}
    f.write_text(json.dumps(ports))
    return ports


def _pseudonym_key(settings: Settings, state: Path) -> str:
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value()
    f = state / "pseudonym.key"
    if not f.exists():
        f.touch(mode=0o600)
        f.write_text(secrets.token_urlsafe(48))
    return f.read_text().strip()


# API keys the demo creates once per state folder, so a new operator can try every role.
DEMO_KEYS = (
    ("operator", "7070001000969"),  # agency_id of Gunma Chuo Bus in the bundled feed
    ("council", None),
    ("admin", None),
)


def _demo_keys(state: Path, exe: list[str], env: dict[str, str]) -> dict[str, str]:
    """Keys per role, created through `mebuku operators create` on the first run only."""
    f = state / "api-keys.json"
    if f.exists():
        return dict(json.loads(f.read_text()))
    keys: dict[str, str] = {}
    for role, operator_id in DEMO_KEYS:
        argv = [*exe, "operators", "create", "--role", role, "--label", "mebuku demo"]
        if operator_id:
            argv += ["--operator-id", operator_id]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            keys[role] = out.stdout.strip().splitlines()[-1]
    f.touch(mode=0o600)
    f.write_text(json.dumps(keys))
    return keys


def _ensure_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def run_demo(settings: Settings, api_port: int = 8000, maintain_every: float = 60.0) -> None:
    state = settings.state_dir.absolute()
    state.mkdir(parents=True, exist_ok=True)
    ports = _ports(state)
    pg: EmbeddedPostgres | None = None
    broker: EmbeddedMosquitto | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    where = Table("what", "where", title="Mebuku demo")
    where.columns[1].overflow = "fold"
    try:
        db_url = settings.database_url
        if db_url is None:
            pg = EmbeddedPostgres(state / "postgres", ports["postgres"], durable=True)
            pg.start()
            _ensure_database(pg.url(), "mebuku")
            db_url = pg.url("mebuku")
            where.add_row("PostgreSQL (private)", redact_url(db_url))
        else:
            where.add_row("PostgreSQL", redact_url(db_url))
        mqtt_url = settings.mqtt_url
        if mqtt_url is None:
            broker = EmbeddedMosquitto(
                state / "mosquitto",
                ports["mqtt"],
                max_payload_bytes=settings.ingest_max_payload_bytes,  # #10 ingest limits
            )
            broker.start()
            mqtt_url = broker.url
            where.add_row("Mosquitto (private)", redact_url(mqtt_url))
        else:
            where.add_row("MQTT broker", redact_url(mqtt_url))

        env = dict(os.environ)
        env.update(
            MEBUKU_DATABASE_URL=db_url,
            MEBUKU_MQTT_URL=mqtt_url,
            MEBUKU_PSEUDONYM_KEY=_pseudonym_key(settings, state),
        )
        run_settings = settings.model_copy(update={"database_url": db_url, "mqtt_url": mqtt_url})
        applied = migrator.migrate(db_url, run_settings)
        console.print(
            f"migrations: {len(applied)} applied" if applied else "migrations: up to date"
        )

        available = _available_groups()
        exe = [sys.executable, "-m", "core.cli"]
        for step in setup_steps(settings):
            if step.group in available:
                console.print(f"[bold]{step.what}[/] ...")
                subprocess.run([*exe, *step.argv], env=env, check=False)
        for svc in services(api_port):
            if svc.group not in available:
                continue
            svc_env = {k: v for k, v in env.items() if k != "MEBUKU_DATABASE_URL"}
            if (svc_db := service_db_url(db_url, svc.group)) is not None:
                svc_env["MEBUKU_DATABASE_URL"] = svc_db
            children[svc.group] = subprocess.Popen([*exe, *svc.argv], env=svc_env)
            where.add_row(svc.what, f"pid {children[svc.group].pid}: mebuku {' '.join(svc.argv)}")
        if "operators" in available:
            for role, key in _demo_keys(state, exe, env).items():
                where.add_row(f"API key ({role})", f"X-API-Key: {key}")
        where.add_row("state folder", str(state))
        console.print(where)
        console.print("Press Ctrl-C to stop.")

        maintain_url = roles.role_url(
            db_url, "maintain", os.environ.get(roles.password_env("maintain"))
        )
        next_maintenance = time.monotonic() + maintain_every
        while True:
            time.sleep(1)
            for name, proc in list(children.items()):
                if proc.poll() is not None:
                    log.warning("%s exited with %s", name, proc.returncode)
                    del children[name]
            if time.monotonic() >= next_maintenance:
                with contextlib.suppress(psycopg.Error):
                    timeseries.maintain(maintain_url, run_settings)
                next_maintenance = time.monotonic() + maintain_every
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        for proc in children.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in children.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker:
            broker.stop()
        if pg:
            pg.stop()
