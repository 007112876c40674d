"""OpenAPI completion: problem-details responses on every operation, per what it can fail with.

FastAPI documents success bodies and security schemes from the routes; this adds the
``Problem`` schema and, for each operation, the 4xx responses it can really return (401/403
when it needs credentials, 422 when it takes input (the request screen's refusals of an
Individual Number or a NUL character included), 404 for path ids, 413 for bodies, 401 and
429 when rate limited, i.e. sign-in endpoints), all as ``application/problem+json``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.security.base import SecurityBase

from api.problems import MEDIA_TYPE, STATUS_SLUGS, FieldError, Problem
from api.routes import RouteView, calls, effective_routes, has_marker

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": f"{STATUS_SLUGS[status][1]} (problem details)",
        "content": {MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }


def problem_statuses(view: RouteView) -> list[int]:
    """The problem statuses a route can answer, derived from its dependencies so the documented
    responses cannot drift from the code."""
    statuses: set[int] = set()
    if has_marker(view, "__mebuku_roles__"):
        statuses |= {401, 403, 503}  # 503: credentials cannot be checked, database down
    d = view.dependant
    if d is not None and d.path_params:
        statuses |= {404, 422}
    if d is not None and (d.query_params or d.header_params or d.cookie_params):
        statuses.add(422)
    if view.has_body:
        statuses |= {413, 422}
    if has_marker(view, "__mebuku_rate_limit__"):
        statuses.add(429)
        # Rate-limited routes are the credential-checking ones (sign-in, renewal): they
        # refuse bad credentials with 401 even though they are public.
        statuses.add(401)
    return sorted(statuses)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with every route's problem responses filled in."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["FieldError"] = FieldError.model_json_schema()
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    problem.pop("$defs", None)
    components["Problem"] = problem
    for view in effective_routes(app.routes):
        if not view.is_api or not view.include_in_schema:
            continue
        path = schema["paths"].get(view.path, {})
        security = _route_security(view)
        for method in view.methods:
            op = path.get(method.lower())
            if op is None:
                continue
            if security:
                op = path[method.lower()] = _with_security(op, schema, security)
            responses = op.setdefault("responses", {})
            for status in problem_statuses(view):
                key = str(status)
                # Replace FastAPI's application/json 422 (HTTPValidationError): we send problems.
                if key not in responses or status == 422:
                    responses[key] = _problem(status)
                else:
                    responses[key].setdefault("content", {})[MEDIA_TYPE] = {"schema": PROBLEM_REF}
            for key, response in responses.items():  # statuses a route declared itself
                if key.isdigit() and int(key) >= 400 and not response.get("content"):
                    response["content"] = {MEDIA_TYPE: {"schema": PROBLEM_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, f"#/components/schemas/{unused}"):
            components.pop(unused, None)
    return schema


OPERATION_METADATA = ("tags", "summary", "description", "operationId", "deprecated")


def _route_security(view: RouteView) -> list[SecurityBase]:
    """Credential schemes a route reads itself (``core.web.require_roles``), which FastAPI
    cannot see as they are not sub-dependencies."""
    found: list[SecurityBase] = []
    for call in calls(view.dependant):
        for scheme in getattr(call, "__mebuku_security__", ()):
            if isinstance(scheme, SecurityBase) and scheme not in found:
                found.append(scheme)
    return found


def _with_security(
    op: dict[str, Any], schema: dict[str, Any], schemes: list[SecurityBase]
) -> dict[str, Any]:
    """``op`` listing ``schemes`` where FastAPI puts security (after the metadata), and the
    schemes in ``components.securitySchemes``: the document FastAPI would write had the
    route declared them as dependencies."""
    listed = list(op.get("security", []))
    for scheme in schemes:
        if not any(scheme.scheme_name in entry for entry in listed):
            listed.append({scheme.scheme_name: []})
        defs = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        defs.setdefault(
            scheme.scheme_name, jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
        )
    out = {k: v for k, v in op.items() if k in OPERATION_METADATA}
    out["security"] = listed
    out.update((k, v) for k, v in op.items() if k not in out)
    return out


def _referenced(schema: dict[str, Any], ref: str) -> bool:
    return ref in json.dumps(schema["paths"])


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi`'s document, built once on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
