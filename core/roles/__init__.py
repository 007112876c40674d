"""Least-privilege database roles, applied from one declarative file (grants.toml).

Every service logs in as a role of its own (``mebuku_ingest``, ``mebuku_api``, ...) that
owns nothing and may touch only what ``grants.toml`` says; the migration owner (whoever
runs ``mebuku db migrate``) owns every object. :func:`apply` creates the roles and
re-applies every grant idempotently; the migrator calls it after each run, so tables
added by later migrations are covered (or denied, with a warning) at once.

Passwords never live in migrations: :func:`set_passwords` sets them from
``MEBUKU_DB_<ROLE>_PASSWORD`` (as SCRAM verifiers computed here, so the clear text never
reaches the server's logs). Core names tables only as strings, it imports no domain.

The stream tables are decided from the stream catalogue, not by a line each: every table
a ``mebuku.streams`` entry declares (:mod:`core.streams`) gets the ``[streams]`` grants
of grants.toml plus SELECT for the entry's ``readers``, and :func:`apply` creates its
``grafana.<table>`` view. A stream table named in ``[tables]`` as well is refused (one
place for each decision).
"""

from __future__ import annotations

import fnmatch
import logging
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from core.i18n import L_
from core.settings import Settings
from core.streams import StreamDecl, declared, grafana_view_sql

log = logging.getLogger(__name__)

PACKAGE = "core.roles"
ROLE_PREFIX = "mebuku_"
SCHEMAS = ("public", "mebuku", "grafana", "opendata")
# Relation kinds a grant decision must cover: table, partitioned table, view,
# materialized view, foreign table.
RELKINDS = ("r", "p", "v", "m", "f")
_PRIVILEGE = re.compile(
    r"^(SELECT|INSERT|UPDATE|DELETE)(\s*\(\s*[a-z_][a-z0-9_]*(\s*,\s*[a-z_][a-z0-9_]*)*\s*\))?$"
)
_SETTING = re.compile(r"^[a-z_]+$")
_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_ ]+$")
_FORBIDDEN_ON_APPEND_ONLY = ("UPDATE", "DELETE")


class PolicyError(ValueError):
    """grants.toml is malformed or breaks a rule (e.g. UPDATE on an append-only table)."""


@dataclass(frozen=True)
class Policy:
    """The grants of core/roles/grants.toml, validated: which role may do what on which table."""

    roles: dict[str, str]  # short name -> purpose
    tables: dict[str, dict[str, list[str]]]  # pattern -> role -> privileges
    append_only: tuple[str, ...]
    temporary: tuple[str, ...]
    functions: dict[str, list[str]] = field(default_factory=dict)
    role_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    stream_grants: dict[str, list[str]] = field(default_factory=dict)  # [streams] grants
    streams: tuple[StreamDecl, ...] = ()  # set by with_streams

    def with_streams(self, decls: tuple[StreamDecl, ...]) -> Policy:
        """This policy plus a decision for each stream table of the catalogue. Pure.

        A stream table gets ``[streams] grants`` and SELECT for each of its ``readers``;
        one that ``[tables]`` decides too, or an unknown reader, is a PolicyError.
        """
        tables = dict(self.tables)
        for d in decls:
            if d.table in self.tables:
                raise PolicyError(
                    f"{d.table} is a stream table (its decision comes from the stream"
                    " catalogue and [streams]): remove its line from [tables]"
                )
            if not self.stream_grants:
                raise PolicyError("grants.toml has no [streams] grants for the stream tables")
            grants = {role: list(privs) for role, privs in self.stream_grants.items()}
            for reader in d.readers:
                if reader not in self.roles:
                    raise PolicyError(f"{d.table}: unknown reader role {reader!r}")
                if not any(p.startswith("SELECT") for p in grants.get(reader, [])):
                    grants[reader] = ["SELECT", *grants.get(reader, [])]
            if d.table in self.append_only:
                raise PolicyError(f"{d.table}: a stream table cannot be append-only (retention)")
            tables[d.table] = grants
        return replace(self, tables=tables, streams=self.streams + tuple(decls))

    def role(self, short: str) -> str:
        """The database role for a short name, prefixed so it cannot clash with other roles."""
        return ROLE_PREFIX + short

    @property
    def role_names(self) -> list[str]:
        """Every database role this policy creates."""
        return [self.role(r) for r in self.roles]

    def decision(self, schema: str, name: str) -> dict[str, list[str]] | None:
        """The grants for one relation (exact name first, then a pattern); None if none."""
        qualified = name if schema == "public" else f"{schema}.{name}"
        if qualified in self.tables:
            return self.tables[qualified]
        for pattern, grants in self.tables.items():
            if "*" in pattern and fnmatch.fnmatchcase(qualified, pattern):
                return grants
        return None


def _split(privs: str) -> list[str]:
    """'SELECT, UPDATE (a, b)' -> ['SELECT', 'UPDATE (a, b)'] (commas inside () kept)."""
    out, depth, cur = [], 0, ""
    for ch in privs:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _grants(rel: str, grants: Any, roles: dict[str, str]) -> dict[str, list[str]]:
    """One ``{ role = "PRIVILEGES" }`` table, validated."""
    if not isinstance(grants, dict):
        raise PolicyError(f'{rel}: expected {{ role = "PRIVILEGES" }}, got {grants!r}')
    out: dict[str, list[str]] = {}
    for role, privs in grants.items():
        if role not in roles:
            raise PolicyError(f"{rel}: unknown role {role!r}")
        parsed = _split(str(privs))
        for p in parsed:
            if not _PRIVILEGE.match(p):
                raise PolicyError(f"{rel}: {role}: privilege {p!r} is not allowed")
        out[role] = parsed
    return out


def _parse_tables(data: dict[str, Any], roles: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Relation -> role -> privileges, each privilege checked against the allowed words."""
    return {rel: _grants(rel, g, roles) for rel, g in data.get("tables", {}).items()}


def _check_append_only(
    tables: dict[str, dict[str, list[str]]], append_only: tuple[str, ...]
) -> None:
    """No role may change or delete rows of an append-only table."""
    for rel in append_only:
        for role, privs in tables.get(rel, {}).items():
            bad = [p for p in privs if p.split("(")[0].strip() in _FORBIDDEN_ON_APPEND_ONLY]
            if bad:
                raise PolicyError(f"{rel} is append-only but {role} would get {bad}")


def _parse_role_settings(data: dict[str, Any], roles: dict[str, str]) -> dict[str, dict[str, str]]:
    """Per-role server settings, limited to safe names and values."""
    role_settings: dict[str, dict[str, str]] = {}
    for who, values in data.get("role_settings", {}).items():
        if who not in roles:
            raise PolicyError(f"role_settings: unknown role {who!r}")
        for key, value in values.items():
            if not _SETTING.match(key) or not _SETTING_VALUE.match(str(value)):
                raise PolicyError(f"role_settings: {who}: {key} = {value!r} is not allowed")
        role_settings[who] = {str(k): str(v) for k, v in values.items()}
    return role_settings


def parse_policy(data: dict[str, Any]) -> Policy:
    """Validate grants.toml fully before any grant runs, so a typo fails the migration
    instead of leaving a role with the wrong rights."""
    roles = {str(k): str(v) for k, v in data.get("roles", {}).items()}
    if not roles:
        raise PolicyError("grants.toml declares no roles")
    tables = _parse_tables(data, roles)
    stream_grants = _grants("[streams] grants", data.get("streams", {}).get("grants", {}), roles)
    append_only = tuple(data.get("append_only", {}).get("tables", []))
    _check_append_only(tables, append_only)
    temporary = tuple(data.get("database", {}).get("temporary", []))
    functions = {str(k): list(v) for k, v in data.get("functions", {}).items()}
    for who in [*temporary, *(r for rs in functions.values() for r in rs)]:
        if who not in roles:
            raise PolicyError(f"unknown role {who!r}")
    role_settings = _parse_role_settings(data, roles)
    return Policy(roles, tables, append_only, temporary, functions, role_settings, stream_grants)


def load_policy() -> Policy:
    """The policy shipped with the package (package data, so an installed wheel has it),
    with a decision for every table of the installed stream catalogue."""
    text = (resources.files(PACKAGE) / "grants.toml").read_text(encoding="utf-8")
    return parse_policy(tomllib.loads(text)).with_streams(declared())


def _stream_views(conn: psycopg.Connection, policy: Policy) -> None:
    """Create or refresh ``grafana.<table>`` for every stream table that exists."""
    if conn.execute("SELECT to_regnamespace('grafana')").fetchone() == (None,):
        return
    done: set[str] = set()
    for d in policy.streams:
        if d.table in done or conn.execute(
            "SELECT to_regclass(%s)", [f'public."{d.table}"']
        ).fetchone() == (None,):
            continue
        done.add(d.table)
        try:
            with conn.transaction():  # savepoint: a changed column list cannot be replaced
                conn.execute(grafana_view_sql(d))
        except psycopg.errors.InvalidTableDefinition:
            conn.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier("grafana", d.table)))
            conn.execute(grafana_view_sql(d))
            log.info(L_("grafana.%s recreated with the catalogue's columns"), d.table)


def relations(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(schema, name, relkind) of every relation a grant decision must cover."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY(%s) AND c.relkind::text = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "   AND d.objid = c.oid AND d.deptype = 'e')"  # objects of an extension
        " ORDER BY 1, 2",
        [list(SCHEMAS), list(RELKINDS)],
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def uncovered(conn: psycopg.Connection, policy: Policy | None = None) -> list[str]:
    """Relations that no grant decision covers (they get nothing)."""
    policy = policy or load_policy()
    return [f"{s}.{n}" for s, n, _ in relations(conn) if policy.decision(s, n) is None]


def _ensure_roles(conn: psycopg.Connection, policy: Policy) -> None:
    for name in policy.role_names:
        row = conn.execute(
            "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls,"
            " rolcanlogin FROM pg_roles WHERE rolname = %s",
            [name],
        ).fetchone()
        if row is None:
            try:
                with conn.transaction():  # a savepoint: the race below must not abort apply
                    conn.execute(
                        sql.SQL(
                            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                            " NOREPLICATION NOBYPASSRLS"
                        ).format(sql.Identifier(name))
                    )
                log.info(L_("created database role %s"), name)
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass  # roles are per server: another database's migrate created it just now
        elif row[0] or not row[1]:
            conn.execute(
                sql.SQL(
                    "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                    " NOBYPASSRLS"
                ).format(sql.Identifier(name))
            )
            log.warning(L_("database role %s had extra attributes: reset"), name)
    for short, values in policy.role_settings.items():
        name = policy.role(short)
        row = conn.execute(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
            " WHERE r.rolname = %s AND s.setdatabase = 0",
            [name],
        ).fetchone()
        have = set(row[0]) if row and row[0] else set()
        for key, value in values.items():
            if f"{key}={value}" not in have:
                conn.execute(
                    sql.SQL("ALTER ROLE {} SET {} = {}").format(
                        sql.Identifier(name), sql.Identifier(key), sql.Literal(value)
                    )
                )


def _sequences(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT sn.nspname, s.relname FROM pg_class s"
        " JOIN pg_namespace sn ON sn.oid = s.relnamespace"
        " JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid"
        "   AND d.deptype IN ('a', 'i')"
        " WHERE s.relkind = 'S' AND d.refobjid = %s::regclass",
        [f'"{schema}"."{table}"'],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _grant_database(conn: psycopg.Connection, policy: Policy, everyone: sql.Composable) -> None:
    """CONNECT for every role, TEMPORARY only where declared, no schema rights yet."""
    roles = [sql.Identifier(r) for r in policy.role_names]
    db = sql.Identifier(conn.info.dbname)
    conn.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM {}").format(db, everyone))
    conn.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, sql.SQL(", ").join(roles))
    )
    for short in policy.temporary:
        conn.execute(
            sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
                db, sql.Identifier(policy.role(short))
            )
        )
    for schema in SCHEMAS:
        if conn.execute("SELECT to_regnamespace(%s)", [schema]).fetchone() == (None,):
            continue
        conn.execute(
            sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
                sql.Identifier(schema), sql.SQL(", ").join(roles)
            )
        )


def _grant_relation(
    conn: psycopg.Connection,
    policy: Policy,
    schema: str,
    name: str,
    everyone: sql.Composable,
    users: dict[str, set[str]],
) -> bool:
    """Revoke everything on one relation and its sequences, then grant its decision;
    False when grants.toml has none. Roles granted something are added to ``users``."""
    rel = sql.Identifier(schema, name)
    conn.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(rel, everyone))
    seqs = _sequences(conn, schema, name)
    for s_schema, s_name in seqs:
        conn.execute(
            sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(
                sql.Identifier(s_schema, s_name), everyone
            )
        )
    grants = policy.decision(schema, name)
    if grants is None:
        return False
    for short, privs in grants.items():
        role = sql.Identifier(policy.role(short))
        users[schema].add(short)
        # Privilege text was validated against _PRIVILEGE (keywords, identifiers).
        conn.execute(
            sql.SQL("GRANT {} ON TABLE {} TO {}").format(sql.SQL(", ".join(privs)), rel, role)
        )
        if any(p.startswith("INSERT") for p in privs):
            for s_schema, s_name in seqs:
                conn.execute(
                    sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
                        sql.Identifier(s_schema, s_name), role
                    )
                )
    return True


def _grant_schemas(conn: psycopg.Connection, policy: Policy, users: dict[str, set[str]]) -> None:
    """USAGE on each existing schema for exactly the roles granted something in it."""
    for schema, shorts in users.items():
        if shorts and conn.execute("SELECT to_regnamespace(%s)", [schema]).fetchone() != (None,):
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(schema),
                    sql.SQL(", ").join(sql.Identifier(policy.role(s)) for s in sorted(shorts)),
                )
            )


def _grant_functions(conn: psycopg.Connection, policy: Policy, everyone: sql.Composable) -> None:
    """EXECUTE on the declared functions (that exist) for their declared callers only."""
    for signature, callers in policy.functions.items():
        found = conn.execute("SELECT to_regprocedure(%s)::text", [signature]).fetchone()
        if found is None or found[0] is None:
            continue
        fn = sql.SQL(found[0])  # the catalogue's own spelling of an existing function
        conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM {}").format(fn, everyone))
        for short in callers:
            conn.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    fn, sql.Identifier(policy.role(short))
                )
            )


def apply(conn: psycopg.Connection, policy: Policy | None = None) -> list[str]:
    """Create the roles and re-apply every grant in one transaction; returns the
    relations no decision covers (they are left with no rights for any service role)."""
    policy = policy or load_policy()
    roles = [sql.Identifier(r) for r in policy.role_names]
    everyone = sql.SQL(", ").join([sql.SQL("PUBLIC"), *roles])
    missing: list[str] = []
    with conn.transaction():
        _ensure_roles(conn, policy)
        _stream_views(conn, policy)
        _grant_database(conn, policy, everyone)
        users: dict[str, set[str]] = {s: set() for s in SCHEMAS}
        users["public"].update(policy.roles)  # functions such as time_bucket live there
        for schema, name, _kind in relations(conn):
            if not _grant_relation(conn, policy, schema, name, everyone, users):
                missing.append(f"{schema}.{name}")
        _grant_schemas(conn, policy, users)
        _grant_functions(conn, policy, everyone)
    for name in missing:
        log.warning(
            L_("no grant decision for %s in core/roles/grants.toml: no role may use it"), name
        )
    return missing


def password_env(short: str) -> str:
    """The environment variable holding a role's password, e.g. MEBUKU_DB_API_PASSWORD."""
    return f"MEBUKU_DB_{short.upper()}_PASSWORD"


def set_passwords(
    conn: psycopg.Connection, passwords: dict[str, str], policy: Policy | None = None
) -> list[str]:
    """Set the given roles' passwords (short name -> clear text); returns the roles set.

    The server receives a SCRAM-SHA-256 verifier, never the password itself.
    """
    policy = policy or load_policy()
    done = []
    for short, password in passwords.items():
        if short not in policy.roles:
            raise PolicyError(f"unknown role {short!r}")
        if not password:
            continue
        role = policy.role(short)
        verifier = conn.pgconn.encrypt_password(
            password.encode(), role.encode(), b"scram-sha-256"
        ).decode()
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
        )
        done.append(role)
    return done


def passwords_from(settings: Settings, policy: Policy | None = None) -> dict[str, str]:
    """Role passwords given in the environment (MEBUKU_DB_<ROLE>_PASSWORD), by short name."""
    policy = policy or load_policy()
    out = {}
    for short in policy.roles:
        secret: SecretStr | None = getattr(settings, f"db_{short}_password", None)
        if secret is not None and secret.get_secret_value():
            out[short] = secret.get_secret_value()
    return out


def role_url(url: str, short: str, password: str | None = None) -> str:
    """The same server and database, logged in as ``mebuku_<short>``.

    Without a password (the embedded server trusts localhost) any password in ``url``
    is dropped, never reused for another role. URLs stay URLs; conninfo stays conninfo.
    """
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        auth = quote(ROLE_PREFIX + short, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))
    params = conninfo_to_dict(url)
    params["user"] = ROLE_PREFIX + short
    params.pop("password", None)
    if password:
        params["password"] = password
    return make_conninfo(**params)  # type: ignore[arg-type]


__all__ = [
    "Policy",
    "PolicyError",
    "apply",
    "load_policy",
    "parse_policy",
    "password_env",
    "passwords_from",
    "relations",
    "role_url",
    "set_passwords",
    "uncovered",
]
