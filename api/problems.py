"""RFC 9457 problem details for every error the API can return.

Clients always get ``application/problem+json`` with a stable ``type`` URI under
:data:`core.web.PROBLEM_BASE`; validation errors list the offending fields; unexpected
exceptions become a bare 500 (the traceback goes to the server log only).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.i18n import L_, Lang, gettext, localized, negotiate, validation_words
from core.web import PROBLEM_BASE, ProblemError, ProblemMapper

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

# Stable slugs for statuses raised by the framework (routing, HTTPException).
STATUS_SLUGS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed for this role"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Request is not valid"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


class FieldError(BaseModel):
    """One invalid field of a request, named so a client can point at it."""

    field: str = Field(description="Where the problem is: body.x, query.y, path.z, header.w")
    message: str
    type: str = Field(description="pydantic error type, e.g. missing, int_parsing")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_BASE + "validation-error",
                    "title": "Request is not valid",
                    "status": 422,
                    "detail": "Invalid field(s): query.limit",
                    "instance": "/v1/operators/gunma-chuo/rides",
                    "errors": [
                        {
                            "field": "query.limit",
                            "message": "Input should be a valid integer",
                            "type": "int_parsing",
                        }
                    ],
                }
            ]
        },
    )

    type: str = Field(description="Stable URI naming this kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path")
    errors: list[FieldError] | None = None


def problem_response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 problem in the client's language; every error response goes through here so they
    all look alike."""
    # The title (and a detail the catalogue knows) in the client's language, Japanese by
    # default (issue 14); ``type``, ``status`` and machine fields never change.
    lang = negotiate(request.headers.get("accept-language"))
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": gettext(title, lang),
        "status": status,
        "instance": request.url.path,
    }
    if detail is not None:
        body["detail"] = localized(detail, lang) if detail else detail
    body.update(extra)
    headers = {**(headers or {}), "Content-Language": lang, "Vary": "Accept-Language"}
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """Pydantic's ``("body", "rides", 0, "fare")`` as ``body.rides[0].fare``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "request"


def validation_errors(
    errors: list[dict[str, Any]] | Any, lang: Lang = "en"
) -> list[dict[str, str]]:
    """Only location, message and type: never echo the rejected input back. ``field`` and
    ``type`` are for machines and never change; ``message`` is in ``lang``."""
    return [
        {
            "field": field_name(e.get("loc", ())),
            "message": validation_words(e, lang) or "invalid",
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    headers = None
    extra = dict(exc.extra)
    if exc.status == 429 and "retry_after" in extra:
        headers = {"Retry-After": str(extra["retry_after"])}
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer, APIKey header="X-API-Key"'}
    return problem_response(
        request, exc.status, exc.type, exc.title, exc.detail, headers=headers, **extra
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = STATUS_SLUGS.get(exc.status_code, (f"http-{exc.status_code}", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    if exc.status_code >= 500:
        detail = None
    return problem_response(
        request, exc.status_code, slug, title, detail, headers=dict(exc.headers or {})
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    lang = negotiate(request.headers.get("accept-language"))
    errors = validation_errors(exc.errors(), lang)
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return problem_response(
        request,
        422,
        "validation-error",
        "Request is not valid",
        gettext("Invalid field(s): {fields}", lang).format(fields=fields),
        errors=errors,
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning(L_("database unavailable on %s %s: %s"), request.method, request.url.path, exc)
    return problem_response(
        request,
        503,
        "database-unavailable",
        "Database unavailable",
        "Try again shortly.",
        headers={"Retry-After": "5"},
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception(L_("unhandled error on %s %s"), request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "internal-error", "Internal server error")


def domain_handler(to_problem: ProblemMapper) -> Any:
    """An exception handler answering a domain error with the problem ``to_problem`` maps
    it to (the same response as raising that :class:`ProblemError`)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return await _problem_error(request, to_problem(exc))

    return handler


def install_domain(app: FastAPI, handlers: dict[type[Exception], ProblemMapper]) -> None:
    """Register a domain's ``problem_handlers`` (core/web.py) once for the whole app."""
    for exc_type, to_problem in handlers.items():
        if exc_type in app.exception_handlers:
            raise RuntimeError(f"two domains map {exc_type.__qualname__} to problems")
        app.add_exception_handler(exc_type, domain_handler(to_problem))


def install(app: FastAPI) -> None:
    """Turn every framework error into a problem response, so no HTML or bare JSON error leaks."""
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unhandled)
