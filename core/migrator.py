"""Ordered SQL migrations per package, applied under an advisory lock.

Each package keeps ``NNNN_name.sql`` files in its ``migrations/`` folder. Core's run first,
then the sets that packages declare under the ``mebuku.migrations`` entry-point group, in
entry-point name order (``10_ingest``, ``20_mobility``...). Every file runs in its own
transaction and is recorded in ``schema_migrations``; a session-level advisory lock makes
two processes that migrate at once take turns, and the second finds nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.abc import Traversable

import psycopg

from core import plugins, roles
from core.db import PRELOAD_FIX, TimescalePath, decide_timescale, timescale_state
from core.i18n import L_, cli_gettext
from core.settings import Settings
from core.timeseries import apply_policies

log = logging.getLogger(__name__)

# pg_advisory_lock key: the first 8 bytes of sha256("mebuku.migrate"), as a signed int64.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"mebuku.migrate").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Migration:
    """One SQL file of a package's migration set, identified by package and file name."""

    package: str
    filename: str
    sql: str

    @property
    def version(self) -> str:
        """The key recorded in the migrations table: package and file name."""
        return f"{self.package}/{self.filename}"

    @property
    def checksum(self) -> str:
        """Recorded when applied, so an edited applied file is noticed instead of silently
        diverging."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    """What the database records for one migration, for ``mebuku db status``."""

    version: str
    applied_at: datetime | None
    checksum_changed: bool


def migration_packages() -> list[str]:
    """Packages with migrations, in the order they apply."""
    return ["core", *plugins.modules("mebuku.migrations")]


def discover(packages: list[str] | None = None) -> list[Migration]:
    """Every migration of the declared packages, in run order; a package without migrations adds
    none."""
    found: list[Migration] = []
    for pkg in packages if packages is not None else migration_packages():
        try:
            folder: Traversable = resources.files(pkg) / "migrations"
        except ImportError as e:  # a declared migration package that does not import
            raise plugins.PluginError(
                f"mebuku.migrations package {pkg!r} failed to load: {type(e).__name__}: {e}"
            ) from e
        if not folder.is_dir():
            continue
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
        )
        found.extend(Migration(pkg, f.name, f.read_text(encoding="utf-8")) for f in files)
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)
"""


def _ensure_timescale(conn: psycopg.Connection, settings: Settings) -> bool:
    """Decide the storage path (see :func:`core.db.decide_timescale`) and act on it.

    Raises :class:`core.db.TimescaleError` (one line naming the fix) when the setting
    cannot be honoured.
    """
    state = timescale_state(conn)
    path = decide_timescale(settings.timescale, state)
    if path is TimescalePath.CREATE:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        log.info(L_("TimescaleDB extension created"))
    elif path is TimescalePath.PLAIN_NOT_PRELOADED:
        log.warning(L_("%s; migrating for plain PostgreSQL instead"), cli_gettext(PRELOAD_FIX))
    elif path is TimescalePath.PLAIN and state.installed and settings.timescale == "auto":
        log.info(L_("TimescaleDB is available, but this database was migrated without it"))
    return path in (TimescalePath.USE, TimescalePath.CREATE)


def migrate(
    url: str,
    settings: Settings,
    *,
    packages: list[str] | None = None,
    on_apply: Callable[[Migration], None] | None = None,
) -> list[str]:
    """Apply pending migrations; returns the versions applied (empty when up to date)."""
    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True, application_name="mebuku-migrate") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            timescale = _ensure_timescale(conn, settings)
            conn.execute(_BOOKKEEPING)
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for m in discover(packages):
                if m.version in done:
                    continue
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, checksum, duration_ms)"
                        " VALUES (%s, %s, %s)",
                        [m.version, m.checksum, int((time.perf_counter() - started) * 1000)],
                    )
                applied_now.append(m.version)
                log.info(L_("applied migration %s"), m.version)
                if on_apply:
                    on_apply(m)
            apply_policies(conn, settings, timescale=timescale)
            if roles.PACKAGE in (packages if packages is not None else migration_packages()):
                roles.apply(conn)
                roles.set_passwords(conn, roles.passwords_from(settings))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    return applied_now


def status(url: str, packages: list[str] | None = None) -> list[MigrationState]:
    """Every known migration with when it was applied (None = pending)."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        applied: dict[str, tuple[datetime, str]] = {}
        if exists and exists[0]:
            applied = {
                r[0]: (r[1], r[2])
                for r in conn.execute("SELECT version, applied_at, checksum FROM schema_migrations")
            }
    out = []
    for m in discover(packages):
        at, checksum = applied.get(m.version, (None, None))
        out.append(MigrationState(m.version, at, at is not None and checksum != m.checksum))
    return out
