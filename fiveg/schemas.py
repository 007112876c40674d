"""Response bodies of the fiveg API (pydantic, with examples for OpenAPI) and converters."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fiveg import histogram
from fiveg.engine import TrialKpis
from fiveg.kpi import Scorecard, Stats
from fiveg.store import SensorSummary, StoredTrial
from fiveg.trial import TrialDefinition

PERCENTILE_METHOD = (
    "percentile_cont (linear interpolation at rank p*(n-1)) on raw samples; rollup: "
    f"40-bins-per-decade histogram, within {histogram.RELATIVE_ERROR:.1%} of the exact value"
)


class TargetOut(BaseModel):
    """A target as the API shows it, with the KPI's label and unit."""

    kpi: str = Field(examples=["ul_mbps_p5"])
    label: str = Field(examples=["Uplink 5th percentile (user-experienced)"])
    unit: str = Field(examples=["Mbit/s"])
    op: str = Field(examples=[">="])
    value: float = Field(examples=[25.0])
    source: str = Field(examples=["3GPP TS 22.186"])
    reference: bool = Field(examples=[False])


class TrialOut(BaseModel):
    """A trial's definition with the targets that apply to it."""

    definition: TrialDefinition
    targets: list[TargetOut]


class TrialSummary(BaseModel):
    """One line of the trial list."""

    trial_id: str = Field(examples=["bus-supervision-2026"])
    title: str
    theme: str = Field(examples=["transport"])
    period_start: datetime
    period_end: datetime
    devices: int = Field(examples=[3])


class GapOut(BaseModel):
    """A period without data."""

    start: datetime
    end: datetime


class ScoreRow(TargetOut):
    """One target's result on the scorecard."""

    measured: float | None = Field(examples=[27.4])
    passed: bool = Field(examples=[True])
    availability_pct: float | None = Field(
        examples=[96.5], description="Share of the period's buckets in which the target was met"
    )


class ScorecardOut(BaseModel):
    """The trial's verdict, per-target results and data coverage."""

    verdict: Literal["pass", "fail", "insufficient-data"] = Field(
        description="pass or fail over the measured period; insufficient-data while less of "
        "the period than the minimum data coverage (MEBUKU_FIVEG_MIN_COVERAGE_PCT) has samples"
    )
    passed: bool = Field(description="Every non-reference target met over the whole period")
    data_coverage_pct: float = Field(examples=[98.6])
    buckets_total: int
    buckets_with_data: int
    gaps: list[GapOut]
    targets: list[ScoreRow]


class StatsOut(BaseModel):
    """Sample count, KPI values and band counts of one group of samples."""

    samples: int = Field(examples=[3600])
    kpis: dict[str, float | None] = Field(examples=[{"ul_mbps_p5": 27.4, "rtt_ms_p95": 31.0}])
    bands: dict[str, dict[str, int]] = Field(
        examples=[{"rsrp_dbm": {"excellent": 10, "good": 5, "fair": 1, "poor": 0}}]
    )


class BucketOut(StatsOut):
    """The statistics of one time bucket."""

    bucket: datetime


class DeviceOut(StatsOut):
    """The statistics of one device."""

    device_id: str


class KpisOut(BaseModel):
    """A trial's KPIs over one window: overall, per bucket, per device, with the scorecard."""

    trial_id: str
    from_: datetime = Field(alias="from")
    to: datetime
    bucket_seconds: int = Field(examples=[300])
    source: str = Field(examples=["raw"])
    percentile_method: str
    overall: StatsOut
    handovers: int | None = None
    device_hours: float | None = None
    handovers_per_device_hour: float | None = None
    scorecard: ScorecardOut
    series: list[BucketOut]
    devices: list[DeviceOut]

    model_config = {"populate_by_name": True}


class SensorOut(BaseModel):
    """The latest reading of one sensor of a trial device."""

    device_id: str
    name: str = Field(examples=["urn:dev:mac:0024befffe804ff1:temperature"])
    unit: str | None = Field(examples=["Cel"])
    count: int
    first_ts: datetime
    latest_ts: datetime
    latest_value: float | str | bool | None
    gaps: list[GapOut]


class CompareRow(BaseModel):
    """One trial's line in a comparison of trials."""

    trial_id: str
    title: str
    theme: str
    passed: bool
    verdict: Literal["pass", "fail", "insufficient-data"]
    data_coverage_pct: float
    samples: int
    kpis: dict[str, float | None]
    targets: list[ScoreRow]


def stats_out(s: Stats) -> StatsOut:
    """The API shape of a group's statistics."""
    return StatsOut(samples=s.n, kpis=s.values, bands=s.bands)


def targets_out(t: StoredTrial) -> list[TargetOut]:
    """The API shape of a trial's targets, labels and units included."""
    return [
        TargetOut(
            kpi=x.kpi,
            label=x.info.label,
            unit=x.info.unit,
            op=x.op,
            value=x.value,
            source=x.source,
            reference=x.reference,
        )
        for x in t.targets
    ]


def scorecard_out(c: Scorecard) -> ScorecardOut:
    """The API shape of a scorecard."""
    return ScorecardOut(
        verdict=c.verdict,
        passed=c.passed,
        data_coverage_pct=c.data_coverage_pct,
        buckets_total=c.buckets_total,
        buckets_with_data=c.buckets_with_data,
        gaps=[GapOut(start=g.start, end=g.end) for g in c.gaps],
        targets=[
            ScoreRow(
                kpi=r.target.kpi,
                label=r.target.info.label,
                unit=r.target.info.unit,
                op=r.target.op,
                value=r.target.value,
                source=r.target.source,
                reference=r.target.reference,
                measured=r.measured,
                passed=r.passed,
                availability_pct=r.availability_pct,
            )
            for r in c.results
        ],
    )


def kpis_out(k: TrialKpis) -> KpisOut:
    """The API shape of a trial's KPIs."""
    m = k.mobility
    return KpisOut(
        trial_id=k.trial.definition.trial_id,
        from_=k.start,
        to=k.end,
        bucket_seconds=int(k.bucket.total_seconds()),
        source=k.source,
        percentile_method=PERCENTILE_METHOD,
        overall=stats_out(k.overall),
        handovers=m.handovers if m else None,
        device_hours=m.device_hours if m else None,
        handovers_per_device_hour=m.per_device_hour if m else None,
        scorecard=scorecard_out(k.scorecard),
        series=[
            BucketOut(bucket=b, samples=s.n, kpis=s.values, bands=s.bands)
            for b, s in sorted(k.per_bucket.items())
        ],
        devices=[
            DeviceOut(device_id=d, samples=s.n, kpis=s.values, bands=s.bands)
            for d, s in sorted(k.per_device.items())
        ],
    )


def sensor_out(s: SensorSummary) -> SensorOut:
    """The API shape of a sensor's latest reading."""
    return SensorOut(
        device_id=s.device_id,
        name=s.name,
        unit=s.unit,
        count=s.count,
        first_ts=s.first_ts,
        latest_ts=s.latest_ts,
        latest_value=s.latest_value,
        gaps=[GapOut(start=g.start, end=g.end) for g in s.gaps],
    )
