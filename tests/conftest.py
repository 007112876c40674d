"""Shared fixtures: a throwaway PostgreSQL and Mosquitto per test session (per xdist worker).

- ``pg_server`` / ``mqtt_broker``: the servers (tests may stop, kill and restart them; a
  test that does should restore them with ``start()`` before it ends).
- ``migrated_template``: a database migrated once, used as a template.
- ``db_url``: a fresh, fully migrated database per test module (CREATE DATABASE ...
  TEMPLATE, which takes a few tens of milliseconds).
- ``settings``: a Settings pointing at them, with a test pseudonym key.
- ``timescale_url``: a TimescaleDB given by MEBUKU_TEST_TIMESCALE_URL, else ``pg_server``
  when it preloads TimescaleDB, else the test skips.

Recovery tests that must take a server down for a long time use their own instances
(``EmbeddedPostgres`` / ``EmbeddedMosquitto`` in a ``core.embedded.server_dir()``) so
other tests are not disturbed.

Every fixture that starts a server stops it in a ``finally`` (so also when its own set-up
fails after the start). At the end of the session (of each xdist worker) a check fails the
run when a server this process started is still running, and stops it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core import migrator
from core.db import create_database, drop_database
from core.embedded import EmbeddedMosquitto, EmbeddedPostgres, live_servers, server_dir
from core.settings import Settings

TEST_PSEUDONYM_KEY = "test-pseudonym-key-not-secret-0123456789abcdef"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, which psycopg's async
    connections need; session scope lets async fixtures of any scope use it."""
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    root = server_dir("mebuku-pg-")
    pg = EmbeddedPostgres(root)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[EmbeddedMosquitto]:
    root = server_dir("mebuku-mqtt-")
    broker = EmbeddedMosquitto(root)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def _stop_leaked_servers() -> list[str]:
    """Kill the servers this process started that still run; describe them."""
    leaked = live_servers()
    for _what, pid in leaked:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return [f"{what} (pid {pid})" for what, pid in leaked]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last test's teardown (session fixtures included) of this process (each
    xdist worker has its own), fail that teardown if a server it started still runs."""
    result = yield
    if nextitem is None and (leaked := _stop_leaked_servers()):
        pytest.fail("servers left running by the tests (now killed): " + "; ".join(leaked))
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Backstop when the run stopped early (-x, Ctrl-C): still fail on a leaked server."""
    if leaked := _stop_leaked_servers():
        sys.stderr.write("servers left running by the tests (now killed): " + "; ".join(leaked))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def make_settings(database_url: str | None, mqtt_url: str | None = None, **kw: object) -> Settings:
    return Settings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        pseudonym_key=TEST_PSEUDONYM_KEY,
        _env_file=None,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def migrated_template(pg_server: EmbeddedPostgres) -> str:
    """Name of a database with every migration applied, to copy from.

    Always the plain-PostgreSQL path, also when ``pg_server`` preloads TimescaleDB (its
    PostgreSQL has it installed): the TimescaleDB path has its own tests (``timescale``).
    """
    name = "mebuku_template"
    create_database(pg_server.url(), name)
    url = pg_server.url(name)
    migrator.migrate(url, make_settings(url, timescale="off"))
    # Copying needs the template to have no session; with TimescaleDB preloaded its launcher
    # visits every database now and then, so the template takes no connections at all.
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
    return name


def new_database(pg: EmbeddedPostgres, template: str | None, prefix: str = "t") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create_database(pg.url(), name, template=template)
    return name


@pytest.fixture(scope="module")
def db_url(pg_server: EmbeddedPostgres, migrated_template: str) -> Iterator[str]:
    """A fully migrated database of this test module's own."""
    name = new_database(pg_server, migrated_template)
    yield pg_server.url(name)
    if pg_server.running:
        drop_database(pg_server.url(), name)


@pytest.fixture
def empty_db_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A database with nothing in it (for migration tests)."""
    name = new_database(pg_server, None, "e")
    yield pg_server.url(name)
    if pg_server.running:
        drop_database(pg_server.url(), name)


@pytest.fixture(scope="module")
def settings(db_url: str, mqtt_broker: EmbeddedMosquitto) -> Settings:
    return make_settings(db_url, mqtt_broker.url)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def timescale_admin_url(request: pytest.FixtureRequest) -> str:
    """MEBUKU_TEST_TIMESCALE_URL, else the session's own server when it preloads
    TimescaleDB (its PostgreSQL, see MEBUKU_PG_BINDIR, has it installed)."""
    url = os.environ.get("MEBUKU_TEST_TIMESCALE_URL")
    if not url:
        pg: EmbeddedPostgres = request.getfixturevalue("pg_server")
        if not pg.preload_timescale:
            pytest.skip(
                "no TimescaleDB to test against: set MEBUKU_TEST_TIMESCALE_URL, or "
                f"MEBUKU_PG_BINDIR to a PostgreSQL with TimescaleDB installed ({pg.bindir} "
                "has none)"
            )
        url = pg.url()
    from core.db import PRELOAD_FIX, timescale_state

    with psycopg.connect(url, autocommit=True) as conn:
        state = timescale_state(conn)
    if not state.installed:
        pytest.fail(f"MEBUKU_TEST_TIMESCALE_URL={url} has no timescaledb extension")
    if not state.preloaded:
        pytest.fail(f"MEBUKU_TEST_TIMESCALE_URL={url}: {PRELOAD_FIX}")
    return url


@pytest.fixture
def timescale_url(timescale_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the TimescaleDB server (dropped afterwards)."""
    from core.db import with_dbname

    name = f"ts_{uuid.uuid4().hex[:12]}"
    create_database(timescale_admin_url, name)
    yield with_dbname(timescale_admin_url, name)
    drop_database(timescale_admin_url, name)
