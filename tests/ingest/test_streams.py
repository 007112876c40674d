"""Contract tests over the stream catalogue (ingest/streams.py), one battery per stream.

A new catalogue entry is covered here with no new test code: its JSON Schema and its
parser agree (examples pass both; generic violations derived from the schema fail
both), its table in the database has the catalogue's columns and key, the broker ACL
lets its own device (and no other) publish it, the Grafana role reads it through a
generated ``grafana.<table>`` view and never the table, each service role has exactly
the grants the catalogue implies (no grants.toml line), and the ingest dashboard charts
its rows once the simulator's messages went through the parser and the writer. The
series API has its own battery in tests/api/test_stream_series.py, the real broker in
tests/core/test_broker_acl.py.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core import roles
from core.broker import Account, bus_account, fiveg_account
from core.i18n import gettext
from core.roles import role_url
from core.streams import RECEIVED_AT, declared
from ingest.dashboard import ingest_health
from ingest.parse import parse_message
from ingest.rows import Reject, Rows
from ingest.streams import STREAMS, Stream
from tests.grafana.panel_runner import MAX_DATA_POINTS, MIN_INTERVAL, run, seed_all, time_range
from tests.support.grafana_macros import QueryContext, expand, panel_interval

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
IDS = {"vehicle_id": "av-01", "site_id": "campus", "device_id": "phone-campus-1"}


def _topic(stream: Stream) -> str:
    return stream.topic_for(**{k: IDS[k] for k in stream.ids})


def _schema(stream: Stream) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / stream.schema).read_text())
    return doc


def _violations(schema: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Payloads the schema refuses, made from its first example by breaking one rule."""
    ex = schema["examples"][0]
    if schema.get("type") != "object":
        return
    for key in schema.get("required", []):
        yield f"without {key}", {k: v for k, v in ex.items() if k != key}
    for key, prop in schema["properties"].items():
        if "maximum" in prop:
            yield f"{key} above maximum", {**ex, key: prop["maximum"] + 1}
        if "minimum" in prop:
            yield f"{key} below minimum", {**ex, key: prop["minimum"] - 1}
        if "enum" in prop:
            yield f"{key} not in enum", {**ex, key: f"not-{prop['enum'][0]}"}
        if prop.get("type") == "string":
            yield f"{key} not a string", {**ex, key: 12}
            if "maxLength" in prop:
                yield f"{key} too long", {**ex, key: "x" * (prop["maxLength"] + 1)}
        if prop.get("type") == "number":
            yield f"{key} not a number", {**ex, key: "12"}


def _ids(streams: tuple[Stream, ...]) -> list[str]:
    return [s.table.name + ":" + s.topic.rsplit("/", 1)[1] for s in streams]


every_stream = pytest.mark.parametrize("stream", STREAMS, ids=_ids(STREAMS))


@every_stream
def test_schema_and_parser_agree(stream: Stream) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = _schema(stream)
    assert schema["title"] == stream.topic
    validator = jsonschema_rs.Draft202012Validator(schema)
    assert schema["examples"], f"{stream.schema} needs examples"
    for ex in schema["examples"]:
        validator.validate(ex)
        parsed = parse_message(_topic(stream), json.dumps(ex).encode(), NOW)
        assert isinstance(parsed, Rows), parsed
        assert parsed.table == stream.table
        assert all(len(r) == len(stream.table.columns) for r in parsed.rows)
    for why, bad in _violations(schema):
        assert not validator.is_valid(bad), f"schema accepts a payload {why}"
        parsed = parse_message(_topic(stream), json.dumps(bad).encode(), NOW)
        assert isinstance(parsed, Reject), f"parser accepts a payload {why}: {parsed}"


def test_every_schema_file_belongs_to_a_stream() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(s.schema for s in STREAMS)


@every_stream
def test_table_has_the_catalogue_columns_and_key(stream: Stream, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                [stream.table.name],
            )
        ]
        key = {
            r[0]
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = %s::regclass AND i.indisprimary",
                [stream.table.name],
            )
        }
    assert columns == [*stream.table.columns, "received_at", *stream.table.derived]
    assert key == set(stream.table.key)


def _account(stream: Stream, **ids: str) -> Account:
    """The broker account of the device kind whose ids fill the stream's topic."""
    if set(stream.ids) == {"vehicle_id"}:
        return bus_account(ids["vehicle_id"])
    if set(stream.ids) == {"site_id", "device_id"}:
        return fiveg_account(ids["device_id"], [ids["site_id"]])
    raise AssertionError(f"{stream.topic}: no broker account kind publishes {stream.ids}")


@every_stream
def test_the_broker_acl_lets_only_its_own_device_publish_it(stream: Stream) -> None:
    topic = _topic(stream)
    account = _account(stream, **IDS)
    assert topic in account.write
    # Derived from the catalogue's pattern: only the device's own ids, no wildcards.
    assert all("+" not in t and "#" not in t for t in account.write)
    other = {k: f"other-{v}" for k, v in IDS.items()}
    assert topic not in _account(stream, **other).write
    assert stream.topic_for(**{k: other[k] for k in stream.ids}) in _account(stream, **other).write


def test_core_reads_the_catalogue_through_its_entry_point() -> None:
    assert declared() == tuple(s.declaration() for s in STREAMS)


def _view_columns(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, table],
        )
    ]


@every_stream
def test_grafana_reads_the_stream_through_its_generated_view(
    stream: Stream, seeded_db: str
) -> None:
    table = stream.table.name
    with psycopg.connect(seeded_db) as conn:
        assert _view_columns(conn, "grafana", table) == [*stream.table.columns, RECEIVED_AT]
        plain = [c for c in stream.table.columns if c not in stream.grafana]
        cols = ", ".join(plain)
        expected = conn.execute(f"SELECT {cols} FROM public.{table} ORDER BY {cols}").fetchall()
    with psycopg.connect(role_url(seeded_db, "grafana")) as conn:
        seen = conn.execute(f"SELECT {cols} FROM grafana.{table} ORDER BY {cols}").fetchall()
        assert seen and seen == expected  # every row, the unblurred columns as stored
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT 1 FROM public.{table} LIMIT 1")


def _has(conn: psycopg.Connection, role: str, table: str, privilege: str) -> bool:
    row = conn.execute(
        "SELECT has_table_privilege(%s, %s, %s)", [roles.ROLE_PREFIX + role, table, privilege]
    ).fetchone()
    return bool(row and row[0])


@every_stream
def test_stream_table_grants_come_from_the_catalogue(stream: Stream, db_url: str) -> None:
    table = stream.table.name
    text = (resources.files(roles.PACKAGE) / "grants.toml").read_text(encoding="utf-8")
    assert table not in tomllib.loads(text)["tables"], "decided by the catalogue, not a line"
    policy = roles.load_policy()
    with psycopg.connect(db_url) as conn:
        assert roles.uncovered(conn, policy) == []
        # The writer appends and cannot delete; retention deletes; the API reads only.
        assert _has(conn, "ingest", table, "INSERT") and _has(conn, "ingest", table, "SELECT")
        assert not _has(conn, "ingest", table, "DELETE")
        assert not _has(conn, "ingest", table, "UPDATE")
        assert _has(conn, "maintain", table, "DELETE")
        assert _has(conn, "api", table, "SELECT") and not _has(conn, "api", table, "INSERT")
        assert not _has(conn, "grafana", table, "SELECT")
        for short in set(policy.roles) - {"ingest", "api", "maintain", "grafana"}:
            assert _has(conn, short, table, "SELECT") == (short in stream.readers), short


@pytest.fixture(scope="module")
def seeded_db(db_url: str) -> str:
    seed_all(db_url)
    return db_url


@every_stream
def test_stream_is_charted_on_the_ingest_dashboard(stream: Stream, seeded_db: str) -> None:
    # The simulator's messages went through parse_message and the writer (ingest's panel
    # seed); the panel, run as Grafana's role, must show this stream's rows.
    d = ingest_health("en")
    target = next(p for p in d["panels"] if p["title"] == "Rows stored per minute")["targets"][0]
    start, end = time_range(d, datetime.now(UTC))
    ctx = QueryContext(start, end, panel_interval(start, end, MAX_DATA_POINTS, MIN_INTERVAL), False)
    with psycopg.connect(role_url(seeded_db, "grafana")) as conn:
        desc, rows = run(conn, expand(target["rawSql"], ctx))
    metric = [c.name for c in desc].index("metric")
    assert gettext(stream.title or stream.name, "en") in {r[metric] for r in rows}
