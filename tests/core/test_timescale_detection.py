"""TimescaleDB detection tells the truth (issue 10, item 5).

The decision (installed? preloaded? created? mode?) is pure and always tested. The real
paths need a PostgreSQL tree with TimescaleDB installed: name its bin folder in
``MEBUKU_TEST_TIMESCALE_PGBINDIR`` (e.g. /opt/pgts/lib/postgresql/15/bin); those tests
start their own servers from it, with and without the preload, and skip otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psycopg
import pytest

from core.db import (
    PRELOAD_FIX,
    TimescaleNotPreloaded,
    TimescalePath,
    TimescaleState,
    TimescaleUnavailableError,
    create_database,
    decide_timescale,
    preloaded_libraries,
    timescale_state,
)
from core.embedded import EmbeddedPostgres, server_dir, timescale_installed

Mode = Literal["auto", "on", "off"]


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """The messages these tests compare are the English ones (Japanese: its own test)."""
    monkeypatch.setenv("MEBUKU_LANG", "en")


def state(
    *, created: bool = False, installed: bool = True, preloaded: bool = True, plain: bool = False
) -> TimescaleState:
    return TimescaleState(
        created=created, installed=installed, preloaded=preloaded, migrated_plain=plain
    )


# --- the decision, pure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "st", "path"),
    [
        ("auto", state(), TimescalePath.CREATE),
        ("on", state(), TimescalePath.CREATE),
        ("off", state(), TimescalePath.PLAIN),
        ("auto", state(preloaded=False), TimescalePath.PLAIN_NOT_PRELOADED),
        ("off", state(preloaded=False), TimescalePath.PLAIN),
        ("auto", state(installed=False, preloaded=False), TimescalePath.PLAIN),
        ("off", state(installed=False, preloaded=False), TimescalePath.PLAIN),
        ("auto", state(created=True), TimescalePath.USE),
        ("on", state(created=True), TimescalePath.USE),
        ("off", state(created=True), TimescalePath.USE),
        # migrated on plain PostgreSQL, TimescaleDB preloaded later: stays plain
        ("auto", state(plain=True), TimescalePath.PLAIN),
        ("off", state(plain=True), TimescalePath.PLAIN),
    ],
)
def test_decision(mode: Mode, st: TimescaleState, path: TimescalePath) -> None:
    assert decide_timescale(mode, st) is path


@pytest.mark.parametrize(
    ("mode", "st", "error"),
    [
        ("on", state(preloaded=False), TimescaleNotPreloaded),
        ("on", state(installed=False, preloaded=False), TimescaleUnavailableError),
        ("on", state(plain=True), TimescaleUnavailableError),
        # created in this database, server no longer preloads it: every mode stops
        ("auto", state(created=True, preloaded=False), TimescaleNotPreloaded),
        ("on", state(created=True, preloaded=False), TimescaleNotPreloaded),
        ("off", state(created=True, preloaded=False), TimescaleNotPreloaded),
    ],
)
def test_decision_refuses(mode: Mode, st: TimescaleState, error: type[Exception]) -> None:
    with pytest.raises(error) as e:
        decide_timescale(mode, st)
    assert "\n" not in str(e.value)
    if error is TimescaleNotPreloaded:
        assert str(e.value) == PRELOAD_FIX


def test_fix_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "shared_preload_libraries = 'timescaledb'" in PRELOAD_FIX
    assert "restart" in PRELOAD_FIX
    monkeypatch.setenv("MEBUKU_LANG", "ja")  # the CLI's default language says the same fix
    with pytest.raises(TimescaleNotPreloaded) as e:
        decide_timescale("on", state(preloaded=False))
    assert "shared_preload_libraries = 'timescaledb'" in str(e.value)
    assert "PostgreSQL を再起動してください" in str(e.value)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", set()),
        ("timescaledb", {"timescaledb"}),
        ("'timescaledb'", {"timescaledb"}),
        ("pg_stat_statements, timescaledb", {"pg_stat_statements", "timescaledb"}),
        ("'$libdir/timescaledb.so' ,auto_explain", {"timescaledb", "auto_explain"}),
        ('"/usr/lib/postgresql/15/lib/timescaledb"', {"timescaledb"}),
        ("timescaledb_toolkit", {"timescaledb_toolkit"}),
    ],
)
def test_preloaded_libraries(setting: str, expected: set[str]) -> None:
    assert preloaded_libraries(setting) == expected


# --- the CLI, against real servers --------------------------------------------------------


def mebuku(
    url: str, mode: Mode, *args: str, cwd: Path, lang: str = "en"
) -> subprocess.CompletedProcess[str]:
    """Run `mebuku db <args>` as an operator would (own process, own environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
    env |= {"MEBUKU_DATABASE_URL": url, "MEBUKU_TIMESCALE": mode, "MEBUKU_LANG": lang}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "db", *args],
        env=env,
        cwd=cwd,  # no stray .env
        capture_output=True,
        text=True,
        timeout=300,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def fix_lines(text: str) -> list[str]:
    return [line for line in lines(text) if "shared_preload_libraries" in line]


def test_on_without_timescale_is_one_line(empty_db_url: str, tmp_path: Path) -> None:
    """The session's plain PostgreSQL: `on` stops with one line, exit 2; `auto` migrates."""
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        if timescale_state(conn).installed:
            pytest.skip("the test server has TimescaleDB installed")
    r = mebuku(empty_db_url, "on", "migrate", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert lines(r.stderr) == [
        "MEBUKU_TIMESCALE=on but the timescaledb extension is not installed on this "
        "PostgreSQL server: install TimescaleDB, or set MEBUKU_TIMESCALE=auto"
    ]
    ja = mebuku(empty_db_url, "on", "migrate", cwd=tmp_path, lang="ja")
    assert ja.returncode == 2, ja.stderr
    assert lines(ja.stderr) == [
        "MEBUKU_TIMESCALE=on ですが、この PostgreSQL サーバーには timescaledb 拡張がインストール"
        "されていません：TimescaleDB をインストールするか、MEBUKU_TIMESCALE=auto にしてください"
    ]
    r = mebuku(empty_db_url, "auto", "migrate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert fix_lines(r.stderr) == []


@pytest.fixture(scope="module")
def ts_bindir() -> Path:
    value = os.environ.get("MEBUKU_TEST_TIMESCALE_PGBINDIR")
    if not value:
        pytest.skip(
            "MEBUKU_TEST_TIMESCALE_PGBINDIR is not set: no PostgreSQL bin folder with "
            "TimescaleDB installed to start servers from"
        )
    bindir = Path(value)
    if not timescale_installed(bindir):
        pytest.fail(f"MEBUKU_TEST_TIMESCALE_PGBINDIR={bindir} has no TimescaleDB installed")
    return bindir


@pytest.fixture
def server_root() -> Iterator[Path]:
    root = server_dir("mebuku-tsdetect-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def preloaded_as_plain_role(pg: EmbeddedPostgres) -> bool:
    """What a role that may not read shared_preload_libraries is told."""
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS reader")
        conn.execute("CREATE ROLE reader LOGIN")
    with psycopg.connect(pg.url().replace(f"{pg.superuser}@", "reader@")) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SHOW shared_preload_libraries")
        conn.rollback()
        return timescale_state(conn).preloaded


def test_installed_not_preloaded_migrates_plain_with_one_warning(
    ts_bindir: Path, server_root: Path, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(server_root, bindir=ts_bindir, preload_timescale=False)
    try:
        pg.start()
        create_database(pg.url(), "m")
        url = pg.url("m")
        with psycopg.connect(url, autocommit=True) as conn:
            st = timescale_state(conn)
        assert (st.installed, st.preloaded, st.created) == (True, False, False)
        assert not preloaded_as_plain_role(pg)

        r = mebuku(url, "on", "migrate", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert lines(r.stderr) == [PRELOAD_FIX]

        r = mebuku(url, "auto", "migrate", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        assert len(fix_lines(r.stderr)) == 1
        assert PRELOAD_FIX in fix_lines(r.stderr)[0]
        assert "WARNING" in fix_lines(r.stderr)[0]
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
            ).fetchone() == (0,)
            # the plain path's time_bucket answers queries
            assert conn.execute(
                "SELECT time_bucket('1 hour', timestamptz '2025-06-02 10:30+00')"
                " = timestamptz '2025-06-02 10:00+00'"
            ).fetchone() == (True,)
            assert conn.execute("SELECT count(*) FROM bus_telemetry").fetchone() == (0,)
        r = mebuku(url, "auto", "maintain", cwd=tmp_path)
        assert r.returncode == 0, r.stderr

        # The fix applied (restart with the preload): this database stays on the plain
        # path it was migrated for, a new one gets TimescaleDB.
        pg.stop()
        pg.preload_timescale = True
        pg.start()
        assert preloaded_as_plain_role(pg)
        r = mebuku(url, "auto", "migrate", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert fix_lines(r.stderr) == []
        r = mebuku(url, "on", "migrate", cwd=tmp_path)
        assert r.returncode == 2
        assert len(lines(r.stderr)) == 1 and "migrated without TimescaleDB" in r.stderr
        create_database(pg.url(), "fresh")
        r = mebuku(pg.url("fresh"), "auto", "migrate", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        with psycopg.connect(pg.url("fresh"), autocommit=True) as conn:
            assert conn.execute(
                "SELECT count(*) FROM timescaledb_information.hypertables"
                " WHERE hypertable_name = 'bus_telemetry'"
            ).fetchone() == (1,)
    finally:
        pg.stop()


def test_embedded_server_preloads_and_migrate_takes_timescale_path(
    ts_bindir: Path, server_root: Path, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(server_root, bindir=ts_bindir)
    assert pg.preload_timescale
    try:
        pg.start()
        create_database(pg.url(), "m")
        url = pg.url("m")
        r = mebuku(url, "on", "migrate", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert fix_lines(r.stderr) == []
        with psycopg.connect(url, autocommit=True) as conn:
            st = timescale_state(conn)
            assert (st.installed, st.preloaded, st.created) == (True, True, True)
            hypertables = {
                r[0]
                for r in conn.execute(
                    "SELECT hypertable_name FROM timescaledb_information.hypertables"
                )
            }
            assert {"bus_telemetry", "fiveg_radio"} <= hypertables
            # no plain time_bucket shadows TimescaleDB's
            own = conn.execute(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE p.proname = 'time_bucket' AND p.prolang = "
                "(SELECT oid FROM pg_language WHERE lanname = 'sql')"
            ).fetchone()
            assert own == (0,)
        r = mebuku(url, "auto", "maintain", cwd=tmp_path)
        assert r.returncode == 0, r.stderr

        # Created, then the server loses its preload: one line, exit 2, in every mode,
        # instead of "must be preloaded" and "the connection is closed".
        pg.stop()
        pg.preload_timescale = False
        pg.start()
        for mode in ("auto", "on", "off"):
            r = mebuku(url, mode, "migrate", cwd=tmp_path)
            assert r.returncode == 2, r.stderr
            assert lines(r.stderr) == [PRELOAD_FIX]
        r = mebuku(url, "auto", "maintain", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert lines(r.stderr) == [PRELOAD_FIX]
    finally:
        pg.stop()


def test_plain_tree_is_not_preloaded(server_root: Path) -> None:
    """The PostgreSQL found by default (no TimescaleDB in this test run's tree) is started
    without the preload, so it keeps working exactly as before."""
    pg = EmbeddedPostgres(server_root)
    if timescale_installed(pg.bindir):
        pytest.skip(f"{pg.bindir} has TimescaleDB installed")
    assert not pg.preload_timescale
