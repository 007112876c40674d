"""Route matching by exact path first: a request for a fixed path tries only the routes
that can match it.

The router tries every route in order until one matches, about 30 regular expressions and
scope look-ups for a fares request (a tenth of the app's own CPU per request). For each
path that some route declares without parameters (``/v1/me/subsidy``), this index keeps
the routes whose pattern matches that path, in the router's order; a request for such a
path runs the router's own matching over that short list. Every route left out could not
have matched (its pattern rejects the path), so the first full or partial match, and with
it the answer (405s included), is the one the whole table gives. Other paths (with
parameters, unknown, trailing-slash variants) go through the whole table as before.
"""

from __future__ import annotations

from typing import Any

from starlette._utils import get_route_path  # the path routes match (root_path removed)
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send


def candidate_routes(routes: list[BaseRoute], path: str) -> list[BaseRoute]:
    """The routes, in order, that may match ``path``: all but the path routes and mounts
    whose pattern rejects it (any other kind of route is kept)."""
    return [
        r
        for r in routes
        if not (isinstance(r, Route | WebSocketRoute | Mount) and r.path_regex.match(path) is None)
    ]


def fixed_paths(routes: list[BaseRoute]) -> set[str]:
    """Paths some route declares without parameters."""
    return {r.path for r in routes if isinstance(r, Route) and not r.param_convertors}


class _Narrowed:
    """The router seen through a shorter route list (everything else is the router's)."""

    __slots__ = ("_router", "routes")

    def __init__(self, router: Any, routes: list[BaseRoute]) -> None:
        self._router = router
        self.routes = routes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)


class RouteIndex:
    """The router's entry point with the exact-path index (see the module docstring).

    The index is rebuilt whenever the route list changes (another list or another length).
    """

    def __init__(self, router: Any) -> None:
        self.router = router
        self._match = type(router).app  # the router's own matching, run on a narrowed view
        self._key: tuple[int, int] | None = None
        self._index: dict[str, _Narrowed] = {}

    def _current(self) -> dict[str, _Narrowed]:
        routes = self.router.routes
        key = (id(routes), len(routes))
        if key != self._key:
            self._index = {
                p: _Narrowed(self.router, candidate_routes(routes, p)) for p in fixed_paths(routes)
            }
            self._key = key
        return self._index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Match HTTP requests for fixed paths over their candidates, others as usual."""
        narrowed = self._current().get(get_route_path(scope)) if scope["type"] == "http" else None
        if narrowed is None:
            await self.router.app(scope, receive, send)
            return
        scope.setdefault("router", self.router)
        await self._match(narrowed, scope, receive, send)


def install_route_index(app: Any) -> bool:
    """Put :class:`RouteIndex` in front of the app's router when the router has no
    middleware of its own (then its entry point is its matching); False otherwise."""
    router = app.router
    if router.middleware_stack != router.app:
        return False
    router.middleware_stack = RouteIndex(router)
    return True
