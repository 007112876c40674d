"""`mebuku demo`: the whole platform on one machine with embedded defaults, supervised.

Starts a private PostgreSQL and Mosquitto under the state folder when no
``MEBUKU_DATABASE_URL`` / ``MEBUKU_MQTT_URL`` is configured, generates a pseudonym key
once, migrates, runs the one-shot set-up steps (GTFS import, demo trials, API keys) and
then supervises the services (ingestor, mobility worker, simulator, API) as child
``mebuku`` processes. Core starts them by command name only, so it imports no domain
package.

The demo and its children are one unit:

- every port can be set; a port that is not set and whose usual number is taken is
  replaced by a free one (the log says so);
- each child runs in its own process group and is restarted with backoff when it exits;
  when it keeps failing (:data:`MAX_FAILURES` exits within :data:`FAILURE_WINDOW_S`) the
  demo stops and prints the child's last log lines;
- SIGTERM, SIGHUP and SIGINT stop every child, then the broker, then the database;
- servers and children left running by a previous demo that was killed are stopped
  before anything starts;
- the "what runs where" table is printed only once every service answers its health
  check.

While it runs, ``demo.json`` in the state folder holds the pids, ports and readiness, and
``demo.env`` (mode 0600) the URLs and key other ``mebuku`` commands use.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path
from types import FrameType
from typing import IO

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from core import migrator, roles, tables, timeseries
from core.embedded import (
    EmbeddedMosquitto,
    EmbeddedPostgres,
    EmbeddedServerError,
    free_port,
    pid_alive,
    pid_cmdline,
    stop_pid,
)
from core.i18n import L_
from core.i18n import cli_gettext as _
from core.logging import redact_url
from core.resources import default_gtfs
from core.settings import (
    DEMO_ENV_FILE,
    ConfigError,
    Settings,
    env_name,
    write_demo_env,
)

log = logging.getLogger(__name__)
console = Console(stderr=True)

DEFAULT_GTFS = default_gtfs()
# Trials whose sites and devices are the ones `mebuku simulate` publishes.
# Found by package name (importlib.resources), not imported as code: core stays domain-free.
DEMO_TRIALS = Path(str(resources.files("fiveg").joinpath("demo_trials")))

STATE_FILE = "demo.json"
MAX_FAILURES = 5  # exits of one child within FAILURE_WINDOW_S that stop the demo
FAILURE_WINDOW_S = 60.0
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # wait before the 1st, 2nd, ... restart in a row
STOP_TIMEOUT_S = 20.0  # SIGTERM, then SIGKILL of the child's process group
TAIL_LINES = 20


@dataclass(frozen=True)
class Command:
    """A `mebuku` command the demo runs: a one-shot set-up step or a supervised service.
    Skipped when its CLI group is absent. ``env`` is added to the child's environment
    (e.g. another database user); ``health`` is the URL that answers 200 when it is up
    (None: running is enough)."""

    group: str
    argv: list[str]
    what: str
    env: dict[str, str] = field(default_factory=dict)
    health: str | None = None
    once: bool = True  # False: run at every start (cheap and idempotent, e.g. a CRL refresh)
    key: str = ""  # what set-up-done.json records it under (default: its group)


@dataclass(frozen=True)
class DemoPorts:
    """Every port the demo uses. ``notes`` says which usual ports were taken."""

    api: int
    metrics: int
    mobility_metrics: int
    postgres: int
    mqtt: int
    notes: tuple[str, ...] = ()


DEV_CA = "dev-ca"  # the demo's test card authority, under the state folder
DEV = {"MEBUKU_ENVIRONMENT": "development"}


def dev_card_env(settings: Settings, state: Path) -> dict[str, str]:
    """Card sign-in for the demo (issue 13): its test CA and CRL, unless trust anchors are
    configured. Development only, which the demo is."""
    if settings.jpki_trust_anchors is not None:
        return {}
    ca = (state / DEV_CA).absolute()
    return {
        **DEV,
        "MEBUKU_JPKI_TRUST_ANCHORS": str(ca / "ca.crt"),
        "MEBUKU_JPKI_CRL": str(ca / "crl.pem"),
    }


def setup_steps(
    settings: Settings, state: Path | None = None, api_port: int = 8000
) -> list[Command]:
    """The one-shot set-up commands of a demo run, in order; kept as data so the fingerprint of each
    step decides whether it runs again."""
    gtfs = settings.gtfs_path or DEFAULT_GTFS
    trials = [str(p) for p in sorted(DEMO_TRIALS.glob("*.toml"))]
    dev: list[Command] = []
    if state is not None and settings.jpki_trust_anchors is None:
        ca = str((state / DEV_CA).absolute())
        dev = [
            # Every start: creates the test CA once, re-signs a CRL close to its nextUpdate.
            Command(
                "dev",
                ["dev", "card", "init", "--dir", ca],
                _("test card authority"),
                DEV,
                once=False,
                key="dev card",
            ),
            Command(
                "dev",
                ["dev", "seed", "--dir", ca],
                _("seed demo residents, IC cards and a month of rides"),
                DEV,
                key="dev seed",
            ),
        ]
    return [
        Command(
            "gtfs",
            ["gtfs", "import", str(gtfs)],
            _("import GTFS-JP feed {name}").format(name=gtfs.name),
        ),
        # The demo trials start now and last four hours, so KPIs cover only what the
        # simulator has sent (a verdict waits for enough data: "insufficient data").
        Command(
            "fiveg",
            ["fiveg", "load-trial", "--starting-now", "--hours", "4", *trials],
            _("register the demo 5G trials (starting now, 4 hours)"),
        ),
        *dev,
        # Issue 16: towns, then a first open-data release (after the seed), served at /open.
        Command("opendata", ["opendata", "towns"], _("load town blocks"), key="opendata towns"),
        Command(
            "opendata",
            ["opendata", "publish", "--base-url", f"http://127.0.0.1:{api_port}/open/"],
            _("publish the first open-data release"),
            key="opendata publish",
        ),
    ]


def services(ports: DemoPorts) -> list[Command]:
    """The supervised services, in start order (stopped in reverse)."""
    local = "http://127.0.0.1"
    return [
        # One worker on a plain subscription (the default): Mosquitto 2.0 does not keep
        # shared subscriptions across its restarts (ingest/README.md, "Broker findings").
        Command(
            "ingest",
            ["ingest", "--client-id", "mebuku-ingest-demo", "--metrics-port", str(ports.metrics)],
            _("MQTT -> database ingestor"),
            health=f"{local}:{ports.metrics}/metrics",
        ),
        Command(
            "mobility",
            ["mobility", "worker", "--metrics-port", str(ports.mobility_metrics)],
            _("live vehicle state and stop events"),
            health=f"{local}:{ports.mobility_metrics}/metrics",
        ),
        Command("simulate", ["simulate"], _("simulated Maebashi buses, phones and sensors")),
        Command(
            "api",
            ["api", "--host", "127.0.0.1", "--port", str(ports.api)],
            _("HTTP API on {url}").format(url=f"{local}:{ports.api}/docs"),
            health=f"{local}:{ports.api}/readyz",
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


def _service_env(env: dict[str, str], db_url: str, svc: Command) -> dict[str, str]:
    """The child's environment: the shared one, its own database role, its own extras."""
    out = {k: v for k, v in env.items() if k != "MEBUKU_DATABASE_URL"}
    if (svc_db := service_db_url(db_url, svc.group)) is not None:
        out["MEBUKU_DATABASE_URL"] = svc_db
    return {**out, **svc.env}


def _available_groups() -> set[str]:
    available = set()
    for ep in metadata.entry_points(group="mebuku.cli"):
        try:
            ep.load()
        except ImportError:
            continue
        available.add(ep.name)
    return available


# --- ports -----------------------------------------------------------------------------


def port_free(port: int) -> bool:
    """True when a server could listen on ``port`` (any address) now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 (a probe: any listener conflicts)
        except OSError:
            return False
    return True


# Setting field, CLI option, default (None: kept per state folder in ports.json).
_PORTS: dict[str, tuple[str, str, int | None]] = {
    "api": ("api_port", "--api-port", 8000),
    "metrics": ("metrics_port", "--metrics-port", 9108),
    "mobility_metrics": ("mobility_metrics_port", "--mobility-metrics-port", 9109),
    "postgres": ("demo_postgres_port", "--postgres-port", None),
    "mqtt": ("demo_mqtt_port", "--mqtt-port", None),
}


def choose_ports(settings: Settings, fixed: set[str], state: Path) -> DemoPorts:
    """Each port: as set (it must be free), else the usual one, else a free one.

    The private servers' usual ports are chosen once per state folder (``ports.json``), so
    a restarted demo finds its data again. ``fixed`` names the settings given explicitly.
    """
    f = state / "ports.json"
    kept: dict[str, int] = json.loads(f.read_text()) if f.exists() else {}
    chosen: dict[str, int] = {}
    notes: list[str] = []
    problems: list[str] = []
    for name, (setting, option, default) in _PORTS.items():
        value: int | None = getattr(settings, setting)
        if setting in fixed and value is not None:
            if not port_free(value):
                problems.append(
                    _(
                        "{variable} / {option}: port {port} is in use: "
                        "set another port or stop what listens there"
                    ).format(variable=env_name(setting), option=option, port=value)
                )
            chosen[name] = value
            continue
        usual = kept.get(name) if default is None else (value or default)
        if usual is not None and usual not in chosen.values() and port_free(usual):
            chosen[name] = usual
            continue
        port = free_port()
        while port in chosen.values():
            port = free_port()
        if usual is not None:
            notes.append(
                _("port {usual} ({name}) is in use: using {port} ({variable})").format(
                    usual=usual, name=name, port=port, variable=env_name(setting)
                )
            )
        chosen[name] = port
    if problems:
        raise ConfigError(problems)
    f.write_text(json.dumps({"postgres": chosen["postgres"], "mqtt": chosen["mqtt"]}))
    return DemoPorts(**chosen, notes=tuple(notes))


# --- state, secrets, seed --------------------------------------------------------------


def _pseudonym_key(settings: Settings, state: Path) -> str:
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value()
    f = state / "pseudonym.key"
    if not f.exists():
        f.touch(mode=0o600)
        f.write_text(secrets.token_urlsafe(48))
    return f.read_text().strip()


# API keys the demo creates once per state folder, so a new operator can try every role.
# Operator ids are those of the operators registry (core/operators.toml).
DEMO_KEYS = (
    ("operator", "gunmachuo"),  # Gunma Chuo Bus (agency 7070001000969 in the bundled feed)
    ("operator", "demo-taxi"),  # the demo's MyTaku taxi company
    ("council", None),
    ("admin", None),
)
KEYS_FILE = "api-keys.json"


@dataclass(frozen=True)
class DemoKey:
    """An API key the demo created, kept so a restart shows the same keys instead of new ones."""

    role: str
    operator_id: str | None
    key: str

    @property
    def label(self) -> str:
        """The role, and the operator for operator keys, shown above each key."""
        return f"{self.role} {self.operator_id}" if self.operator_id else self.role


def _ensure_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


class _StopSignal(Exception):  # noqa: N818 (a signal, not an error)
    """Raised in the main thread by the first SIGTERM, SIGHUP or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _in_own_group() -> None:
    """Child set-up (after fork): die with the demo, even when it is SIGKILLed."""
    with contextlib.suppress(Exception):
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _load_prctl() -> Callable[[int, int], int]:
    import ctypes

    try:
        fn: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return lambda _a, _b: 0
    return fn


_PRCTL = _load_prctl()


def _run_step(argv: list[str], env: dict[str, str], quiet: bool = False) -> tuple[int, str]:
    """A one-shot child in its own process group; killed with the demo."""
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        start_new_session=True,
        preexec_fn=_in_own_group,  # only a prctl call
        text=True,
    )
    try:
        out, _err = proc.communicate()
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out or ""


def _step_fingerprint(step: Command, db_url: str) -> str | None:
    """Identifies a set-up step's inputs: its command, the files it reads and the database
    (cluster identity and name), so a step that ran on exactly these is not run again."""
    h = hashlib.sha256(json.dumps([step.argv, step.env]).encode())
    for arg in step.argv:
        with contextlib.suppress(OSError):
            st = Path(arg).stat()
            h.update(f"{arg}:{st.st_size}:{st.st_mtime_ns}".encode())
    with contextlib.suppress(psycopg.Error), psycopg.connect(db_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT system_identifier::text, current_database() FROM pg_control_system()"
        ).fetchone()
        h.update(repr(row).encode())
        return h.hexdigest()
    return None  # cannot tell which database this is: always run the step


def read_demo_keys(f: Path) -> list[DemoKey]:
    """The keys in ``api-keys.json`` (a JSON list of {role, operator_id, key})."""
    try:
        doc = json.loads(f.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(doc, list):  # an older demo's {role: key}: made again
        return []
    return [DemoKey(d["role"], d.get("operator_id"), d["key"]) for d in doc]


def _demo_keys(state: Path, exe: list[str], env: dict[str, str]) -> list[DemoKey]:
    """Keys per role and operator, created through `mebuku operators create` once per state
    folder and kept in ``api-keys.json``, readable by its owner only (mode 0600)."""
    f = state / KEYS_FILE
    keys = read_demo_keys(f)
    have = {(k.role, k.operator_id) for k in keys}
    made = False
    for role, operator_id in DEMO_KEYS:
        if (role, operator_id) in have:
            continue
        argv = [*exe, "operators", "create", "--role", role, "--label", "mebuku demo"]
        if operator_id:
            argv += ["--operator-id", operator_id]
        code, out = _run_step(argv, env, quiet=True)
        if code == 0 and out.strip():
            keys.append(DemoKey(role, operator_id, out.strip().splitlines()[-1]))
            made = True
    if made or not f.exists():
        tmp = f.with_name(f.name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump([k.__dict__ for k in keys], fh, indent=1)
        tmp.replace(f)
    f.chmod(0o600)
    return keys


def _resident_token(state: Path, exe: list[str], env: dict[str, str], api_port: int) -> str | None:
    """Sign in as the demo's resident-01 through the API (the real card sign-in, with the
    test card authority): a session token to try the resident endpoints with at once."""
    argv = ["dev", "card", "login", "resident-01", "--dir", str((state / DEV_CA).absolute())]
    argv += ["--api", f"http://127.0.0.1:{api_port}"]
    code, out = _run_step([*exe, *argv], env, quiet=True)
    lines = out.strip().splitlines()
    if code != 0 or not lines:
        log.warning(L_("resident sign-in for the demo failed: %s"), out.strip()[-500:])
        return None
    return lines[-1].strip()


def print_keys(keys: list[DemoKey], out: IO[str]) -> None:
    """Each key whole on its own line under the role and operator it belongs to (plain
    text: nothing wraps it, so it can be copied or cut out with a script)."""
    for k in keys:
        out.write(_("API key ({label}), send as X-API-Key:").format(label=k.label) + f"\n{k.key}\n")
    out.flush()


# --- supervised children -----------------------------------------------------------------


class Child:
    """One supervised service: its process group, the tail of its output, its failures."""

    def __init__(self, cmd: Command, argv: list[str], env: dict[str, str]) -> None:
        self.cmd, self.argv, self.env = cmd, argv, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.failures: collections.deque[float] = collections.deque()
        self.restart_at: float | None = None
        self.healthy = False

    @property
    def name(self) -> str:
        """The CLI group, which names the child in logs and in ``demo.json``."""
        return self.cmd.group

    def start(self) -> None:
        """Start the command in its own process group, so a stop signal reaches its children too."""
        self.healthy = False
        self.restart_at = None
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_in_own_group,  # only a prctl call
        )
        assert self.proc.stdout is not None
        threading.Thread(
            target=self._forward, args=(self.proc.stdout,), name=f"log-{self.name}", daemon=True
        ).start()

    def _forward(self, stream: IO[bytes]) -> None:
        """Copy the child's output to ours, prefixed with its name; keep the last lines."""
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.tail.append(line)
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"{self.name:>8} | {line}\n")
                sys.stderr.flush()
        stream.close()

    def exited(self) -> int | None:
        """The exit status once the child has exited, else None (does not wait)."""
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: signal.Signals) -> None:
        """Signal the child's whole process group, if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the child; SIGKILL its whole group after ``deadline``."""
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning(L_("%s did not stop in time: killing it"), self.name)
        with contextlib.suppress(ProcessLookupError):  # anything it left in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def check_health(self) -> bool:
        """Running, and answering its health URL when it has one: only then is it shown as ready."""
        if self.exited() is not None or self.proc is None:
            return False
        if self.cmd.health is None:
            return True
        try:
            with urllib.request.urlopen(self.cmd.health, timeout=2) as r:  # noqa: S310
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False


class DemoFailedError(Exception):
    """A service kept failing or never became healthy; the message says which."""


class Supervisor:
    """Runs the children, restarts them with backoff, writes the state file."""

    def __init__(self, state: Path, ports: DemoPorts) -> None:
        self.state, self.ports = state, ports
        self.children: list[Child] = []
        self.ready = False

    def write_state(self, **extra: object) -> None:
        """Write ``demo.json`` atomically, so a second demo and ``mebuku`` commands read a whole
        file."""
        data = {
            "pid": os.getpid(),
            "ready": self.ready,
            "ports": {k: v for k, v in asdict(self.ports).items() if k != "notes"},
            "children": {c.name: c.proc.pid for c in self.children if c.proc is not None},
            **extra,
        }
        tmp = self.state / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state / STATE_FILE)

    def start(self, child: Child) -> None:
        """Supervise ``child`` from now on and start it."""
        self.children.append(child)
        child.start()

    def tick(self) -> None:
        """Notice exits, schedule and perform restarts; raise when one keeps failing."""
        now = time.monotonic()
        changed = False
        for c in self.children:
            if c.restart_at is not None:
                if now >= c.restart_at:
                    log.info(L_("restarting %s"), c.name)
                    c.start()
                    changed = True
                continue
            code = c.exited()
            if code is None:
                continue
            c.healthy = False
            c.failures.append(now)
            while c.failures and c.failures[0] < now - FAILURE_WINDOW_S:
                c.failures.popleft()
            if len(c.failures) >= MAX_FAILURES:
                raise DemoFailedError(
                    _(
                        "{name} keeps failing ({n} exits within {seconds} s, last status {code})"
                    ).format(
                        name=c.name,
                        n=len(c.failures),
                        seconds=f"{FAILURE_WINDOW_S:.0f}",
                        code=code,
                    ),
                )
            wait = BACKOFF_S[min(len(c.failures), len(BACKOFF_S)) - 1]
            log.warning(L_("%s exited with status %s: restarting in %.1f s"), c.name, code, wait)
            c.restart_at = now + wait
        if changed:
            self.write_state()

    def check_health(self) -> list[Child]:
        """The children that do not answer their health check yet."""
        for c in self.children:
            if not c.healthy:
                c.healthy = c.check_health()
        return [c for c in self.children if not c.healthy]

    def stop(self) -> None:
        """SIGTERM every child's group (last started first), then wait; SIGKILL stragglers."""
        for c in reversed(self.children):
            c.restart_at = None
            c.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for c in reversed(self.children):
            c.wait_stopped(deadline)


def _tail_report(child: Child) -> str:
    lines = list(child.tail) or [_("(no output)")]
    head = _("last output of {name}:").format(name=child.name)
    return head + "\n" + "\n".join(f"  {line}" for line in lines)


# --- leftovers of a previous run ---------------------------------------------------------


def stop_leftovers(state: Path) -> None:
    """Refuse to run next to a live demo on the same state folder; stop the children and
    private servers a killed one left behind."""
    f = state / STATE_FILE
    previous: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = dict(json.loads(f.read_text()))
    pid = previous.get("pid")
    live = isinstance(pid, int) and pid != os.getpid() and pid_alive(pid)
    if live and "demo" in pid_cmdline(pid):  # type: ignore[arg-type]
        raise ConfigError(
            [
                _(
                    "another `mebuku demo` (pid {pid}) runs on state folder {state}: stop it "
                    "first, or set {variable} to another folder"
                ).format(pid=pid, state=state, variable=env_name("state_dir"))
            ]
        )
    children = previous.get("children")
    for name, cpid in children.items() if isinstance(children, dict) else []:
        if isinstance(cpid, int) and pid_alive(cpid) and "core.cli" in pid_cmdline(cpid):
            log.warning(L_("stopping %s (pid %s) left running by a previous demo"), name, cpid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cpid, signal.SIGTERM)
            stop_pid(cpid, signal.SIGTERM, STOP_TIMEOUT_S)
    if (state / "postgres" / "data" / "PG_VERSION").exists():
        left = EmbeddedPostgres(state / "postgres", durable=True).stop_leftover()
        if left is not None:
            log.warning(L_("stopped PostgreSQL (pid %s) left running by a previous demo"), left)
    if (state / "mosquitto" / "mosquitto.conf").exists():
        with contextlib.suppress(Exception):  # no mosquitto binary: nothing to stop
            left = EmbeddedMosquitto(state / "mosquitto").stop_leftover()
            if left is not None:
                log.warning(L_("stopped Mosquitto (pid %s) left running by a previous demo"), left)
    f.unlink(missing_ok=True)
    (state / DEMO_ENV_FILE).unlink(missing_ok=True)


# --- the demo ----------------------------------------------------------------------------


@dataclass
class _Servers:
    """The private servers this run started, so the final clean-up stops exactly those
    (a server that failed to start is stopped too: it may have left a process behind)."""

    pg: EmbeddedPostgres | None = None
    broker: EmbeddedMosquitto | None = None

    def connect(self, settings: Settings, state: Path, ports: DemoPorts, where: Table) -> None:
        """Start a private PostgreSQL and Mosquitto for whichever URL is not configured;
        each gets a row in the "what runs where" table."""
        if settings.database_url is None:
            self.pg = EmbeddedPostgres(
                state / "postgres", ports.postgres, durable=True, bindir=settings.pg_bindir
            )
            self.pg.start()
            _ensure_database(self.pg.url(), "mebuku")
            where.add_row(_("PostgreSQL (private)"), redact_url(self.pg.url("mebuku")))
        else:
            where.add_row("PostgreSQL", redact_url(settings.database_url))
        if settings.mqtt_url is None:
            self.broker = EmbeddedMosquitto(
                state / "mosquitto",
                ports.mqtt,
                max_payload_bytes=settings.ingest_max_payload_bytes,  # #10 ingest limits
            )
            self.broker.start()
            where.add_row(_("Mosquitto (private)"), redact_url(self.broker.url))
        else:
            where.add_row(_("MQTT broker"), redact_url(settings.mqtt_url))

    def urls(self, settings: Settings) -> tuple[str, str]:
        """The database and broker URLs the children use: configured, else private."""
        db_url = settings.database_url
        if db_url is None:
            assert self.pg is not None  # connect() started it
            db_url = self.pg.url("mebuku")
        mqtt_url = settings.mqtt_url
        if mqtt_url is None:
            assert self.broker is not None  # connect() started it
            mqtt_url = self.broker.url
        return db_url, mqtt_url

    def stop(self) -> None:
        """The broker first, then the database (the children are down already)."""
        if self.broker:
            self.broker.stop()
        if self.pg:
            self.pg.stop()


def _run_setup(
    settings: Settings,
    state: Path,
    db_url: str,
    exe: list[str],
    env: dict[str, str],
    available: set[str],
    api_port: int,
) -> None:
    """Run the one-shot set-up steps of the installed groups; a ``once`` step whose
    fingerprint is recorded in ``setup-done.json`` is not run again."""
    done_file = state / "setup-done.json"
    done: dict[str, str] = json.loads(done_file.read_text()) if done_file.exists() else {}
    for step in setup_steps(settings, state, api_port):
        if step.group not in available:
            continue
        key = _step_fingerprint(step, db_url) if step.once else None
        if key is not None and done.get(step.key or step.group) == key:
            console.print(_("{step}: done already").format(step=step.what))
            continue
        console.print(f"[bold]{step.what}[/] ...")
        code, _output = _run_step([*exe, *step.argv], {**env, **step.env})
        if code == 0 and key is not None:
            done[step.key or step.group] = key
            done_file.write_text(json.dumps(done))


def _announce(
    sup: Supervisor,
    where: Table,
    keys: list[DemoKey],
    token: str | None,
    state: Path,
    api_port: int,
) -> None:
    """Print "what runs where", the API keys and the resident session once every service
    answers its health check, so nothing printed is a promise not yet kept."""
    for c in sup.children:
        assert c.proc is not None
        where.add_row(c.cmd.what, f"mebuku {' '.join(c.cmd.argv)}")
        if c.cmd.health:
            where.add_row("", _("health: {url}").format(url=c.cmd.health))
    if keys:
        where.add_row(
            _("API keys"), _("below; kept in {file} (0600)").format(file=state / KEYS_FILE)
        )
    if token:
        where.add_row(_("resident session"), _("below (test card resident-01, 78)"))
    where.add_row(_("state folder"), str(state))
    tables.console(stderr=True).print(where)
    print_keys(keys, sys.stderr)
    if token:
        sys.stderr.write(
            _("Resident session token (resident-01), send as Authorization: Bearer:")
            + f"\n{token}\ncurl -H 'Authorization: "
            f"Bearer {token}' http://127.0.0.1:{api_port}/v1/me/subsidy\n"
        )
    console.print(_("Press Ctrl-C to stop."))


def _supervise(
    sup: Supervisor,
    ready_timeout: float,
    maintain_every: float,
    on_ready: Callable[[], None],
    maintain: Callable[[], None],
) -> None:
    """Restart children, wait for readiness (``on_ready`` once) and run the periodic
    maintenance, until a stop signal or a failure raises."""
    ready_by = time.monotonic() + ready_timeout
    next_maintenance = time.monotonic() + maintain_every
    while True:
        sup.tick()
        if not sup.ready:
            waiting = sup.check_health()
            if not waiting:
                sup.ready = True
                sup.write_state()
                on_ready()
            elif time.monotonic() > ready_by:
                raise DemoFailedError(
                    _("no answer from {names} within {seconds} s").format(
                        names=", ".join(c.name for c in waiting), seconds=f"{ready_timeout:.0f}"
                    )
                )
        if time.monotonic() >= next_maintenance:
            maintain()
            next_maintenance = time.monotonic() + maintain_every
        time.sleep(0.2)


def _server_failed(e: Exception) -> None:
    """Say briefly why a private server or the database would not start."""
    detail = getattr(e, "stderr", None) or b""
    detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    sys.stderr.write(f"mebuku demo: {type(e).__name__}: {e}\n{detail[-2000:]}")


def _demo_failed(e: DemoFailedError, sup: Supervisor | None) -> None:
    """Say which service failed and show its last output lines."""
    console.print(f"[red]mebuku demo: {e}[/]", soft_wrap=True)  # one line, however long
    failing = [c for c in (sup.children if sup else []) if not c.healthy or c.failures]
    for c in failing:  # plain text: long lines stay whole
        sys.stderr.write(_tail_report(c) + "\n")


def run_demo(
    settings: Settings,
    fixed: set[str] = frozenset(),  # type: ignore[assignment]
    *,
    ready_timeout: float = 180.0,
    maintain_every: float = 60.0,
) -> int:
    """Run until a stop signal (exit status 0) or until a service keeps failing or never
    becomes healthy (1). ``fixed`` names the port settings given explicitly."""
    state = settings.state_dir.absolute()
    state.mkdir(parents=True, exist_ok=True)
    stopping: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping:  # later signals wait for the orderly stop already under way
            stopping.append(signum)
            raise _StopSignal(signum)

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    servers = _Servers()
    sup: Supervisor | None = None
    status = 0
    try:
        stop_leftovers(state)
        ports = choose_ports(settings, fixed, state)
        for note in ports.notes:
            log.warning("%s", note)
        where = tables.table(_("what"), _("where"), title=_("Mebuku demo"))
        where.columns[1].overflow = "fold"
        servers.connect(settings, state, ports, where)
        db_url, mqtt_url = servers.urls(settings)

        connection = {
            "MEBUKU_DATABASE_URL": db_url,
            "MEBUKU_MQTT_URL": mqtt_url,
            "MEBUKU_PSEUDONYM_KEY": _pseudonym_key(settings, state),
        }
        env = {**os.environ, **connection, "MEBUKU_STATE_DIR": str(state)}
        run_settings = settings.model_copy(update={"database_url": db_url, "mqtt_url": mqtt_url})
        applied = migrator.migrate(db_url, run_settings)
        console.print(
            _("migrations: {n} applied").format(n=len(applied))
            if applied
            else _("migrations: up to date")
        )
        # Other `mebuku` commands find the private servers from here while the demo runs.
        write_demo_env(state / DEMO_ENV_FILE, connection)

        available = _available_groups()
        exe = [sys.executable, "-m", "core.cli"]
        env.setdefault("MEBUKU_OPENDATA_DIR", str(state / "opendata"))  # issue 16: /open
        _run_setup(settings, state, db_url, exe, env, available, ports.api)
        dev_ca = "dev" in available and settings.jpki_trust_anchors is None
        env.update(dev_card_env(settings, state) if dev_ca else {})
        keys = _demo_keys(state, exe, env) if "operators" in available else []

        sup = Supervisor(state, ports)
        for svc in services(ports):
            if svc.group in available:
                sup.start(Child(svc, [*exe, *svc.argv], _service_env(env, db_url, svc)))
        sup.write_state()

        maintain_url = roles.role_url(
            db_url, "maintain", os.environ.get(roles.password_env("maintain"))
        )

        def maintain() -> None:
            with contextlib.suppress(psycopg.Error):
                timeseries.maintain(maintain_url, run_settings)

        def on_ready() -> None:
            token = _resident_token(state, exe, env, ports.api) if dev_ca else None
            _announce(sup, where, keys, token, state, ports.api)

        _supervise(sup, ready_timeout, maintain_every, on_ready, maintain)
    except _StopSignal as e:
        console.print(_("{signal}: stopping ...").format(signal=e))
    except (EmbeddedServerError, subprocess.CalledProcessError, psycopg.OperationalError) as e:
        status = 1  # a private server or the database would not start: say why, briefly
        _server_failed(e)
    except DemoFailedError as e:
        status = 1
        _demo_failed(e, sup)
    finally:
        stopping.append(0)  # from here on, signals are ignored until everything is down
        if sup is not None:
            sup.stop()
        (state / DEMO_ENV_FILE).unlink(missing_ok=True)
        servers.stop()
        (state / STATE_FILE).unlink(missing_ok=True)
        for s, handler in old.items():
            signal.signal(s, handler)
    return status
