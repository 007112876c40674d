"""The database half of the privacy scans: every stored value that could hold a number."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg

_COLUMNS = (
    "SELECT c.table_schema, c.table_name, c.column_name, c.data_type"
    " FROM information_schema.columns c"
    " JOIN information_schema.tables t USING (table_schema, table_name)"
    " WHERE t.table_type = 'BASE TABLE'"
    " AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
    # SHA-256 checksums of the repository's migration files, not data anyone sent
    " AND c.table_name <> 'schema_migrations'"
    " AND c.data_type IN ('text', 'character varying', 'bytea', 'jsonb', 'json',"
    " 'ARRAY', 'character')"
)


def stored_values(conn: psycopg.Connection) -> Iterator[tuple[str, str | bytes]]:
    """(``table.column``, value) of every text-like and bytea value in every table:
    bytea as its bytes (digits stored as ASCII), everything else as text."""
    cols = conn.execute(_COLUMNS).fetchall()
    assert len(cols) > 20  # the scan sees the whole schema
    for schema, table, col, dtype in cols:
        expr = f'"{col}"' if dtype == "bytea" else f'"{col}"::text'
        q = f'SELECT {expr} FROM "{schema}"."{table}" WHERE "{col}" IS NOT NULL'
        for (value,) in conn.execute(q.encode()):
            yield f"{table}.{col}", bytes(value) if dtype == "bytea" else value


# Random identifiers (UUIDs, hex digests and ids) hold twelve digits in a row, with a valid
# check digit, in about 1 of 400-500 values; they are not numbers anyone sent. A number
# written inside one (``ab123456789018cd``) is not a way anyone writes an Individual Number.
_RANDOM_IDS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])[0-9a-f]{16,}(?![0-9A-Za-z])",
    re.IGNORECASE,
)


def without_random_ids(text: str) -> str:
    """``text`` with UUIDs and hex tokens of 16+ characters (digests, key ids) blanked."""
    return _RANDOM_IDS.sub(" ", text)
