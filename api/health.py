"""Liveness, readiness and Prometheus metrics endpoints (public, no credentials)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

import psycopg
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from api.readiness import check_broker, check_database, check_ingest
from core.i18n import Lang, gettext, negotiate
from core.web import public

JST = timezone(timedelta(hours=9), "Asia/Tokyo")
router = APIRouter(tags=["health"], dependencies=[Depends(public)])


class Health(BaseModel):
    """The liveness answer: the process serves requests."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})
    status: Literal["ok"]


class Readiness(BaseModel):
    """The readiness answer, with the state of each dependency so an operator sees which is down."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ready", "checks": {"database": "ok", "broker": "ok"}},
                {
                    "status": "not ready",
                    "checks": {"database": "ok", "broker": "broker unreachable: OSError"},
                },
            ]
        }
    )
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="Each dependency: ok, or why it is not")
    warnings: dict[str, str] = Field(
        default_factory=dict,
        description="Things to fix soon that do not stop serving (an expiring timetable)",
    )


@router.get("/healthz", summary="The process is up", response_model=Health)
async def healthz() -> Health:
    """Liveness for the orchestrator: answers without touching any dependency."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Database and MQTT broker are reachable; no ingest worker is stalled",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is unreachable"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 503 while the database, the broker or ingest is not usable, so a load balancer
    sends no traffic that would fail.

    ``status``, the keys and each ``ok`` are fixed words for machines; why a check fails
    and the warnings are in the client's language (``Accept-Language``, Japanese by
    default), like problem details."""
    settings = request.app.state.settings
    lang = negotiate(request.headers.get("accept-language"))
    pool = request.app.state.pool
    checks: dict[str, str] = {}
    checks["database"] = await check_database(pool, lang=lang) or "ok"
    if settings.mqtt_url is None:
        checks["broker"] = gettext("not configured (MEBUKU_MQTT_URL)", lang)
    else:
        checks["broker"] = await check_broker(settings.mqtt, lang=lang) or "ok"
    # present once an ingest worker has reported: fails when one is stalled or silent
    if (ingest := await check_ingest(pool, lang=lang)) is not None:
        checks["ingest"] = ingest
    ready = all(v == "ok" for v in checks.values())
    warnings: dict[str, str] = {}
    if checks["database"] == "ok":
        gtfs = await _gtfs_warning(request, lang)
        if gtfs:
            warnings["gtfs"] = gtfs
    body = Readiness(status="ready" if ready else "not ready", checks=checks, warnings=warnings)
    return JSONResponse(
        body.model_dump(),
        status_code=200 if ready else 503,
        headers={"Content-Language": lang, "Vary": "Accept-Language"},
    )


async def _gtfs_warning(request: Request, lang: Lang) -> str | None:
    """The timetable's expiry warning; None when fine or when the table is unreadable."""
    from mobility.gtfs.freshness import current_feed_warning

    try:
        async with request.app.state.pool.connection() as conn:
            return await current_feed_warning(conn, datetime.now(JST).date(), lang)
    except psycopg.Error:
        return None


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of the API process."""
    return Response(
        generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST
    )
