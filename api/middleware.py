"""ASGI middleware: Prometheus request metrics, the request's database connection (the
body limit is in ``api.screen``)."""

from __future__ import annotations

import time
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routes import route_templates
from core.web import CONNECTION_SCOPE_KEY, RequestConnection


class RequestMetrics:
    """Counts and times requests by route template (``/v1/operators/{operator_id}``)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "mebuku_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mebuku_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self._templates: dict[int, str] | None = None
        # label children by label values: prometheus_client looks them up under a lock
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def _template(self, scope: Scope) -> str:
        route: Any = scope.get("route")
        if route is None:
            return "<unmatched>"
        if self._templates is None:
            self._templates = route_templates(scope["app"].routes)
        return self._templates.get(id(route)) or str(getattr(route, "path", "<unmatched>"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count and time every HTTP request by route template (not raw path, which would explode
        the label set)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = self._template(scope)
            method = scope.get("method", "")
            key = (method, template, str(status))
            counter = self._counted.get(key)
            if counter is None:
                counter = self._counted[key] = self.requests.labels(*key)
            timer = self._timed.get(key[:2])
            if timer is None:
                timer = self._timed[key[:2]] = self.latency.labels(method, template)
            counter.inc()
            timer.observe(time.perf_counter() - start)


class RequestConnections:
    """Gives every HTTP request (and WebSocket) a :class:`core.web.RequestConnection`
    (checked out only if ``core.web.db_conn`` asks) and returns it to the pool once the app
    has answered.

    Cheaper than a generator dependency, which FastAPI wraps in an exit stack and a
    cancel scope on every request; the return is shielded from cancellation in the same
    way, so a client going away cannot leak a pool connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a lazy connection in the scope; return it afterwards."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        holder = RequestConnection(scope["app"].state)
        scope[CONNECTION_SCOPE_KEY] = holder
        try:
            await self.app(scope, receive, send)
        finally:
            if holder.conn is not None:
                with anyio.CancelScope(shield=True):
                    await holder.release()
