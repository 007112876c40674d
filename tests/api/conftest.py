"""An API app on the real test database and broker, with a test-only router and credentials.

The test-only router (``/v1/me/echo``, ``/v1/operators/{operator_id}/echo``) stands in for
domain endpoints so role isolation is proven even before the domain routers exist; it
reads a small table of its own, so "never the data" is checked against real rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from psycopg import AsyncConnection
from pydantic import BaseModel

from api.app import create_app
from core import sessions
from core.roles import role_url
from core.settings import Settings
from core.web import Principal, ProblemError, Role, db_conn, ensure_own_operator, require_roles
from tests.support.credentials import OPERATOR, OTHER_OPERATOR, Credentials, api_keys

RESIDENT_A = 1001
RESIDENT_B = 1002


class Echo(BaseModel):
    owner: str
    note: str


def echo_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["test"])

    async def note(conn: AsyncConnection, owner: str) -> Echo:
        cur = await conn.execute("SELECT note FROM test_echo_notes WHERE owner = %s", [owner])
        row = await cur.fetchone()
        if row is None:
            raise ProblemError(404, "not-found", "Not found")
        return Echo(owner=owner, note=row[0])

    @router.get("/me/echo", response_model=Echo)
    async def me(
        principal: Principal = Depends(require_roles(Role.RESIDENT)),
        conn: AsyncConnection = Depends(db_conn),
    ) -> Echo:
        return await note(conn, f"resident:{principal.resident_id}")

    @router.get("/operators/{operator_id}/echo", response_model=Echo)
    async def operator(
        operator_id: str,
        principal: Principal = Depends(require_roles(Role.OPERATOR, Role.COUNCIL, Role.ADMIN)),
        conn: AsyncConnection = Depends(db_conn),
    ) -> Echo:
        ensure_own_operator(principal, operator_id)
        return await note(conn, f"operator:{operator_id}")

    return router


@pytest.fixture(scope="module")
async def creds(db_url: str, anyio_backend: str) -> Credentials:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS test_echo_notes (owner text PRIMARY KEY, note text)"
        )
        conn.execute("GRANT SELECT ON test_echo_notes TO mebuku_api")
        conn.execute(
            "INSERT INTO test_echo_notes VALUES (%s, 'route 11 fuel report'),"
            " (%s, 'confidential kanto-taxi roster'), (%s, 'resident A subsidy'),"
            " (%s, 'resident B subsidy') ON CONFLICT DO NOTHING",
            [
                f"operator:{OPERATOR}",
                f"operator:{OTHER_OPERATOR}",
                f"resident:{RESIDENT_A}",
                f"resident:{RESIDENT_B}",
            ],
        )
    async with await AsyncConnection.connect(db_url, autocommit=True) as conn:
        resident_a, _ = await sessions.issue_session(conn, RESIDENT_A)
        resident_b, _ = await sessions.issue_session(conn, RESIDENT_B)
    return replace(api_keys(db_url), resident_a=resident_a, resident_b=resident_b)


@pytest.fixture(scope="module")
def client(settings: Settings, creds: Credentials, db_url: str) -> Iterator[TestClient]:
    # As deployed: the API logs in as mebuku_api (core/roles/grants.toml).
    api = settings.model_copy(update={"database_url": role_url(db_url, "api")})
    app = create_app(api, extra_routers=[echo_router()])
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
