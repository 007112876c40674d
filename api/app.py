"""The API app factory: credentials, domain routers, default deny, errors, limits, metrics.

``create_app(settings)`` gives a FastAPI app whose lifespan opens the async connection
pool. Domain routers are declared in the ``mebuku.routers`` entry-point group
(:data:`DOMAIN_ROUTERS`, core/plugins.py); a declared module that fails to import stops the
app with a :class:`core.plugins.PluginError` naming it. Before serving, every route is checked:
it must depend on ``core.web.require_roles`` or ``core.web.public``, or be one of the
framework's documentation routes, else the app refuses to start.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from psycopg import AsyncConnection
from starlette.routing import BaseRoute

from api import health, problems
from api.grafana_source import router as grafana_router
from api.keys import resolve_api_key
from api.middleware import RequestConnections, RequestMetrics
from api.openapi import install_openapi
from api.plugins import import_optional
from api.route_index import install_route_index
from api.routes import effective_routes, route_access
from api.screen import RequestScreen
from core import plugins
from core.db import async_pool
from core.sessions import lookup_session
from core.settings import Settings
from core.web import Principal, Role, problem_handlers_of

log = logging.getLogger(__name__)

POOL_TIMEOUT_S = 5.0  # a request waits this long for a database connection, then 503
# The modules of the mebuku.routers entry points (pyproject.toml), in mounting order.
DOMAIN_ROUTERS: tuple[str, ...] = tuple(plugins.modules("mebuku.routers"))
# Routes FastAPI adds itself; everything else must declare roles or public.
PUBLIC_FRAMEWORK_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
# FastAPI's native OpenTelemetry tracing, metrics and logs (FastAPI >= 0.16x), all off: see
# create_app. Empty where the installed FastAPI has no such option.
NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)

DESCRIPTION = """
Mebuku's HTTP API for Maebashi City: bus operations, fares and subsidies, local-5G KPIs.

**Credentials.** Residents send `Authorization: Bearer <session token>` (from the My
Number Card sign-in under `/v1/auth/`). Operators, council and city staff send
`X-API-Key: <key>` (created with `mebuku operators create`). Every endpoint names the
roles it admits; anything else is refused.

**Errors** are RFC 9457 problem details (`application/problem+json`) whose `type` is a
stable URI; validation errors list the fields in `errors`.
"""


def import_router(module: str) -> APIRouter | None:
    """``module.router``, or None when the module does not exist (for tools that may run
    without a domain; :func:`create_app` uses :func:`load_router`, which never skips)."""
    mod = import_optional(module)
    if mod is None:
        return None
    router = getattr(mod, "router", None)
    if not isinstance(router, APIRouter):
        raise TypeError(f"{module}.router must be a fastapi.APIRouter")
    return router


def load_router(module: str) -> tuple[APIRouter, ModuleType]:
    """``module.router`` of a declared domain: any failure raises PluginError naming it."""
    try:
        mod = importlib.import_module(module)
    except Exception as e:
        raise plugins.PluginError(
            f"mebuku.routers module {module!r} failed to load: {type(e).__name__}: {e}"
        ) from e
    router = getattr(mod, "router", None)
    if not isinstance(router, APIRouter):
        raise TypeError(f"{module}.router must be a fastapi.APIRouter")
    return router, mod


def mount(app: FastAPI, router: APIRouter) -> None:
    """Serve ``router``'s routes from the app's own route table.

    FastAPI's ``include_router`` keeps the router as a nested table that it matches twice
    on every request (about a tenth of a request's CPU here). A router's routes already
    carry its prefix, tags and dependencies, so when it holds only plain routes and no
    start-up hooks they are added as they are: the same paths, checks and OpenAPI, one
    level to match. Anything else is included the usual way.
    """
    plain = all(isinstance(r, APIRoute) for r in router.routes)
    if plain and not (router.on_startup or router.on_shutdown):
        app.router.routes.extend(router.routes)
    else:
        app.include_router(router)


def undeclared_routes(routes: Iterable[BaseRoute]) -> list[str]:
    """Routes that declare neither roles nor public access (default deny)."""
    bad: list[str] = []
    for view in effective_routes(routes):
        if view.is_api:
            if route_access(view) is None:
                bad.append(f"{','.join(sorted(view.methods))} {view.path}")
        elif view.path not in PUBLIC_FRAMEWORK_PATHS:
            bad.append(f"{type(view.original).__name__} {view.path}")
    return bad


def enforce_default_deny(app: FastAPI) -> None:
    """Refuse to start when a route declares neither its roles nor that it is public, so a new route
    can never be open by accident."""
    bad = undeclared_routes(app.routes)
    if bad:
        raise RuntimeError(
            "routes without core.web.require_roles(...) or core.web.public: " + "; ".join(bad)
        )


async def authenticate(
    request: Request, conn: AsyncConnection, token: str | None, api_key: str | None
) -> Principal | None:
    """Bearer tokens are resident sessions; X-API-Key is an operator/council/admin key.

    ``conn`` is the request's own connection (core.web.db_conn), reused by the endpoint.
    """
    if api_key:
        return await resolve_api_key(conn, api_key)
    if token:
        live = await lookup_session(conn, token)
        if live is not None:
            # issue 11: domains may end a session at request time (a revoked card)
            for check in request.app.state.session_checks:
                if not await check(request, conn, live):
                    return None
            rid = live.resident_id
            return Principal(role=Role.RESIDENT, subject=str(rid), resident_id=rid)
    return None


def create_app(
    settings: Settings,
    *,
    domain_routers: Iterable[str] = DOMAIN_ROUTERS,
    extra_routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """The API. ``extra_routers`` lets tests mount their own routers (checked the same)."""
    # Everything a route needs, checked before the API listens (one line per problem).
    settings.require(
        "database_url", "pseudonym_key", files=("jpki_trust_anchors", "jpki_crl", "road_graph_path")
    )
    database_url = settings.require_database_url()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        enforce_default_deny(app)
        pool = async_pool(database_url, min_size=1, max_size=10, timeout=POOL_TIMEOUT_S)
        await pool.open(wait=False)
        app.state.pool = pool
        # Everything built so far (modules, routes, models) lives as long as the app: keep
        # it out of the cycle collector's scans, which then see only what requests make
        # (about a tenth of a request's CPU in bench/fares_api_bench.py); back at shutdown.
        gc.freeze()
        try:
            yield
        finally:
            await pool.close()
            gc.unfreeze()

    app = FastAPI(
        # Mebuku's request metrics are Prometheus (api.middleware.RequestMetrics) and nothing
        # configures OpenTelemetry; without this FastAPI asks OpenTelemetry's global
        # providers on every request whether one has been set since (a few % of a request).
        **NO_TELEMETRY,
        title="Mebuku API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "health", "description": "Liveness, readiness, metrics (no credentials)"},
            {"name": "grafana", "description": "Grafana JSON data source protocol"},
        ],
    )
    app.state.settings = settings
    app.state.authenticate = authenticate
    registry = CollectorRegistry()
    app.state.metrics_registry = registry

    mount(app, health.router)
    mount(app, grafana_router)
    app.state.session_checks = []
    for name in domain_routers:
        router, mod = load_router(name)
        mount(app, router)
        # domain errors -> problems, one handler per exception class (core/web.py)
        problems.install_domain(app, problem_handlers_of(mod))
        # issue 11: a domain module may export session_check(request, conn, session)
        check = getattr(mod, "session_check", None)
        if check is not None:
            app.state.session_checks.append(check)
    for router in extra_routers:
        mount(app, router)

    problems.install(app)
    install_openapi(app)
    # innermost: the request's pool connection (core.web.db_conn), returned after the answer
    app.add_middleware(RequestConnections)
    # issue 11: screens every byte for Individual Numbers and enforces the body size limit
    app.add_middleware(RequestScreen, max_body_bytes=settings.api_max_body_bytes)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(RequestMetrics, registry=registry)
    enforce_default_deny(app)
    install_route_index(app)  # fixed paths try only the routes that can match them
    return app
