"""Private PostgreSQL and Mosquitto servers for `mebuku demo` and for tests.

Each server lives in its own folder on a free localhost port and is a child process that
can be stopped, killed (SIGKILL, to prove recovery) and started again on the same port and
data. When the session runs as root, PostgreSQL runs as the ``postgres`` user and
Mosquitto as ``mosquitto`` (neither will run as root).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

# Issue 10 (test hygiene): every server started in this process, so a test session can
# check at its end that none is left running (see live_servers()).
_STARTED_PROCS: list[tuple[str, subprocess.Popen[bytes]]] = []


def live_servers() -> list[tuple[str, int]]:
    """(description, pid) of every server this process started that still runs."""
    return [(what, p.pid) for what, p in _STARTED_PROCS if p.poll() is None]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return True


def pid_cmdline(pid: int) -> str:
    """The command line of ``pid`` ("" when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def stop_pid(pid: int, sig: signal.Signals, timeout: float = 30) -> bool:
    """Signal a process that is not our child and wait until it is gone (SIGKILL after
    ``timeout``). True when it was running."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.05)
    return True


class EmbeddedServerError(RuntimeError):
    """A private server would not start; the message says which and why."""


def server_dir(prefix: str = "mebuku-") -> Path:
    """A new temporary folder that the server users (postgres, mosquitto) can enter.

    pytest's own temporary folders are private to root, which a server run as another user
    cannot traverse.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def free_port() -> int:
    """A port the kernel says is free now (another process may still take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise EmbeddedServerError(f"server exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise EmbeddedServerError(f"server did not listen on port {port} within {timeout}s")


def _run_as(user: str) -> tuple[str | None, int | None, int | None]:
    """(user, uid, gid) to run a server as when we are root; Nones otherwise."""
    if os.geteuid() != 0:
        return None, None, None
    try:
        pw = pwd.getpwnam(user)
    except KeyError as e:
        raise EmbeddedServerError(f"running as root but there is no {user!r} user") from e
    return user, pw.pw_uid, pw.pw_gid


def _chown_tree(path: Path, uid: int | None, gid: int | None) -> None:
    if uid is None or gid is None:
        return
    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, gid)


def find_pg_bindir(configured: Path | str | None = None) -> Path:
    """The folder holding initdb and postgres: ``configured``, else ``MEBUKU_PG_BINDIR``,
    else discovered (PATH, pg_config, Debian's layout)."""
    chosen = configured or os.environ.get("MEBUKU_PG_BINDIR") or None
    if chosen is not None:
        path = Path(chosen)
        if not ((path / "initdb").exists() and (path / "postgres").exists()):
            raise EmbeddedServerError(
                f"MEBUKU_PG_BINDIR={path} has no initdb and postgres: set it to a PostgreSQL "
                "bin folder (e.g. /usr/lib/postgresql/15/bin) or unset it"
            )
        return path
    candidates: list[str] = []
    if (pg_config := shutil.which("pg_config")) is not None:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            candidates.append(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    if (initdb := shutil.which("initdb")) is not None:
        candidates.insert(0, str(Path(initdb).resolve().parent))
    for c in candidates:
        if (Path(c) / "initdb").exists() and (Path(c) / "postgres").exists():
            return Path(c)
    raise EmbeddedServerError(
        "PostgreSQL binaries not found: install PostgreSQL (apt-get install postgresql) "
        "or set MEBUKU_DATABASE_URL to an existing server"
    )


def timescale_installed(bindir: Path) -> bool:
    """True when the PostgreSQL in ``bindir`` has TimescaleDB installed: its pkglibdir holds
    the loader library and its sharedir the control file (asked of its own pg_config)."""
    pg_config = bindir / "pg_config"
    if not pg_config.exists():
        return False
    try:
        out = subprocess.check_output(
            [str(pg_config), "--pkglibdir", "--sharedir"], text=True, timeout=10
        ).split("\n")
    except (subprocess.SubprocessError, OSError):
        return False
    if len(out) < 2:
        return False
    pkglibdir, sharedir = Path(out[0].strip()), Path(out[1].strip())
    loader = any((pkglibdir / f"timescaledb{ext}").exists() for ext in (".so", ".dylib"))
    return loader and (sharedir / "extension" / "timescaledb.control").exists()


class _ChildServer:
    """A server run as our child process: stop (gracefully), kill (SIGKILL the process
    group, as a crash would), restart on the same port and data."""

    proc: subprocess.Popen[bytes] | None = None
    stop_signal: signal.Signals = signal.SIGTERM

    def start(self) -> None:
        raise NotImplementedError

    def _started(self, what: str) -> None:
        """Register the new process; called right after Popen."""
        assert self.proc is not None
        _STARTED_PROCS.append((what, self.proc))

    def _abandon(self) -> None:
        """Start failed after the process was created: do not leave it running."""
        with contextlib.suppress(Exception):
            self.kill()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class EmbeddedPostgres(_ChildServer):
    """A throwaway PostgreSQL cluster: ``with EmbeddedPostgres(dir) as pg: pg.url``."""

    stop_signal = signal.SIGINT  # "fast" shutdown: clients are disconnected, data is kept

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        *,
        durable: bool = False,
        bindir: Path | None = None,
        preload_timescale: bool | None = None,
    ) -> None:
        """``bindir``: PostgreSQL's bin folder (default: :func:`find_pg_bindir`).
        ``preload_timescale``: None preloads TimescaleDB when it is installed for that
        PostgreSQL, so `mebuku db migrate` takes the real TimescaleDB path there."""
        self.root = Path(root).absolute()
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log_file = self.root / "postgres.log"
        self.port = port or free_port()
        self.durable = durable
        self.bindir = find_pg_bindir(bindir)
        self.preload_timescale = (
            timescale_installed(self.bindir) if preload_timescale is None else preload_timescale
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.user, self.uid, self.gid = _run_as("postgres")

    @property
    def superuser(self) -> str:
        """The server's superuser: the configured user, else the user running it (initdb's
        default)."""
        return self.user or pwd.getpwuid(os.geteuid()).pw_name

    def url(self, dbname: str = "postgres") -> str:
        """A URL over TCP on localhost, as the services and tests connect."""
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> None:
        """Create the data folder once (initdb); an existing one is kept, so data survive
        restarts."""
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        _chown_tree(self.root, self.uid, self.gid)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )

    def start(self, timeout: float = 30) -> None:
        """Start the server (initialising its data folder first) and wait until it accepts
        connections."""
        self.init()
        if self.proc is not None and self.proc.poll() is None:
            return
        opts = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.sockets}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "max_wal_size=2GB",
            "-c",
            "timezone=UTC",
        ]
        if self.preload_timescale:
            opts += [
                "-c",
                "shared_preload_libraries=timescaledb",
                "-c",
                "timescaledb.telemetry_level=off",
            ]
        if not self.durable:
            opts += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log_fh = self.log_file.open("ab")
        if self.uid is not None:
            os.chown(self.log_file, self.uid, self.gid or -1)
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), *opts],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            user=self.user,
            start_new_session=True,
        )
        self._started(f"PostgreSQL on port {self.port} ({self.data})")
        try:
            _wait_port(self.port, timeout, self.proc, self.log_file)
            self._wait_accepting(timeout)
        except BaseException:
            self._abandon()
            raise

    @property
    def leftover_pid(self) -> int | None:
        """The pid of a postmaster left running on this data folder by another process
        (e.g. a demo that was killed), from ``postmaster.pid``."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if self.proc is not None and pid == self.proc.pid:
            return None
        return pid if pid_alive(pid) and "postgres" in pid_cmdline(pid) else None

    def stop_leftover(self, timeout: float = 30) -> int | None:
        """Stop (fast shutdown) a postmaster another process left on this data folder."""
        pid = self.leftover_pid
        if pid is not None:
            stop_pid(pid, signal.SIGINT, timeout)
        return pid

    def _wait_accepting(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


# Room over the payload limit for the rest of a PUBLISH packet: fixed header (<= 5 bytes),
# topic (2 + its length; Mebuku topics are < 300 bytes), packet id and MQTT 5 properties.
MQTT_PACKET_HEADROOM = 4096


def mqtt_max_packet_size(max_payload_bytes: int) -> int:
    """Mosquitto's ``max_packet_size`` (the whole packet) for a payload limit."""
    return max_payload_bytes + MQTT_PACKET_HEADROOM


class EmbeddedMosquitto(_ChildServer):
    """A throwaway Mosquitto 2 broker with persistence and no queue limits.

    ``max_queued_messages 0`` matters: Mosquitto's default (1,000) silently drops what an
    offline persistent session would receive beyond that. ``max_packet_size`` bounds what a
    client may send (``MEBUKU_INGEST_MAX_PAYLOAD_BYTES`` plus headroom): the broker
    disconnects a client that sends a bigger packet and never forwards it.
    """

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        *,
        autosave_interval: int = 30,
        extra_config: str = "",
        acl_file: Path | None = None,
        password_file: Path | None = None,
        max_payload_bytes: int = 262144,
    ) -> None:
        self.root = Path(root).absolute()
        # Copied into root at start (so the broker's user can read them); a password file
        # turns anonymous access off.
        self.acl_file = acl_file
        self.password_file = password_file
        self.port = port or free_port()
        self.conf = self.root / "mosquitto.conf"
        self.log_file = self.root / "mosquitto.log"
        self.autosave_interval = autosave_interval
        self.extra_config = extra_config
        self.max_packet_size = mqtt_max_packet_size(max_payload_bytes)
        self.proc: subprocess.Popen[bytes] | None = None
        binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
            None,
        )
        if binary is None:
            raise EmbeddedServerError(
                "mosquitto not found: install it (apt-get install mosquitto) or set "
                "MEBUKU_MQTT_URL to an existing MQTT 5 broker"
            )
        self.binary = binary
        try:
            self.user, self.uid, self.gid = _run_as("mosquitto")
        except EmbeddedServerError:  # root without a mosquitto user: it stays root
            self.user, self.uid, self.gid = None, None, None

    @property
    def url(self) -> str:
        """The broker's address for the services and tests (plain MQTT on localhost)."""
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.password_file else 'true'}",
            "persistence true",
            f"persistence_location {self.root}/",
            f"autosave_interval {self.autosave_interval}",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 0",
            "max_keepalive 120",
            f"max_packet_size {self.max_packet_size}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"log_dest file {self.log_file}",
        ]
        for option, source in (("acl_file", self.acl_file), ("password_file", self.password_file)):
            if source is not None:
                copy = self.root / option
                shutil.copyfile(source, copy)
                copy.chmod(0o600)
                lines.append(f"{option} {copy}")
        if self.user:
            lines.insert(0, f"user {self.user}")
        self.conf.write_text("\n".join(lines) + "\n" + self.extra_config)
        _chown_tree(self.root, self.uid, self.gid)

    def start(self, timeout: float = 15) -> None:
        """Write the configuration, start the broker and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self._write_config()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._started(f"Mosquitto on port {self.port} ({self.root})")
        self.pid_file.write_text(f"{self.proc.pid}\n")
        try:
            _wait_port(self.port, timeout, self.proc, self.log_file)
        except BaseException:
            self._abandon()
            raise

    @property
    def pid_file(self) -> Path:
        """Where the broker records its pid, so a later demo can stop one left behind."""
        return self.root / "mosquitto.pid"

    def stop_leftover(self, timeout: float = 30) -> int | None:
        """Stop a broker another process left running on this folder (its pid file)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if self.proc is not None and pid == self.proc.pid:
            return None
        if not (pid_alive(pid) and str(self.conf) in pid_cmdline(pid)):
            return None
        stop_pid(pid, signal.SIGTERM, timeout)
        return pid


class ScratchDatabase:
    """A throwaway database for benchmarks: on the server ``admin_url`` names, or on a
    private :class:`EmbeddedPostgres` when it is None. ``close()`` drops it (unless
    ``keep``) and stops the private server."""

    def __init__(self, admin_url: str | None, prefix: str = "bench") -> None:
        from core.db import create_database, with_dbname

        self.root: Path | None = None
        self.server: EmbeddedPostgres | None = None
        if admin_url is None:
            self.root = server_dir("mebuku-bench-")
            self.server = EmbeddedPostgres(self.root)
            self.server.start()
            admin_url = self.server.url()
        self.admin_url = admin_url
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        create_database(admin_url, self.name)
        self.url = self.server.url(self.name) if self.server else with_dbname(admin_url, self.name)

    def close(self, *, keep: bool = False) -> None:
        """Drop the test database unless ``keep`` (to look at it after a failure)."""
        from core.db import drop_database

        if not keep:
            drop_database(self.admin_url, self.name)
        if self.server is not None:
            self.server.stop()
        if self.root is not None and not keep:
            shutil.rmtree(self.root, ignore_errors=True)
