"""The JSON data source protocol (simpod-json-datasource) for values the API computes.

Grafana calls ``GET /grafana/`` (test connection), ``POST /grafana/metrics`` (which series
exist) and ``POST /grafana/query`` (data for a time range), sending the API key Grafana's
data source is provisioned with. Series live in :mod:`api.series`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends
from psycopg import AsyncConnection
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.series import REGISTRY, Table, TimeSeries, bucket_width
from core.i18n import F_
from core.web import Principal, ProblemError, Role, db_conn, require_roles

STAFF = require_roles(Role.OPERATOR, Role.COUNCIL, Role.ADMIN)
router = APIRouter(prefix="/grafana", tags=["grafana"])


class Status(BaseModel):
    """The data source's health answer, which Grafana's "Save & test" expects."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})
    status: Literal["ok"]


class MetricsRequest(BaseModel):
    """Grafana's metric search; unknown fields are allowed as Grafana sends more than we read."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{"metric": ""}]})
    metric: str = Field(default="", max_length=200, description="Filter text typed in Grafana")


class MetricOption(BaseModel):
    """One series Grafana may offer in its query editor."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"label": "ingest.lag_seconds", "value": "ingest.lag_seconds"}]
        }
    )
    label: str
    value: str


class TimeRange(BaseModel):
    """The dashboard's time range, as Grafana sends it."""

    model_config = ConfigDict(extra="allow")
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime


class Target(BaseModel):
    """One query of a Grafana panel: the series name and Grafana's reference id."""

    model_config = ConfigDict(extra="allow")
    target: str = Field(default="", max_length=200)
    refId: str = Field(default="A", max_length=20)  # noqa: N815 (Grafana's name)
    hide: bool = False


class QueryRequest(BaseModel):
    """A Grafana panel's query, bounded so a panel cannot ask for unbounded work."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "range": {"from": "2026-11-26T00:00:00Z", "to": "2026-11-26T06:00:00Z"},
                    "intervalMs": 60000,
                    "maxDataPoints": 500,
                    "targets": [{"target": "ingest.lag_seconds", "refId": "A"}],
                }
            ]
        },
    )
    range: TimeRange
    intervalMs: int = Field(default=60_000, ge=1, le=86_400_000)  # noqa: N815
    maxDataPoints: int = Field(default=1000, ge=1, le=10_000)  # noqa: N815
    targets: list[Target] = Field(max_length=20)


class TimeSeriesResult(BaseModel):
    """A series in the time-series shape the JSON data source plugin reads."""

    target: str
    refId: str  # noqa: N815
    datapoints: list[tuple[float | None, int]] = Field(description="[value, epoch ms]")


class TableColumn(BaseModel):
    """A table column with the type Grafana formats it by."""

    text: str
    type: Literal["time", "number", "string"]


class TableResult(BaseModel):
    """A series in the table shape the JSON data source plugin reads."""

    type: Literal["table"]
    refId: str  # noqa: N815
    columns: list[TableColumn]
    rows: list[list[Any]]


@router.get("/", summary="Data source health (Grafana's 'Test')", response_model=Status)
async def health(principal: Principal = Depends(STAFF)) -> Status:
    """Grafana's "Save & test": proves the URL and the staff API key work."""
    return Status(status="ok")


@router.post(
    "/metrics", summary="Series this data source offers", response_model=list[MetricOption]
)
async def metrics(
    body: MetricsRequest, principal: Principal = Depends(STAFF)
) -> list[MetricOption]:
    """The series names matching what the dashboard author typed."""
    needle = body.metric.lower()
    return [
        MetricOption(label=s.name, value=s.name)
        for s in sorted(REGISTRY.values(), key=lambda s: s.name)
        if needle in s.name.lower()
    ]


@router.post(
    "/query",
    summary="Series values for a time range",
    response_model=list[TimeSeriesResult | TableResult],
)
async def query(
    body: QueryRequest,
    principal: Principal = Depends(STAFF),
    conn: AsyncConnection = Depends(db_conn),
) -> list[TimeSeriesResult | TableResult]:
    """Run each target's series over the dashboard's time range."""
    start, end = body.range.from_, body.range.to
    if end <= start:
        raise ProblemError(422, "invalid-range", "Invalid time range", "range.to <= range.from")
    if end - start > timedelta(days=400):
        raise ProblemError(422, "invalid-range", "Invalid time range", "At most 400 days.")
    step = bucket_width(start, end, timedelta(milliseconds=body.intervalMs), body.maxDataPoints)
    out: list[TimeSeriesResult | TableResult] = []
    for t in body.targets:
        if t.hide or not t.target:
            continue
        series = REGISTRY.get(t.target)
        if series is None:
            raise ProblemError(
                422,
                "unknown-series",
                "Unknown series",
                F_("No series {series}; POST /grafana/metrics lists them.", series=repr(t.target)),
            )
        result = await series.fn(conn, start, end, step)
        if isinstance(result, TimeSeries):
            out.append(TimeSeriesResult(target=t.target, refId=t.refId, datapoints=result.points))
        elif isinstance(result, Table):
            out.append(
                TableResult(
                    type="table",
                    refId=t.refId,
                    columns=[TableColumn(text=n, type=k) for n, k in result.columns],
                    rows=result.rows,
                )
            )
    return out
