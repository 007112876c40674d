"""Least-privilege database roles: log in as each service role and prove what it can and
cannot do (core/roles/grants.toml, docs/security.md "Database roles").

Every relation must have a grant decision, so a table added by any package without one
fails here. Real PostgreSQL; the embedded server trusts localhost, so a role name in the
URL is enough to log in as it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from core import migrator, roles, timeseries
from core.settings import Settings
from core.streams import StreamDecl
from ingest import writer
from ingest.parse import parse_message
from tests.conftest import make_settings

DENIED = psycopg.errors.InsufficientPrivilege
SERVICE_ROLES = ("ingest", "mobility", "api", "settle", "maintain", "grafana")
SECRET_NOTE = "pregnancy: due 2026-08"
# Columns no grafana.* view may have: personal identifiers, secrets, free-text notes.
FORBIDDEN_COLUMNS = {
    "resident_id",
    "idm_hash",
    "cert_hash",
    "token_hash",
    "secret_sha256",
    "nonce",
    "note",
    "record_id",
    "last4",
}


@pytest.fixture(scope="module")
def url(db_url: str) -> str:
    """The module database with the grants re-applied as `mebuku db migrate` does
    (database-level rights such as TEMPORARY do not travel with a template copy)."""
    migrator.migrate(db_url, make_settings(db_url))
    with psycopg.connect(db_url, autocommit=True) as conn:
        resident = conn.execute(
            "INSERT INTO fare_residents DEFAULT VALUES RETURNING resident_id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO fare_eligibility_facts (resident_id, kind, value, recorded_by, note)"
            " VALUES (%s, 'pregnancy', 'true', 'staff-1', %s)",
            [resident, SECRET_NOTE],
        )
        conn.execute(
            "INSERT INTO fare_ic_cards (idm_hash, last4, resident_id) VALUES (%s, 'BEEF', %s)",
            [b"\xaa" * 32, resident],
        )
        conn.execute(
            "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,"
            " amount_yen, ride_at, service_day, fiscal_year, policy_version)"
            " VALUES ('2026-11-01', 'op-a', 'taxi', 'r-1', %s, 'mytaku', 600, now(),"
            " current_date, 2026, 'mytaku-2022-04')",
            [resident],
        )
        conn.execute(
            "INSERT INTO api_keys (key_id, secret_sha256, role) VALUES ('k1', %s, 'admin')",
            [b"\xbb" * 32],
        )
    return db_url


@pytest.fixture
def as_role(url: str) -> Iterator[object]:
    opened: list[psycopg.Connection] = []

    def connect(short: str) -> psycopg.Connection:
        conn = psycopg.connect(roles.role_url(url, short), autocommit=True)
        # Grafana's read-only default is defence in depth that any client can switch off
        # (SET ...): prove the privileges hold without it.
        conn.execute("SET default_transaction_read_only = off")
        opened.append(conn)
        return conn

    yield connect
    for c in opened:
        c.close()


def denied(conn: psycopg.Connection, statement: str, params: list[object] | None = None) -> bool:
    try:
        conn.execute(statement.encode(), params)
    except DENIED:
        return True
    return False


# --- the policy covers everything --------------------------------------------------------


def test_every_table_and_view_has_a_grant_decision(url: str) -> None:
    with psycopg.connect(url) as conn:
        assert roles.uncovered(conn) == [], "add these to core/roles/grants.toml"
        assert len(roles.relations(conn)) > 40  # the check looked at the real schema


def test_a_new_table_without_a_decision_is_caught_and_denied(empty_db_url: str) -> None:
    migrator.migrate(empty_db_url, make_settings(empty_db_url))
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE helper_added_later (x int)")
        conn.execute("GRANT SELECT ON helper_added_later TO PUBLIC")
        assert roles.uncovered(conn) == ["public.helper_added_later"]
        assert roles.apply(conn) == ["public.helper_added_later"]
    with psycopg.connect(roles.role_url(empty_db_url, "api")) as api:
        assert denied(api, "SELECT * FROM helper_added_later")


def test_every_migrate_resets_hand_made_grants(empty_db_url: str) -> None:
    migrator.migrate(empty_db_url, make_settings(empty_db_url))
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("GRANT UPDATE (role) ON api_keys TO mebuku_api")
        conn.execute("GRANT DELETE ON fare_ledger TO mebuku_settle")
        conn.execute("GRANT SELECT ON fare_eligibility_facts TO PUBLIC")
    migrator.migrate(empty_db_url, make_settings(empty_db_url))  # nothing pending
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT has_column_privilege('mebuku_api', 'api_keys', 'role', 'UPDATE'),"
            " has_table_privilege('mebuku_settle', 'fare_ledger', 'DELETE'),"
            " has_table_privilege('mebuku_ingest', 'fare_eligibility_facts', 'SELECT')"
        ).fetchone()
        assert rows == (False, False, False)


def test_policy_refuses_to_let_anyone_rewrite_append_only_tables() -> None:
    data = {
        "roles": {"api": "x"},
        "append_only": {"tables": ["fare_ledger"]},
        "tables": {"fare_ledger": {"api": "SELECT, UPDATE (note)"}},
    }
    with pytest.raises(roles.PolicyError, match="append-only"):
        roles.parse_policy(data)
    data["tables"] = {"fare_ledger": {"api": "SELECT; DROP TABLE fare_ledger"}}
    data["append_only"] = {"tables": []}
    with pytest.raises(roles.PolicyError, match="not allowed"):
        roles.parse_policy(data)
    data["tables"] = {"fare_ledger": {"api": "TRUNCATE"}}
    with pytest.raises(roles.PolicyError, match="not allowed"):
        roles.parse_policy(data)


def test_stream_tables_are_decided_by_the_catalogue_once() -> None:
    decl = StreamDecl("maebashi/x/{device_id}/beat", "x_beats", ("device_id", "ts"), ("mobility",))
    data: dict[str, Any] = {
        "roles": {"ingest": "w", "api": "r", "mobility": "m"},
        "streams": {"grants": {"ingest": "SELECT, INSERT", "api": "SELECT"}},
        "tables": {},
    }
    policy = roles.parse_policy(data).with_streams((decl,))
    assert policy.decision("public", "x_beats") == {
        "ingest": ["SELECT", "INSERT"],
        "api": ["SELECT"],
        "mobility": ["SELECT"],
    }
    # A second decision for a stream table, in [tables], is refused (one place each).
    data["tables"] = {"x_beats": {"api": "SELECT"}}
    with pytest.raises(roles.PolicyError, match="stream table"):
        roles.parse_policy(data).with_streams((decl,))
    data["tables"] = {}
    unknown = StreamDecl("maebashi/x/{device_id}/beat", "x_beats", ("ts",), ("nobody",))
    with pytest.raises(roles.PolicyError, match="unknown reader"):
        roles.parse_policy(data).with_streams((unknown,))


def test_a_stream_view_with_other_columns_is_replaced_by_the_catalogue_one(
    empty_db_url: str,
) -> None:
    migrator.migrate(empty_db_url, make_settings(empty_db_url))
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("DROP VIEW grafana.bus_events")
        conn.execute("CREATE VIEW grafana.bus_events AS SELECT ts, detail FROM bus_events")
        assert roles.apply(conn) == []
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                " 'grafana' AND table_name = 'bus_events' ORDER BY ordinal_position"
            )
        ]
    assert cols == ["vehicle_id", "ts", "type", "cause", "detail", "received_at"]
    with psycopg.connect(roles.role_url(empty_db_url, "grafana")) as grafana:
        grafana.execute("SELECT vehicle_id FROM grafana.bus_events LIMIT 1")


def test_role_url_swaps_the_user_and_never_reuses_the_owner_password() -> None:
    owner = "postgresql://postgres:s3cret@db.example:5432/mebuku?sslmode=require"
    assert roles.role_url(owner, "api") == (
        "postgresql://mebuku_api@db.example:5432/mebuku?sslmode=require"
    )
    assert roles.role_url(owner, "grafana", "p@ss/word") == (
        "postgresql://mebuku_grafana:p%40ss%2Fword@db.example:5432/mebuku?sslmode=require"
    )
    conninfo = roles.role_url("host=h user=postgres password=x dbname=m", "ingest")
    assert "mebuku_ingest" in conninfo and "password" not in conninfo


# --- what no service role has ------------------------------------------------------------


def test_service_roles_are_plain_logins_that_own_nothing(url: str) -> None:
    with psycopg.connect(url) as conn:
        names = [f"mebuku_{r}" for r in SERVICE_ROLES]
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin"
            " FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1",
            [names],
        ).fetchall()
        assert [r[0] for r in rows] == sorted(names)
        assert all(r[1:] == (False, False, False, False, True) for r in rows)
        owned = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = ANY(%s)",
            [names],
        ).fetchall()
        assert owned == []
        member_of = conn.execute(
            "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member"
            " WHERE m.rolname = ANY(%s)",
            [names],
        ).fetchall()
        assert member_of == []


@pytest.mark.parametrize("short", SERVICE_ROLES)
def test_no_role_can_change_the_schema_or_escape_to_the_server(as_role, short: str) -> None:
    conn = as_role(short)
    assert denied(conn, "CREATE TABLE public.mine (x int)")
    assert denied(conn, "CREATE SCHEMA mine")
    assert denied(conn, "ALTER TABLE fare_ledger DISABLE TRIGGER fare_ledger_append_only")
    assert denied(conn, "DROP TRIGGER fare_eligibility_facts_append_only ON fare_eligibility_facts")
    assert denied(conn, "DROP TABLE api_keys")
    assert denied(conn, "TRUNCATE fare_ledger")
    assert denied(conn, "TRUNCATE bus_telemetry")
    assert denied(conn, "COPY (SELECT 1) TO PROGRAM 'id'")
    assert denied(conn, "COPY (SELECT 1) TO '/tmp/mebuku-roles-test'")
    assert denied(conn, "SELECT pg_read_file('postgresql.conf')")
    assert denied(conn, "ALTER ROLE CURRENT_USER SUPERUSER")


@pytest.mark.parametrize("short", SERVICE_ROLES)
def test_no_role_can_rewrite_append_only_tables(url: str, as_role, short: str) -> None:
    conn = as_role(short)
    for table in roles.load_policy().append_only:
        for privilege in ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"):
            row = conn.execute("SELECT has_table_privilege(%s, %s)", [table, privilege]).fetchone()
            assert row == (False,), f"mebuku_{short} has {privilege} on {table}"
        # Refused by the privilege check, before the append-only trigger gets a say.
        first = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum = 1",
            [table],
        ).fetchone()
        assert first is not None
        assert denied(conn, f"UPDATE {table} SET {first[0]} = {first[0]}")
        assert denied(conn, f"DELETE FROM {table}")
    with psycopg.connect(url) as owner:
        assert owner.execute("SELECT count(*) FROM fare_ledger").fetchone() == (1,)


# --- each role can do its job, and no more -----------------------------------------------


def test_ingest_appends_telemetry_but_reads_no_resident_data(url: str, as_role) -> None:
    conn = as_role("ingest")
    writer.prepare(conn)  # its COPY staging tables (TEMPORARY, LIKE the targets)
    now = datetime.now(UTC)
    good = json.dumps({"ts": now.isoformat(), "lat": 36.39, "lon": 139.06}).encode()
    items = [
        writer.Item(t, p, parse_message(t, p, now))
        for t, p in [
            ("maebashi/bus/role-bus/telemetry", good),
            ("maebashi/bus/role-bus/telemetry", good),  # a duplicate: stored once
            ("maebashi/bus/role-bus/telemetry", b"{not json"),  # to the dead letter
        ]
    ]
    result = writer.write_once(conn, items)
    assert result.inserted["bus_telemetry"] == 1 and sum(result.rejects.values()) == 1
    with psycopg.connect(url) as owner:
        stored = owner.execute(
            "SELECT (SELECT count(*) FROM bus_telemetry WHERE vehicle_id = 'role-bus'),"
            " (SELECT count(*) FROM ingest_rejects WHERE topic LIKE 'maebashi/bus/role-bus/%')"
        ).fetchone()
        assert stored == (1, 1)
    for table in (
        "fare_eligibility_facts",
        "fare_residents",
        "fare_ic_cards",
        "fare_ledger",
        "api_keys",
        "auth_sessions",
        "ingest_rejects",
        "vehicle_state",
        "grafana.bus_telemetry",
    ):
        assert denied(conn, f"SELECT * FROM {table}"), table
    assert denied(conn, "DELETE FROM bus_telemetry")
    assert denied(conn, "UPDATE bus_telemetry SET lat = 0")
    assert denied(conn, "DELETE FROM ingest_rejects")
    assert denied(
        conn,
        "INSERT INTO vehicle_state (vehicle_id, ts, lat, lon, status)"
        " VALUES ('x', now(), 0, 0, 'offline')",
    )


def test_api_does_its_job_but_cannot_rewrite_money_or_keys(as_role) -> None:
    conn = as_role("api")
    resident = conn.execute(
        "INSERT INTO fare_residents DEFAULT VALUES RETURNING resident_id"
    ).fetchone()[0]
    with conn.transaction():  # a ride locks its resident (SELECT ... FOR UPDATE)
        conn.execute("SELECT 1 FROM fare_residents WHERE resident_id = %s FOR UPDATE", [resident])
        conn.execute(
            "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,"
            " amount_yen, ride_at, service_day, fiscal_year, policy_version)"
            " VALUES ('2026-11-01', 'op-a', 'taxi', 'r-2', %s, 'mytaku', 600, now(),"
            " current_date, 2026, 'mytaku-2022-04')",
            [resident],
        )
    conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = 'k1'")
    conn.execute("UPDATE fare_ic_cards SET status = 'lost' WHERE last4 = 'BEEF'")
    assert conn.execute("SELECT count(*) FROM fare_ledger").fetchone() == (2,)
    assert denied(conn, "UPDATE fare_ledger SET amount_yen = 0")
    assert denied(conn, "DELETE FROM fare_eligibility_facts")
    assert denied(conn, "UPDATE api_keys SET role = 'admin'")
    assert denied(conn, "DELETE FROM api_keys")
    assert denied(
        conn, "INSERT INTO api_keys (key_id, secret_sha256, role) VALUES ('x', 'y', 'admin')"
    )
    assert denied(conn, "UPDATE api_keys SET revoked_at = NULL")
    assert denied(conn, "UPDATE fare_ic_cards SET resident_id = 1")
    assert denied(conn, "UPDATE fare_residents SET resident_id = resident_id + 1000")
    assert denied(
        conn, "INSERT INTO bus_telemetry (vehicle_id, ts, lat, lon) VALUES ('b', now(), 0, 0)"
    )
    assert denied(conn, "SELECT * FROM schema_migrations")


def test_mobility_worker_keeps_vehicle_state_but_sees_no_fares(as_role) -> None:
    conn = as_role("mobility")
    for _ in range(2):  # the worker's upsert
        conn.execute(
            "INSERT INTO vehicle_state (vehicle_id, ts, lat, lon, status) VALUES"
            " ('bus-1', now(), 36.4, 139.1, 'in_transit') ON CONFLICT (vehicle_id)"
            " DO UPDATE SET ts = EXCLUDED.ts"
        )
    conn.execute("SELECT count(*) FROM bus_telemetry")
    conn.execute("SELECT count(*) FROM gtfs_stop_times")
    for table in ("fare_ledger", "fare_residents", "api_keys", "auth_sessions"):
        assert denied(conn, f"SELECT * FROM {table}"), table
    assert denied(conn, "DELETE FROM vehicle_events")


def test_settle_only_reads_the_ledger(as_role) -> None:
    conn = as_role("settle")
    assert conn.execute("SELECT count(*) > 0 FROM fare_ledger").fetchone() == (True,)
    assert denied(conn, "SELECT * FROM fare_eligibility_facts")
    assert denied(conn, "SELECT * FROM fare_residents")
    assert denied(
        conn,
        "INSERT INTO fare_ledger (period, operator_id, source, record_id, resident_id, kind,"
        " amount_yen, ride_at, service_day, fiscal_year, policy_version) VALUES"
        " ('2026-11-01', 'op-a', 'taxi', 'r-3', 1, 'mytaku', 1, now(), current_date, 2026, 'p')",
    )


def test_maintain_refreshes_rollups_and_expires_rows_as_its_own_role(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as owner:
        owner.execute(
            "INSERT INTO bus_telemetry (vehicle_id, ts, lat, lon)"
            " VALUES ('old-bus', now() - interval '30 days', 36.4, 139.1)"
        )
    settings = make_settings(url).model_copy(update={"retention_days": 10})
    report = timeseries.maintain(roles.role_url(url, "maintain"), settings)
    assert "mobility_route_daily" in report.rollups_refreshed
    assert report.rows_expired["bus_telemetry"] >= 1
    with psycopg.connect(roles.role_url(url, "maintain"), autocommit=True) as conn:
        assert denied(conn, "SELECT * FROM fare_ledger")
        # Dead letters past MEBUKU_REJECT_RETENTION_DAYS are its to expire, nothing else.
        assert not denied(conn, "SELECT mebuku.expire_ingest_rejects(30)")
        assert denied(conn, "DELETE FROM fare_auth_challenges")
    with psycopg.connect(roles.role_url(url, "api"), autocommit=True) as api:
        assert denied(api, "SELECT mebuku.refresh_rollup('mobility_route_daily')")


# --- Grafana -----------------------------------------------------------------------------


def test_grafana_reads_every_view_and_nothing_else(url: str, as_role) -> None:
    conn = as_role("grafana")
    with psycopg.connect(url) as owner:
        rels = roles.relations(owner)
    views = [(s, n) for s, n, _ in rels if s == "grafana"]
    assert len(views) >= 15
    for schema, name, _kind in rels:
        target = sql.Identifier(schema, name).as_string(conn)
        if schema == "grafana":
            conn.execute(f"SELECT * FROM {target} LIMIT 1".encode())
            writable = conn.execute(
                "SELECT has_table_privilege(%s, 'INSERT, UPDATE, DELETE, TRUNCATE')", [target]
            ).fetchone()
            assert writable == (False,), target
        else:
            assert denied(conn, f"SELECT 1 FROM {target} LIMIT 1"), target


def test_grafana_views_expose_no_personal_data(url: str, as_role) -> None:
    conn = as_role("grafana")
    columns = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'grafana'"
    ).fetchall()
    leaked = [(t, c) for t, c in columns if c in FORBIDDEN_COLUMNS or "hash" in c]
    assert leaked == []
    views = sorted({t for t, _ in columns})
    # Nothing the seed wrote about the resident comes back through any view.
    for view in views:
        for row in conn.execute(sql.SQL("SELECT * FROM grafana.{}").format(sql.Identifier(view))):
            text = repr(row)
            assert SECRET_NOTE not in text and "pregnancy" not in text, view
            assert "BEEF" not in text and "aaaa" not in text, view
    # Fares arrive aggregated: totals per month and operator, not rides.
    with psycopg.connect(url) as owner:
        truth = owner.execute(
            "SELECT operator_id, count(*), sum(amount_yen) FROM fare_ledger"
            " WHERE period = '2026-11-01' GROUP BY 1"
        ).fetchall()
    assert (
        truth
        and conn.execute(
            "SELECT operator_id, lines, amount_yen FROM grafana.fares_ledger_monthly"
            " WHERE period = '2026-11-01'"
        ).fetchall()
        == truth
    )


def test_grafana_cannot_write_even_through_its_views(url: str, as_role) -> None:
    conn = as_role("grafana")
    assert denied(
        conn,
        "INSERT INTO grafana.bus_telemetry (vehicle_id, ts, lat, lon) VALUES ('x', now(), 0, 0)",
    )
    assert denied(conn, "CREATE TEMP TABLE t (x int)")
    with psycopg.connect(roles.role_url(url, "grafana")) as fresh:  # its session defaults
        assert fresh.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert fresh.execute("SHOW statement_timeout").fetchone() == ("1min",)


# --- passwords ---------------------------------------------------------------------------


def test_migrate_sets_role_passwords_from_the_environment_as_scram(url: str) -> None:
    settings = Settings(
        database_url=url,
        pseudonym_key="x" * 40,
        db_grafana_password="correct-horse-battery",
        _env_file=None,
    )
    migrator.migrate(url, settings)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'mebuku_grafana'"
        ).fetchone()
        assert row is not None and row[0].startswith("SCRAM-SHA-256$")
        assert "correct-horse-battery" not in row[0]
        others = conn.execute(
            "SELECT count(*) FROM pg_authid WHERE rolname = 'mebuku_api' AND rolpassword IS NULL"
        ).fetchone()
        assert others == (1,)  # roles without a given password are left alone


# --- deployment uses the roles ---------------------------------------------------------


def test_compose_gives_each_service_its_own_role_and_grafana_no_superuser() -> None:
    import yaml

    from tests.conftest import REPO_ROOT

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    policy = roles.load_policy()
    urls = {
        name: svc.get("environment", {}).get("MEBUKU_DATABASE_URL")
        for name, svc in compose["services"].items()
    }
    for name, url in urls.items():
        if url is None or name == "migrate":  # migrate is the schema owner
            continue
        assert url.startswith(f"postgresql://mebuku_{name}:"), (name, url)
        assert name in policy.roles
    assert {"ingest", "mobility", "api"} <= {n for n, u in urls.items() if u}
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["MEBUKU_DB_USER"] == "mebuku_grafana"
    assert "POSTGRES_PASSWORD" not in grafana["MEBUKU_DB_PASSWORD"]
    example = (REPO_ROOT / "deploy" / "env.example").read_text()
    migrate_env = compose["services"]["migrate"]["environment"]
    for short in policy.roles:
        assert f"{roles.password_env(short)}=" in example
        assert roles.password_env(short) in migrate_env
        assert hasattr(Settings(_env_file=None), f"db_{short}_password")


def test_demo_starts_each_service_as_its_own_role() -> None:
    from core.demo import DemoPorts, service_db_url, services

    owner = "postgresql://postgres@127.0.0.1:5432/mebuku"
    ports = DemoPorts(api=8000, metrics=9108, mobility_metrics=9109, postgres=5433, mqtt=1884)
    got = {s.group: service_db_url(owner, s.group) for s in services(ports)}
    assert got["ingest"] == "postgresql://mebuku_ingest@127.0.0.1:5432/mebuku"
    assert got["mobility"] == "postgresql://mebuku_mobility@127.0.0.1:5432/mebuku"
    assert got["api"] == "postgresql://mebuku_api@127.0.0.1:5432/mebuku"
    assert got["simulate"] is None  # publishes to MQTT only


def test_db_roles_command_sets_passwords_and_check_names_missing_decisions(
    empty_db_url: str,
) -> None:
    from tests.core.test_cli_and_deploy import mebuku

    env = {"MEBUKU_DATABASE_URL": empty_db_url, "MEBUKU_LANG": "ja"}
    assert mebuku("db", "migrate", env=env).returncode == 0
    ok = mebuku("db", "roles", "--check", env=env)
    assert ok.returncode == 0, ok.stderr
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        before = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'mebuku_settle'"
        ).fetchone()
    out = mebuku("db", "roles", env={**env, "MEBUKU_DB_SETTLE_PASSWORD": "settle-pw-123"})
    assert out.returncode == 0, out.stderr
    assert "mebuku_settle" in out.stdout and "設定しました" in out.stdout
    assert "settle-pw-123" not in out.stdout + out.stderr
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        after = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'mebuku_settle'"
        ).fetchone()
        assert after is not None and after != before and after[0].startswith("SCRAM-SHA-256$")
        conn.execute("CREATE TABLE forgotten (x int)")
    missing = mebuku("db", "roles", "--check", env=env)
    assert missing.returncode == 1
    assert "public.forgotten の権限が定められていません" in missing.stderr


def test_two_databases_on_a_new_server_migrate_at_once() -> None:
    """Roles are per server: the first migrate of two databases at once must not fail on
    the other's CREATE ROLE."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from core.db import create_database
    from core.embedded import EmbeddedPostgres, server_dir

    root = server_dir("mebuku-roles-")
    pg = EmbeddedPostgres(root)
    try:
        pg.start()
        urls = []
        for name in ("city_a", "city_b"):
            create_database(pg.url(), name)
            urls.append(pg.url(name))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda u: migrator.migrate(u, make_settings(u)), urls))
        for u in urls:
            with psycopg.connect(roles.role_url(u, "grafana")) as conn:
                conn.execute("SELECT count(*) FROM grafana.bus_telemetry")
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
