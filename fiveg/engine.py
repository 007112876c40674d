"""The KPI engine: one trial's KPIs, scorecard and time series from either path.

``source="raw"`` is exact (percentile_cont over the samples) at any bucket width;
``source="rollup"`` reads the rollups (fast on millions of samples; percentiles within one
histogram bin; hourly buckets, values over the whole hours touching the window; no
handovers).
``source="auto"`` is raw up to :data:`RAW_LIMIT` samples, else rollup with hourly buckets.
Data coverage and gaps are always at 5-minute resolution. ``TrialKpis`` says which source
and bucket answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from psycopg import AsyncConnection

from core.i18n import N_
from fiveg import store
from fiveg.kpi import DEFAULT_MIN_COVERAGE_PCT, DataCoverage, Scorecard, Stats, scorecard
from fiveg.store import HIST_WIDTH, ROLLUP_WIDTH, Mobility, StoredTrial
from fiveg.targets import REFERENCE_TARGETS, Target

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # ingest refuses older samples
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
Source = Literal["raw", "rollup"]
SourceChoice = Literal["raw", "rollup", "auto"]
BUCKET_LADDER = tuple(
    timedelta(seconds=s) for s in (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
)
# Above this many samples the raw path takes seconds (docs/benchmarks.md): auto uses rollups.
RAW_LIMIT = 500_000


@dataclass(frozen=True)
class TrialKpis:
    """A trial's KPIs over one window, with everything the API, CLI and report show."""

    trial: StoredTrial
    start: datetime
    end: datetime
    bucket: timedelta
    source: Source
    overall: Stats
    per_bucket: dict[datetime, Stats]
    per_device: dict[str, Stats]
    mobility: Mobility | None
    scorecard: Scorecard


def with_references(targets: list[Target]) -> list[Target]:
    """The trial's targets plus the ITU-R M.2410 reference rows it does not show yet, so
    every scorecard compares with the IMT-2020 user-experienced rates."""
    shown = {(t.kpi, t.value) for t in targets if t.reference}
    return targets + [r for r in REFERENCE_TARGETS if (r.kpi, r.value) not in shown]


def measured_window(
    trial: StoredTrial, start: datetime | None, end: datetime | None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[start, end) to measure: the trial period by default, and for a running trial only
    the part that has elapsed (the future is not a gap in the data)."""
    d = trial.definition
    start = start or d.period_start
    if end is None:
        now = now or datetime.now(UTC)
        end = min(d.period_end, now) if start < now else d.period_end
    return start, end


def fit_bucket(start: datetime, end: datetime, max_buckets: int = 2000) -> timedelta:
    """The finest of the usual bucket widths that cuts [start, end) into at most
    ``max_buckets`` buckets (what a chart or table can show)."""
    span = max(end - start, timedelta(seconds=1))
    for width in BUCKET_LADDER:
        if span / width <= max_buckets:
            return width
    return BUCKET_LADDER[-1]


class KpiRequestError(ValueError):
    """The request cannot be answered as asked (bad window or bucket).

    The message is a catalogue id: the API and the CLI say it in their reader's language.
    """


async def trial_kpis(
    conn: AsyncConnection,
    trial: StoredTrial,
    start: datetime | None = None,
    end: datetime | None = None,
    bucket: timedelta = ROLLUP_WIDTH,
    source: SourceChoice = "raw",
    min_coverage_pct: float = DEFAULT_MIN_COVERAGE_PCT,
) -> TrialKpis:
    """The KPIs of a trial over [start, end) (default: its elapsed period) from raw samples or
    hourly rollups; the one computation the API, CLI and report share."""
    d = trial.definition
    start, end = measured_window(trial, start, end)
    if end <= start:
        raise KpiRequestError(N_("'to' must be after 'from'"))
    if start < EARLIEST or end > LATEST:
        raise KpiRequestError(N_("'from' and 'to' must lie between 2000 and 2100"))
    if bucket < timedelta(seconds=1) or bucket > timedelta(days=7):
        raise KpiRequestError(N_("bucket must be between 1 second and 7 days"))
    if (end - start) / bucket > 120_000:
        raise KpiRequestError(N_("too many buckets: use a wider bucket or a shorter window"))
    devices = trial.devices
    bound = d.bound_ms
    if source == "auto":
        big = await store.sample_count(conn, devices, start, end) > RAW_LIMIT
        source = "rollup" if big else "raw"
        if big:
            bucket = HIST_WIDTH
    if source == "raw":
        overall = await store.raw_stats(conn, devices, start, end, bound)
        per_bucket = await store.raw_stats_by_bucket(conn, devices, start, end, bound, bucket)
        per_device = await store.raw_stats_by_device(conn, devices, start, end, bound)
        mobility: Mobility | None = await store.raw_mobility(conn, devices, start, end, bucket)
        data = (
            set(per_bucket)
            if bucket == ROLLUP_WIDTH
            else await store.raw_data_buckets(conn, devices, start, end)
        )
    else:
        if bucket != HIST_WIDTH:
            raise KpiRequestError(N_("the rollup source has hourly buckets only (bucket=1h)"))
        # KPI values cover the whole hours touching [start, end); coverage and gaps do not.
        r = await store.rollup_stats(conn, devices, start, end, bound)
        overall, per_bucket, data = r.overall, r.per_hour, r.data_buckets
        per_device, mobility = {}, None
    card = scorecard(
        with_references(trial.targets), overall, per_bucket, start, end, bucket,
        DataCoverage(data, ROLLUP_WIDTH, min_coverage_pct),
    )  # fmt: skip
    return TrialKpis(
        trial, start, end, bucket, source, overall, per_bucket, per_device, mobility, card
    )


async def zoom_to_data(
    conn: AsyncConnection,
    trial: StoredTrial,
    k: TrialKpis,
    min_coverage_pct: float = DEFAULT_MIN_COVERAGE_PCT,
    max_buckets: int = 300,
) -> TrialKpis:
    """``k`` again over only the part of its window that has data, in buckets that fit
    that part, for charts: a long period with a day of data is otherwise a sliver at one
    edge. Unchanged when the data fill most of the window or came from rollups."""
    have = [b for b, st in k.per_bucket.items() if st.n > 0]
    if not have or k.source != "raw":
        return k
    lo, hi = max(min(have), k.start), min(max(have) + k.bucket, k.end)
    if (hi - lo) * 2 > k.end - k.start:
        return k
    bucket = max(ROLLUP_WIDTH, fit_bucket(lo, hi, max_buckets))
    if bucket >= k.bucket:
        return k
    return await trial_kpis(conn, trial, lo, hi, bucket, "raw", min_coverage_pct)
