"""The HTTP contract between the API service and the domain packages.

Domains contribute FastAPI routers (``<package>/http.py`` exposing ``router``) and never
import ``api``. They declare who may call an endpoint with :func:`require_roles`, get a
database connection with :func:`db_conn` and fail with :class:`ProblemError`. The API
service (``api/``) supplies the other half: it verifies credentials through
``app.state.authenticate`` (set by its app factory), opens ``app.state.pool`` and turns
``ProblemError`` into RFC 9457 ``application/problem+json`` responses.

Domain errors become problems in one place: next to ``router`` a domain module may export
``problem_handlers``, a mapping from its exception classes to functions that turn one
into a :class:`ProblemError` (:data:`ProblemHandlers`). The API installs each as an
exception handler once, when it mounts the router, so a route simply lets a domain error
propagate and every route answers it the same way (titles translated as for any
``ProblemError``).

Default deny: an endpoint without ``require_roles`` is refused by the API's route check,
unless it depends on :func:`public` (sign-in challenges, for example). Authentication
endpoints add :func:`rate_limit` so one client address cannot hammer them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection

from core.i18n import F_

PROBLEM_BASE = "https://mebuku.maebashi.example/problems/"
SCREENED_SCOPE_KEY = "mebuku.individual_number_screened"
"""ASGI scope key the API's request screen (``api/screen.py``) sets on every request it
let through, so a domain's own second-line screen need not parse the body again."""


class Role(StrEnum):
    """Who is calling: each role sees a different slice of the data."""

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


ProblemMapper = Callable[[Any], ProblemError]
"""Turns one domain exception into the problem the client sees (pure, no I/O)."""
ProblemHandlers = Mapping[type[Exception], ProblemMapper]
"""What a domain module exports as ``problem_handlers`` next to its ``router``."""


def problem_handlers_of(module: object) -> dict[type[Exception], ProblemMapper]:
    """A domain module's ``problem_handlers``, checked (empty when it declares none).

    Raises TypeError naming the module when a key is not an exception class or a value is
    not callable, so a typo stops the API at start instead of leaking a 500 later.
    """
    declared = getattr(module, "problem_handlers", None)
    if declared is None:
        return {}
    name = getattr(module, "__name__", repr(module))
    if not isinstance(declared, Mapping):
        raise TypeError(f"{name}.problem_handlers must be a mapping")
    out: dict[type[Exception], ProblemMapper] = {}
    for exc_type, mapper in declared.items():
        if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
            raise TypeError(f"{name}.problem_handlers: {exc_type!r} is not an exception class")
        if exc_type is Exception or not callable(mapper):
            raise TypeError(f"{name}.problem_handlers[{exc_type.__name__}] is not usable")
        out[exc_type] = mapper
    return out


# Credentials: residents send "Authorization: Bearer <session token>"; operators, council
# and admin staff send "X-API-Key: <key>". Declared here so OpenAPI lists both schemes.
bearer_scheme = HTTPBearer(auto_error=False, description="Resident session token")
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Operator, council or admin API key"
)

SECURITY_SCHEMES = (bearer_scheme, api_key_scheme)
"""The credentials :func:`require_roles` reads, in the order OpenAPI lists them."""

Authenticator = Callable[
    [Request, AsyncConnection, str | None, str | None], Awaitable[Principal | None]
]
"""``(request, conn, bearer token, API key)`` -> the caller, or None (set by the API)."""


class RequestConnection:
    """The request's pool connection, checked out on first use and returned once.

    The API puts one in every HTTP request's scope (:data:`CONNECTION_SCOPE_KEY`,
    ``api.middleware.RequestConnections``), which returns the connection to the pool after
    the response, even when the request is cancelled.
    """

    __slots__ = ("_state", "conn")

    def __init__(self, state: Any) -> None:
        self._state = state  # the app's state, whose ``pool`` the lifespan opens
        self.conn: AsyncConnection | None = None

    async def get(self) -> AsyncConnection:
        """The connection, from the pool on the first call (PoolTimeout: 503)."""
        if self.conn is None:
            self.conn = await self._state.pool.getconn()
        return self.conn

    async def release(self) -> None:
        """Back to the pool (which rolls back anything left open), at most once."""
        conn, self.conn = self.conn, None
        if conn is not None:
            await self._state.pool.putconn(conn)


CONNECTION_SCOPE_KEY = "mebuku.request_connection"
"""ASGI scope key of the request's :class:`RequestConnection`."""


async def db_conn(request: Request) -> AsyncConnection:
    """An autocommit connection from the API's pool for the length of one request.

    One per request: credentials are checked on the same connection the endpoint then
    uses (one pool checkout, not two). A plain function, not a generator: the API's
    middleware returns the connection, so FastAPI solves no exit stack per request.
    """
    holder: RequestConnection | None = request.scope.get(CONNECTION_SCOPE_KEY)
    if holder is None:
        raise RuntimeError(
            "core.web.db_conn needs api.middleware.RequestConnections (api.app.create_app)"
        )
    return await holder.get()


async def _authenticate(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None,
    api_key: str | None,
    conn: AsyncConnection,
) -> Principal:
    """The caller, from a session token or an API key; without either, a 401 problem."""
    authenticate: Authenticator | None = getattr(request.app.state, "authenticate", None)
    if authenticate is None:
        raise ProblemError(503, "auth-unavailable", "Authentication is not configured")
    token = bearer.credentials if bearer else None
    principal = await authenticate(request, conn, token, api_key)
    if principal is None:
        raise ProblemError(
            401,
            "unauthenticated",
            "Authentication required",
            "Send a resident session token (Authorization: Bearer) or an API key (X-API-Key).",
        )
    return principal


async def current_principal(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    api_key: str | None = Depends(api_key_scheme),
    conn: AsyncConnection = Depends(db_conn),
) -> Principal:
    """The verified caller (401 without valid credentials)."""
    return await _authenticate(request, bearer, api_key, conn)


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets only these roles through and returns the caller.

    It verifies the credentials itself (the same check as :func:`current_principal`) and
    reads them by calling :data:`bearer_scheme` and :data:`api_key_scheme` directly rather
    than declaring them as sub-dependencies, and takes the request's connection the same
    way: FastAPI then solves one dependency per request instead of four, about a tenth of
    a request's CPU.
    OpenAPI still lists both schemes on every such route (``api/openapi.py`` adds them
    from the :data:`SECURITY_SCHEMES` marker).
    """
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Principal:
        bearer = await bearer_scheme(request)
        api_key = await api_key_scheme(request)
        # the request's one connection (the endpoint's db_conn gets the same one)
        principal = await _authenticate(request, bearer, api_key, await db_conn(request))
        if principal.role not in allowed:
            raise ProblemError(
                403,
                "forbidden",
                "Not allowed for this role",
                F_("This endpoint is for: {roles}.", roles=", ".join(sorted(allowed))),
            )
        return principal

    dependency.__mebuku_roles__ = allowed  # type: ignore[attr-defined]
    dependency.__mebuku_security__ = SECURITY_SCHEMES  # type: ignore[attr-defined]
    return dependency


def ensure_own_operator(principal: Principal, operator_id: str) -> None:
    """Operators see only their own data; staff roles see all. Others' ids look absent."""
    if principal.role is Role.OPERATOR and principal.operator_id != operator_id:
        raise ProblemError(
            404, "not-found", "Not found", F_("No operator {operator}.", operator=repr(operator_id))
        )


def public() -> None:
    """Marks a route as open to anyone: ``dependencies=[Depends(public)]``.

    The API refuses to start when a domain route has neither this nor
    :func:`require_roles`; use it only for endpoints that must work before sign-in.
    """


public.__mebuku_public__ = True  # type: ignore[attr-defined]


IPNetwork = IPv4Network | IPv6Network


def _trusted_networks(request: Request) -> tuple[IPNetwork, ...]:
    """The app's trusted proxies (``MEBUKU_API_TRUSTED_PROXIES``), parsed once per app."""
    state = request.app.state
    nets: tuple[IPNetwork, ...] | None = getattr(state, "trusted_proxy_networks", None)
    if nets is None:
        settings = getattr(state, "settings", None)
        entries: list[str] = getattr(settings, "api_trusted_proxies", None) or []
        nets = tuple(ip_network(e, strict=False) for e in entries)
        state.trusted_proxy_networks = nets
    return nets


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        addr = ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[IPNetwork, ...]) -> str:
    """The real client address: ``peer`` unless it is a trusted proxy, then the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy.

    Each proxy appends the address it saw, so entries right of the first untrusted one were
    written by trusted proxies and everything left of it may be forged by the client. An
    entry that is not an address stops the walk at the last address a trusted proxy vouched
    for. Pure: ``forwarded_for`` is every ``X-Forwarded-For`` header value in order.
    """
    peer_ip = _ip(peer)
    if peer_ip is None or not trusted or not any(peer_ip in n for n in trusted):
        return str(peer_ip) if peer_ip is not None else peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer_ip
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break
        client = ip
        if not any(ip in n for n in trusted):
            break
    return str(client)


def client_address(request: Request) -> str:
    """The address rate limits and audit use: the peer, or behind a trusted reverse proxy
    the client it forwarded for (``MEBUKU_API_TRUSTED_PROXIES``; empty: never believed)."""
    peer = request.client.host if request.client else "unknown"
    return forwarded_client(
        peer, request.headers.getlist("x-forwarded-for"), _trusted_networks(request)
    )


@dataclass
class _Bucket:
    tokens: float
    stamp: float


def rate_limit(
    name: str,
    capacity: int = 10,
    per_seconds: float = 60.0,
    key: Callable[[Request], str] | None = None,
) -> Callable[[Request], Awaitable[None]]:
    """A token bucket per client address: ``capacity`` requests, refilled over ``per_seconds``.

    The address is :func:`client_address`: behind a trusted reverse proxy each resident
    gets their own bucket; a client cannot pick another bucket by sending X-Forwarded-For.

    ``key`` buckets by something else than the address (e.g. the signed-in resident, set on
    ``request.state`` by the caller's own dependency).

    In-process (one bucket set per app), which suits one API process per host. Over the
    limit the client gets 429 ``rate-limited`` with ``Retry-After``.
    """
    rate = capacity / per_seconds

    async def dependency(request: Request) -> None:  # async: runs on the loop, no races
        buckets: dict[tuple[str, str], _Bucket] | None = getattr(
            request.app.state, "rate_buckets", None
        )
        if buckets is None:
            buckets = {}
            request.app.state.rate_buckets = buckets
        client = client_address(request)
        if key is not None:
            client = key(request)
        now = time.monotonic()
        if len(buckets) > 10_000:  # forget addresses whose bucket has refilled
            for k in [k for k, b in buckets.items() if now - b.stamp > per_seconds]:
                del buckets[k]
        bucket = buckets.setdefault((name, client), _Bucket(float(capacity), now))
        bucket.tokens = min(float(capacity), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            retry = max(1, math.ceil((1.0 - bucket.tokens) / rate))
            raise ProblemError(
                429,
                "rate-limited",
                "Too many requests",
                F_("Try again in {seconds} s.", seconds=retry),
                retry_after=retry,
            )
        bucket.tokens -= 1.0

    dependency.__mebuku_rate_limit__ = name  # type: ignore[attr-defined]
    return dependency


auth_rate_limit = rate_limit("auth", capacity=10, per_seconds=60.0)
"""The limit for ``/v1/auth/*`` (sign-in challenges and responses): 10 a minute per address."""
