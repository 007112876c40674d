"""Database connections and capability detection.

psycopg 3 everywhere. Synchronous connections serve workers and the CLI; the API builds an
async pool through :func:`async_pool`. Capability detection tells the rest of the code
whether TimescaleDB is on, so the same SQL files work on TimescaleDB and plain PostgreSQL.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from core.i18n import N_, cli_gettext

__all__ = [
    "PRELOAD_FIX",
    "TimescaleError",
    "TimescaleNotPreloaded",
    "TimescalePath",
    "TimescaleState",
    "TimescaleUnavailableError",
    "async_pool",
    "connect",
    "create_database",
    "decide_timescale",
    "drop_database",
    "has_timescale",
    "preloaded_libraries",
    "timescale_available",
    "timescale_in_use",
    "timescale_state",
    "with_dbname",
]


def connect(
    url: str, *, autocommit: bool = False, application_name: str = "mebuku"
) -> psycopg.Connection:
    """Every connection carries an application name, so pg_stat_activity shows who holds it."""
    return psycopg.connect(url, autocommit=autocommit, application_name=application_name)


def async_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0
) -> AsyncConnectionPool:
    """An async pool (not opened yet: ``await pool.open()``).

    ``timeout``: seconds a caller waits for a connection before PoolTimeout.
    """
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=timeout,
        kwargs={"autocommit": True},
    )


def with_dbname(url: str, dbname: str) -> str:
    """The same server address with another database name."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]


def timescale_available(conn: psycopg.Connection) -> bool:
    """True when the server can load the timescaledb extension (installed or installable)."""
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def has_timescale(conn: psycopg.Connection) -> bool:
    """True when timescaledb is installed in this database."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


# --- TimescaleDB detection (issue 10, item 5) -------------------------------------------
#
# TimescaleDB's library must be loaded at server start. When it is installed but not in
# shared_preload_libraries (the state right after installing the Debian/Ubuntu package),
# CREATE EXTENSION, or any use of an extension already created, ends the session with a
# FATAL "extension "timescaledb" must be preloaded". So the preload is checked first.

PRELOAD_FIX = N_(
    "TimescaleDB is installed but not preloaded: set shared_preload_libraries = "
    "'timescaledb' in postgresql.conf, then restart PostgreSQL"
)
# The other refusals of MEBUKU_TIMESCALE=on (message ids; said in the process language).
ON_NOT_INSTALLED = N_(
    "MEBUKU_TIMESCALE=on but the timescaledb extension is not installed on this "
    "PostgreSQL server: install TimescaleDB, or set MEBUKU_TIMESCALE=auto"
)
ON_MIGRATED_PLAIN = N_(
    "MEBUKU_TIMESCALE=on but this database was migrated without TimescaleDB: "
    "migrate a new database, or set MEBUKU_TIMESCALE=auto"
)


class TimescaleError(RuntimeError):
    """The TimescaleDB setting cannot be honoured; the message is one line that says why
    and what to do (the CLI prints it and exits 2)."""


class TimescaleNotPreloaded(TimescaleError):  # noqa: N818 (name agreed with the CLI)
    """TimescaleDB is installed (or created in the database) but its library is not
    preloaded by the server."""


class TimescaleUnavailableError(TimescaleError):
    """MEBUKU_TIMESCALE=on, but this server or database cannot use TimescaleDB."""


@dataclass(frozen=True)
class TimescaleState:
    """What the server and the database say about TimescaleDB (plain values)."""

    created: bool  # CREATE EXTENSION has run in this database
    installed: bool  # the server has the extension files (pg_available_extensions)
    preloaded: bool  # the server loaded its library at start (shared_preload_libraries)
    migrated_plain: bool  # migrations were applied here without TimescaleDB


class TimescalePath(enum.Enum):
    """Which storage path a migration takes, decided once from the server and the setting."""

    USE = "use"  # the extension is there and working
    CREATE = "create"  # CREATE EXTENSION, then the TimescaleDB path
    PLAIN = "plain"  # plain PostgreSQL
    PLAIN_NOT_PRELOADED = "plain-not-preloaded"  # plain PostgreSQL; warn with PRELOAD_FIX


def decide_timescale(mode: Literal["auto", "on", "off"], state: TimescaleState) -> TimescalePath:
    """Which storage path to take; raises :class:`TimescaleError` when none is right.

    A database migrated on plain PostgreSQL stays plain: creating the extension later
    would collide with the plain ``time_bucket`` and leave plain tables behind plain views.
    """
    if state.created:
        if not state.preloaded:  # every path would touch the extension and die with FATAL
            raise TimescaleNotPreloaded(cli_gettext(PRELOAD_FIX))
        return TimescalePath.USE
    if mode == "off":
        return TimescalePath.PLAIN
    if not state.installed:
        if mode == "on":
            raise TimescaleUnavailableError(cli_gettext(ON_NOT_INSTALLED))
        return TimescalePath.PLAIN
    if not state.preloaded:
        if mode == "on":
            raise TimescaleNotPreloaded(cli_gettext(PRELOAD_FIX))
        return TimescalePath.PLAIN_NOT_PRELOADED
    if state.migrated_plain:
        if mode == "on":
            raise TimescaleUnavailableError(cli_gettext(ON_MIGRATED_PLAIN))
        return TimescalePath.PLAIN
    return TimescalePath.CREATE


def preloaded_libraries(setting: str) -> set[str]:
    """Library names in a ``shared_preload_libraries`` value (quotes, ``$libdir/`` and
    ``.so`` removed): ``"'$libdir/timescaledb.so', pg_stat_statements"`` gives
    ``{"timescaledb", "pg_stat_statements"}``."""
    names = set()
    for item in setting.split(","):
        name = item.strip().strip('"').strip("'").strip().rsplit("/", 1)[-1]
        for suffix in (".so", ".dylib", ".dll"):
            name = name.removesuffix(suffix)
        if name:
            names.add(name)
    return names


def _timescale_preloaded(conn: psycopg.Connection) -> bool:
    """True when the server preloaded TimescaleDB's loader.

    ``shared_preload_libraries`` is visible to superusers and pg_read_all_settings only;
    other roles look for a setting that only the preloaded loader defines (it refuses to
    load any other way).
    """
    try:
        with conn.transaction():
            row = conn.execute("SHOW shared_preload_libraries").fetchone()
        return row is not None and "timescaledb" in preloaded_libraries(str(row[0]))
    except psycopg.errors.InsufficientPrivilege:
        pass
    row = conn.execute(
        "SELECT current_setting('timescaledb.bgw_launcher_poll_time', true)"
    ).fetchone()
    return row is not None and row[0] is not None


def timescale_state(conn: psycopg.Connection) -> TimescaleState:
    """Read :class:`TimescaleState` without touching the extension (safe when it is not
    preloaded)."""
    migrated = conn.execute("SELECT to_regclass('mebuku.timeseries') IS NOT NULL").fetchone()
    created = has_timescale(conn)
    return TimescaleState(
        created=created,
        installed=timescale_available(conn),
        preloaded=_timescale_preloaded(conn),
        migrated_plain=bool(migrated and migrated[0]) and not created,
    )


def timescale_in_use(conn: psycopg.Connection) -> bool:
    """True when this database uses TimescaleDB; raises :class:`TimescaleNotPreloaded`
    when the extension was created here but the server no longer preloads it."""
    if not has_timescale(conn):
        return False
    if not _timescale_preloaded(conn):
        raise TimescaleNotPreloaded(cli_gettext(PRELOAD_FIX))
    return True


def create_database(admin_url: str, dbname: str, template: str | None = None) -> None:
    """Throwaway databases for tests and the demo, created from a template when one is given."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        q = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
        if template:
            q = q + sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(q)


def drop_database(admin_url: str, dbname: str) -> None:
    """Drop a throwaway database even while connections remain (FORCE), so clean-up never hangs."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
