"""API keys for operators, council and city staff: random, stored as SHA-256 digests.

A key looks like ``mbk_<key id>_<secret>``. The key id is public (it names the key in
``mebuku operators list`` and logs); the secret carries 256 random bits, so a fast digest
is a safe lookup key and a stolen database yields no usable key. The full key is shown
once, when it is created.

Other packages' tests create keys with :func:`create_api_key`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import AsyncConnection

from core.i18n import cli_gettext as _
from core.operators import canonical_operator_id
from core.web import Principal, Role

KEY_PREFIX = "mbk_"
STAFF_ROLES = frozenset({Role.OPERATOR, Role.COUNCIL, Role.ADMIN})
_OPERATOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about an API key: never the key itself, only its id and owner."""

    key_id: str
    role: Role
    operator_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def digest(key: str) -> bytes:
    """Keys are stored as SHA-256 digests only, so a database dump holds no usable key."""
    return hashlib.sha256(key.encode()).digest()


def new_key() -> tuple[str, str]:
    """A fresh (key id, full key).

    The id is drawn again while it holds twelve digits in a row: one in about 500 hex ids
    would, and the request screen would then refuse it (and the scans flag it) as a
    possible Individual Number wherever it appears, e.g. in ``/v1/keys/{key_id}``.
    """
    key_id = secrets.token_hex(8)
    while _TWELVE_DIGITS.search(key_id):
        key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def check_scope(role: Role | str, operator_id: str | None) -> Role:
    """The role, after checking that operator keys (and only they) name an operator."""
    try:
        r = Role(role)
    except ValueError:
        raise ValueError(
            _("unknown role {role}: use operator, council or admin").format(role=repr(role))
        ) from None
    if r not in STAFF_ROLES:
        raise ValueError(_("API keys are for operator, council or admin; residents sign in"))
    if r is Role.OPERATOR:
        if not operator_id:
            raise ValueError(_("an operator key needs an operator id"))
        if not _OPERATOR_ID.match(operator_id):
            raise ValueError(
                _("operator id {id}: use letters, digits, '_', '.', '-'").format(
                    id=repr(operator_id)
                )
            )
    elif operator_id is not None:
        raise ValueError(_("a {role} key is not scoped to an operator").format(role=r.value))
    return r


def create_api_key(
    conn_or_url: psycopg.Connection | str,
    role: Role | str,
    operator_id: str | None = None,
    label: str = "",
) -> str:
    """Create a key and return it in full (it cannot be read back later)."""
    r = check_scope(role, operator_id)
    if operator_id is not None:  # one identity per operator: store its canonical id
        operator_id = canonical_operator_id(operator_id)
    key_id, key = new_key()
    params = [key_id, digest(key), r.value, operator_id, label]
    insert = (
        "INSERT INTO api_keys (key_id, secret_sha256, role, operator_id, label)"
        " VALUES (%s, %s, %s, %s, %s)"
    )
    if isinstance(conn_or_url, str):
        with psycopg.connect(conn_or_url, autocommit=True) as conn:
            conn.execute(insert, params)
    else:
        conn_or_url.execute(insert, params)
    return key


def revoke_api_key(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke a key at once; False when it was unknown or revoked already."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
        [key_id],
    )
    return cur.rowcount > 0


def list_api_keys(conn: psycopg.Connection, include_revoked: bool = False) -> list[ApiKeyInfo]:
    """Every key without its secret, for ``mebuku operators keys``."""
    rows = conn.execute(
        "SELECT key_id, role, operator_id, label, created_at, revoked_at, last_used_at"
        " FROM api_keys WHERE %s OR revoked_at IS NULL ORDER BY created_at, key_id",
        [include_revoked],
    ).fetchall()
    return [ApiKeyInfo(r[0], Role(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]


# last_used_at is written at most once a minute per key, so reads do not turn into writes.
_RESOLVE = """
WITH k AS (
    SELECT key_id, role, operator_id, last_used_at FROM api_keys
    WHERE secret_sha256 = %s AND revoked_at IS NULL
), touched AS (
    UPDATE api_keys a SET last_used_at = now() FROM k
    WHERE a.key_id = k.key_id
      AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
)
SELECT key_id, role, operator_id FROM k
"""


async def resolve_api_key(conn: AsyncConnection, key: str) -> Principal | None:
    """The caller a live key belongs to, else None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    cur = await conn.execute(_RESOLVE, [digest(key)])
    row = await cur.fetchone()
    if row is None:
        return None
    key_id, role, operator_id = row
    if operator_id is not None:  # keys made before the registry may hold an alias
        operator_id = canonical_operator_id(operator_id)
    return Principal(role=Role(role), subject=operator_id or key_id, operator_id=operator_id)
