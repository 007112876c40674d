"""Database connections and capability detection.

psycopg 3 everywhere. Synchronous connections serve workers and the CLI; the API builds an
async pool through :func:`async_pool`. Capability detection tells the rest of the code
whether TimescaleDB is on, so the same SQL files work on TimescaleDB and plain PostgreSQL.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

__all__ = [
    "async_pool",
    "connect",
    "create_database",
    "drop_database",
    "has_timescale",
    "timescale_available",
    "with_dbname",
]


def connect(
    url: str, *, autocommit: bool = False, application_name: str = "mebuku"
) -> psycopg.Connection:
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


def create_database(admin_url: str, dbname: str, template: str | None = None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        q = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
        if template:
            q = q + sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(q)


def drop_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
