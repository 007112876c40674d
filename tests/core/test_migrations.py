"""Migrations: everything created on an empty database, idempotent, safe when concurrent."""

from __future__ import annotations

import threading

import psycopg

from core import migrator
from ingest.streams import TABLES
from tests.conftest import make_settings

CORE_TABLES = {*TABLES, "ingest_rejects"}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }


def test_migrate_creates_everything_then_is_a_noop(empty_db_url: str) -> None:
    s = make_settings(empty_db_url)
    first = migrator.migrate(empty_db_url, s)
    assert first, "an empty database needs migrations"
    assert [m.version for m in migrator.discover()] == first
    assert _tables(empty_db_url) >= CORE_TABLES
    assert migrator.migrate(empty_db_url, s) == []
    states = migrator.status(empty_db_url)
    assert all(st.applied_at is not None and not st.checksum_changed for st in states)


def test_two_concurrent_migrations_take_turns(empty_db_url: str) -> None:
    s = make_settings(empty_db_url)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrator.migrate(empty_db_url, s))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    applied = sorted(results, key=len)
    assert applied[0] == [] and len(applied[1]) == len(migrator.discover())
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert row is not None and row[0] == len(migrator.discover())


def test_status_lists_pending_before_migrate(empty_db_url: str) -> None:
    states = migrator.status(empty_db_url)
    assert states and all(st.applied_at is None for st in states)


def test_a_failing_migration_rolls_back_and_records_nothing(empty_db_url: str, tmp_path) -> None:
    import sys

    pkg = tmp_path / "badpkg"
    (pkg / "migrations").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "migrations" / "0001_ok.sql").write_text("CREATE TABLE ok_table (id int);")
    (pkg / "migrations" / "0002_bad.sql").write_text("CREATE TABLE half_done (id int); SELECT 1/0;")
    sys.path.insert(0, str(tmp_path))
    try:
        s = make_settings(empty_db_url)
        try:
            migrator.migrate(empty_db_url, s, packages=["core", "badpkg"])
        except psycopg.errors.DivisionByZero:
            pass
        else:
            raise AssertionError("the bad migration should fail")
        tables = _tables(empty_db_url)
        assert "ok_table" in tables and "half_done" not in tables
        versions = [
            st.version
            for st in migrator.status(empty_db_url, ["core", "badpkg"])
            if st.applied_at is not None
        ]
        assert "badpkg/0001_ok.sql" in versions and "badpkg/0002_bad.sql" not in versions
    finally:
        sys.path.remove(str(tmp_path))
