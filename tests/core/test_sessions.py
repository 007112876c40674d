"""Session tokens: only digests stored, expiry and revocation honoured."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from core import sessions


@pytest.mark.anyio
async def test_issue_resolve_expire_revoke(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        token, _ = await sessions.issue_session(conn, 41)
        assert await sessions.resolve_session(conn, token) == 41
        assert await sessions.resolve_session(conn, token + "x") is None
        cur = await conn.execute(
            "SELECT count(*) FROM auth_sessions WHERE token_hash = %s", [token.encode()]
        )
        assert (await cur.fetchone()) == (0,)  # the token itself is not stored
        expired, _ = await sessions.issue_session(conn, 41, ttl=timedelta(seconds=-1))
        assert await sessions.resolve_session(conn, expired) is None
        assert await sessions.revoke_session(conn, token)
        assert await sessions.resolve_session(conn, token) is None
        other, _ = await sessions.issue_session(conn, 42)
        assert await sessions.revoke_resident_sessions(conn, 42) == 1
        assert await sessions.resolve_session(conn, other) is None
