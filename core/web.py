"""The HTTP contract between the API service and the domain packages.

Domains contribute FastAPI routers (``<package>/http.py`` exposing ``router``) and never
import ``api``. They declare who may call an endpoint with :func:`require_roles`, get a
database connection with :func:`db_conn` and fail with :class:`ProblemError`. The API
service (``api/``) supplies the other half: it verifies credentials through
``app.state.authenticate`` (set by its app factory), opens ``app.state.pool`` and turns
``ProblemError`` into RFC 9457 ``application/problem+json`` responses.

Default deny: an endpoint without ``require_roles`` is refused by the API's route check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection

PROBLEM_BASE = "https://mebuku.maebashi.example/problems/"


class Role(StrEnum):
    RESIDENT = "resident"
    OPERATOR = "operator"
    COUNCIL = "council"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``subject`` is the resident id, operator id or key id."""

    role: Role
    subject: str
    operator_id: str | None = None
    resident_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)


class ProblemError(Exception):
    """An error the client should see, as RFC 9457 problem details.

    ``type_`` is a short stable slug (``"not-found"``); the API prefixes it with
    :data:`PROBLEM_BASE`. Extra keyword arguments become extension members.
    """

    def __init__(
        self, status: int, type_: str, title: str, detail: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.extra = extra


# Credentials: residents send "Authorization: Bearer <session token>"; operators, council
# and admin staff send "X-API-Key: <key>". Declared here so OpenAPI lists both schemes.
bearer_scheme = HTTPBearer(auto_error=False, description="Resident session token")
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Operator, council or admin API key"
)

Authenticator = Callable[[Request, str | None, str | None], Awaitable[Principal | None]]


async def current_principal(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    api_key: str | None = Depends(api_key_scheme),
) -> Principal:
    authenticate: Authenticator | None = getattr(request.app.state, "authenticate", None)
    if authenticate is None:
        raise ProblemError(503, "auth-unavailable", "Authentication is not configured")
    token = bearer.credentials if bearer else None
    principal = await authenticate(request, token, api_key)
    if principal is None:
        raise ProblemError(
            401,
            "unauthenticated",
            "Authentication required",
            "Send a resident session token (Authorization: Bearer) or an API key (X-API-Key).",
        )
    return principal


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets only these roles through and returns the caller."""
    allowed = frozenset(roles)

    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            raise ProblemError(
                403,
                "forbidden",
                "Not allowed for this role",
                f"This endpoint is for: {', '.join(sorted(allowed))}.",
            )
        return principal

    dependency.__mebuku_roles__ = allowed  # type: ignore[attr-defined]
    return dependency


async def db_conn(request: Request) -> AsyncIterator[AsyncConnection]:
    """An autocommit connection from the API's pool for the length of one request."""
    async with request.app.state.pool.connection() as conn:
        yield conn


def ensure_own_operator(principal: Principal, operator_id: str) -> None:
    """Operators see only their own data; staff roles see all. Others' ids look absent."""
    if principal.role is Role.OPERATOR and principal.operator_id != operator_id:
        raise ProblemError(404, "not-found", "Not found", f"No operator {operator_id!r}.")
