"""The app's effective routes, as FastAPI will serve them.

Recent FastAPI keeps included routers lazily (``app.routes`` holds the routers, not their
routes); ``fastapi.routing.iter_route_contexts`` yields each effective route with its
full path and merged dependencies. Older versions list copied ``APIRoute`` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import routing
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute


@dataclass(frozen=True)
class RouteView:
    """A route as the access and OpenAPI checks need it, whatever FastAPI version built it."""

    path: str
    methods: frozenset[str]
    is_api: bool
    dependant: Dependant | None
    has_body: bool
    include_in_schema: bool
    original: BaseRoute


def effective_routes(routes: Iterable[BaseRoute]) -> Iterator[RouteView]:
    """Every route as a :class:`RouteView`, including those inside included routers."""
    iter_contexts = getattr(routing, "iter_route_contexts", None)
    items: Iterable[Any] = iter_contexts(list(routes)) if iter_contexts else routes
    for item in items:
        original = getattr(item, "original_route", item)
        is_api = isinstance(original, routing.APIRoute)
        path = getattr(item, "path_format", None) or getattr(item, "path", "") or ""
        yield RouteView(
            path=path,
            methods=frozenset(getattr(item, "methods", None) or ()),
            is_api=is_api,
            dependant=item.dependant if is_api else None,
            has_body=bool(is_api and item.body_field is not None),
            include_in_schema=bool(getattr(item, "include_in_schema", True)),
            original=original,
        )


def calls(dependant: Dependant | None) -> Iterator[Any]:
    """Every dependency callable, depth first."""
    if dependant is None:
        return
    for dep in dependant.dependencies:
        yield dep.call
        yield from calls(dep)


def has_marker(view: RouteView, marker: str) -> bool:
    """Whether one of the route's dependencies carries ``marker`` (roles, rate limit)."""
    return any(getattr(c, marker, None) for c in calls(view.dependant))


def route_access(view: RouteView) -> frozenset[str] | None:
    """The roles a route admits (``{"public"}`` for public routes), None if undeclared."""
    roles: set[str] = set()
    for call in calls(view.dependant):
        if getattr(call, "__mebuku_public__", False):
            roles.add("public")
        declared = getattr(call, "__mebuku_roles__", None)
        if declared:
            roles.update(str(r) for r in declared)
    return frozenset(roles) if roles else None


def route_templates(routes: Iterable[BaseRoute]) -> dict[int, str]:
    """id(original route) -> full path template, for metrics labels."""
    return {id(v.original): v.path for v in effective_routes(routes)}
