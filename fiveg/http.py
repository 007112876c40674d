"""HTTP routes for the 5G council (read) and administrators (trial registry)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from psycopg import AsyncConnection

from core.extras import missing
from core.i18n import F_, negotiate
from core.web import Principal, ProblemError, Role, db_conn, require_roles
from fiveg import store
from fiveg.coverage import coverage_geojson
from fiveg.engine import (
    KpiRequestError,
    TrialKpis,
    fit_bucket,
    measured_window,
    trial_kpis,
    zoom_to_data,
)
from fiveg.kpi import DEFAULT_MIN_COVERAGE_PCT
from fiveg.schemas import (
    CompareRow,
    KpisOut,
    SensorOut,
    TrialOut,
    TrialSummary,
    kpis_out,
    scorecard_out,
    sensor_out,
    targets_out,
)
from fiveg.store import HIST_WIDTH, ROLLUP_WIDTH, StoredTrial
from fiveg.trial import TrialDefinition

router = APIRouter(prefix="/v1/fiveg", tags=["fiveg"])
Reader = Annotated[Principal, Depends(require_roles(Role.COUNCIL, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Conn = Annotated[AsyncConnection, Depends(db_conn)]
SourceQ = Annotated[
    Literal["raw", "rollup", "auto"],
    Query(
        description="raw: exact; rollup: fast (5-minute rollups); auto: raw up to 500,000 samples"
    ),
]
TrialId = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", examples=["bus-supervision-2026"])
]
ThemeQ = Annotated[Literal["transport", "education", "emergency"] | None, Query()]
BucketQ = Annotated[
    str | None,
    Query(
        description="Bucket width like 300s, 5m, 1h or 1d (1 s to 7 days); default: fits the "
        "period (at least 5 minutes)",
        examples=["5m"],
    ),
]
MAX_BUCKETS = 120_000
_BUCKET = re.compile(r"^(\d{1,6})(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_bucket(text: str) -> timedelta:
    """A bucket width such as ``5m`` or ``1h``, bounded so a request cannot ask for millions of
    buckets."""
    m = _BUCKET.match(text)
    width = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))}) if m else None
    if width is None or not timedelta(seconds=1) <= width <= timedelta(days=7):
        raise ProblemError(
            422, "bad-bucket", "Bad bucket", "bucket is 1s to 7d, written like 300s, 5m, 1h or 1d."
        )
    return width


async def _trial(conn: AsyncConnection, trial_id: str) -> StoredTrial:
    t = await store.get_trial(conn, trial_id)
    if t is None:
        raise ProblemError(
            404, "not-found", "Not found", F_("No trial {trial}.", trial=repr(trial_id))
        )
    return t


def _aware(ts: datetime | None, name: str) -> datetime | None:
    if ts is not None and ts.tzinfo is None:
        raise ProblemError(
            422, "bad-time", "Bad time", F_("'{name}' needs a UTC offset.", name=name)
        )
    return ts


def _min_coverage(request: Request) -> float:
    settings = getattr(request.app.state, "settings", None)
    return float(getattr(settings, "fiveg_min_coverage_pct", DEFAULT_MIN_COVERAGE_PCT))


async def _kpis(
    conn: AsyncConnection,
    trial: StoredTrial,
    start: datetime | None,
    end: datetime | None,
    bucket: str | None,
    source: Literal["raw", "rollup", "auto"],
    min_coverage_pct: float = DEFAULT_MIN_COVERAGE_PCT,
) -> TrialKpis:
    start, end = _aware(start, "from"), _aware(end, "to")
    if bucket is None and source == "rollup":
        width = HIST_WIDTH
    elif bucket is None:  # the default fits the period: 5 minutes up to about a week
        width = max(ROLLUP_WIDTH, fit_bucket(*measured_window(trial, start, end)))
    else:
        width = parse_bucket(bucket)
    try:
        return await trial_kpis(conn, trial, start, end, width, source, min_coverage_pct)
    except KpiRequestError as e:
        raise ProblemError(422, "bad-kpi-request", "Bad KPI request", str(e)) from e


@router.get("/trials", response_model=list[TrialSummary], summary="List trials")
async def list_trials(_: Reader, conn: Conn, theme: ThemeQ = None) -> list[TrialSummary]:
    """The trials, optionally of one theme, for the council's overview."""
    return [
        TrialSummary(
            trial_id=t.definition.trial_id,
            title=t.definition.title,
            theme=t.definition.theme,
            period_start=t.definition.period_start,
            period_end=t.definition.period_end,
            devices=len(t.devices),
        )
        for t in await store.list_trials(conn, theme)
    ]


@router.get("/trials/{trial_id}", response_model=TrialOut, summary="A trial and its targets")
async def get_trial(trial_id: TrialId, _: Reader, conn: Conn) -> TrialOut:
    """One trial's definition with the targets that apply (its own and the references)."""
    t = await _trial(conn, trial_id)
    return TrialOut(definition=t.definition, targets=targets_out(t))


@router.put("/trials/{trial_id}", response_model=TrialOut, summary="Register or replace a trial")
async def put_trial(trial_id: TrialId, body: TrialDefinition, _: Admin, conn: Conn) -> TrialOut:
    """Create or replace a trial (admin); the body's id must match the path."""
    if body.trial_id != trial_id:
        raise ProblemError(
            422, "trial-id-mismatch", "Trial id mismatch", "The body's trial_id must match."
        )
    await store.save_trial(conn, body)
    return await get_trial(trial_id, _, conn)


@router.delete("/trials/{trial_id}", status_code=204, summary="Remove a trial (not its samples)")
async def delete_trial(trial_id: TrialId, _: Admin, conn: Conn) -> Response:
    """Delete a trial definition (admin); measurements stay."""
    if not await store.delete_trial(conn, trial_id):
        raise ProblemError(
            404, "not-found", "Not found", F_("No trial {trial}.", trial=repr(trial_id))
        )
    return Response(status_code=204)


@router.get("/trials/{trial_id}/kpis", response_model=KpisOut, summary="KPIs and scorecard")
async def get_kpis(
    trial_id: TrialId,
    _: Reader,
    conn: Conn,
    request: Request,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    bucket: BucketQ = None,
    source: SourceQ = "auto",
) -> KpisOut:
    """KPIs of the trial's devices in [from, to) (default: the elapsed part of the trial
    period), per bucket, with the scorecard and its verdict."""
    trial = await _trial(conn, trial_id)
    k = await _kpis(conn, trial, start, end, bucket, source, _min_coverage(request))
    return kpis_out(k)


@router.get(
    "/trials/{trial_id}/coverage",
    summary="Coverage map (GeoJSON, 50 m cells)",
    responses={200: {"content": {"application/geo+json": {}}}},
)
async def get_coverage(
    trial_id: TrialId,
    _: Reader,
    conn: Conn,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    min_samples: Annotated[int, Query(ge=1, le=100_000)] = 10,
) -> Response:
    """Radio coverage points of the trial's devices, for the coverage map."""
    t = await _trial(conn, trial_id)
    d = t.definition
    pts = await store.coverage_points(
        conn, t.devices, _aware(start, "from") or d.period_start, _aware(end, "to") or d.period_end
    )
    body = json.dumps(coverage_geojson(pts, min_samples=min_samples))
    return Response(body, media_type="application/geo+json")


@router.get("/trials/{trial_id}/sensors", response_model=list[SensorOut], summary="SenML sensors")
async def get_sensors(
    trial_id: TrialId,
    _: Reader,
    conn: Conn,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    bucket: BucketQ = None,
) -> list[SensorOut]:
    """Per SenML sensor in [from, to) (default: the elapsed trial period): counts, latest
    value and gaps at ``bucket`` resolution (default: fits the period)."""
    t = await _trial(conn, trial_id)
    lo, hi = measured_window(t, _aware(start, "from"), _aware(end, "to"))
    if hi <= lo:
        raise ProblemError(422, "bad-time", "Bad time", "'to' must be after 'from'.")
    width = fit_bucket(lo, hi) if bucket is None else parse_bucket(bucket)
    if (hi - lo) / width > MAX_BUCKETS:
        raise ProblemError(422, "bad-bucket", "Bad bucket", "Too many buckets: use a wider one.")
    rows = await store.sensor_summaries(conn, t.devices, lo, hi, width)
    return [sensor_out(s) for s in rows]


@router.get(
    "/trials/{trial_id}/report",
    summary="Trial report (PDF)",
    responses={200: {"content": {"application/pdf": {}}}},
)
async def get_report(  # noqa: PLR0913 (path, query and dependencies FastAPI injects)
    trial_id: TrialId,
    _: Reader,
    conn: Conn,
    request: Request,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    bucket: BucketQ = None,
    source: SourceQ = "auto",
    lang: Annotated[
        Literal["ja", "en"] | None,
        Query(description="Report language; default: Accept-Language, else Japanese"),
    ] = None,
) -> Response:
    """The council's PDF for [from, to) (default: the elapsed trial period), in Japanese
    unless ``lang`` or Accept-Language asks for English."""
    trial = await _trial(conn, trial_id)
    k = await _kpis(conn, trial, start, end, bucket, source, _min_coverage(request))
    try:
        from fiveg.report import build_report
    except ModuleNotFoundError as e:  # the report extra is not installed
        err = missing("report", e.name or "fiveg.report")
        raise ProblemError(503, "report-unavailable", "Report unavailable", str(err)) from None
    pts = await store.coverage_points(conn, trial.devices, k.start, k.end)
    others = []  # the summary's verdict per theme: the other trials, same window if given
    for t in await store.list_trials(conn, None):
        if t.definition.trial_id != trial_id:
            try:
                others.append(
                    await _kpis(conn, t, start, end, None, "auto", _min_coverage(request))
                )
            except ProblemError:
                continue  # a window outside that trial: its row says no data
    chosen = lang or negotiate(request.headers.get("accept-language"))
    series = await zoom_to_data(conn, trial, k, _min_coverage(request))
    # Rendering takes CPU seconds: in a worker thread, so other requests keep being served.
    pdf = await anyio.to_thread.run_sync(
        build_report, k, datetime.now(UTC), chosen, coverage_geojson(pts), others, series
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="fiveg-{trial_id}-report.pdf"',
            "Content-Language": chosen,
            "Vary": "Accept-Language",
        },
    )


@router.get("/compare", response_model=list[CompareRow], summary="Compare trials and themes")
async def compare(
    _: Reader,
    conn: Conn,
    request: Request,
    theme: ThemeQ = None,
    trial: Annotated[list[str] | None, Query(description="Limit to these trial ids")] = None,
    source: SourceQ = "auto",
) -> list[CompareRow]:
    """Each trial's scorecard over its whole period, ordered by theme."""
    out = []
    for t in await store.list_trials(conn, theme):
        if trial and t.definition.trial_id not in trial:
            continue
        k = await _kpis(conn, t, None, None, None, source, _min_coverage(request))
        out.append(
            CompareRow(
                trial_id=t.definition.trial_id,
                title=t.definition.title,
                theme=t.definition.theme,
                passed=k.scorecard.passed,
                verdict=k.scorecard.verdict,
                data_coverage_pct=k.scorecard.data_coverage_pct,
                samples=k.overall.n,
                kpis=k.overall.values,
                targets=scorecard_out(k.scorecard).targets,
            )
        )
    return sorted(out, key=lambda r: (r.theme, r.trial_id))
