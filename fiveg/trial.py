"""A trial definition: what the council registered and what it is measured against.

Definition files (``fiveg/trials/*.toml`` or ``.json``) and the admin API share this model.
"""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.i18n import cli_gettext, invalid
from fiveg.targets import (
    DEFAULT_LATENCY_BOUND_MS,
    KPIS,
    Op,
    Target,
    Theme,
    merge_targets,
)

DeviceKind = Literal["phone", "bus_modem", "ambulance_modem", "classroom_cpe", "sensor", "other"]


class Site(BaseModel):
    """A place where a trial measures, with its coordinates."""

    model_config = ConfigDict(extra="forbid")
    site_id: str = Field(min_length=1, max_length=64, examples=["maebashi-station"])
    name: str = Field(examples=["JR前橋駅北口"])
    lat: float = Field(ge=-90, le=90, examples=[36.3837])
    lon: float = Field(ge=-180, le=180, examples=[139.0729])


class Gnb(BaseModel):
    """A base station of the local 5G network at a site."""

    model_config = ConfigDict(extra="forbid")
    gnb_id: str = Field(min_length=1, max_length=64, examples=["gnb-station-1"])
    site_id: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    band: str = Field(examples=["n79"])
    bandwidth_mhz: float = Field(gt=0, examples=[100])
    mode: Literal["SA", "NSA"] = "SA"
    height_m: float | None = Field(default=None, ge=0)


class Device(BaseModel):
    """A device that publishes measurements for a trial."""

    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(min_length=1, max_length=64, examples=["bus-01-modem"])
    kind: DeviceKind
    label: str = ""


class TargetIn(BaseModel):
    """A trial's own target (replaces the theme default for the same KPI)."""

    model_config = ConfigDict(extra="forbid")
    kpi: str = Field(examples=["ul_mbps_p5"])
    op: Op = Field(examples=[">="])
    value: float = Field(examples=[25.0])
    source: str = Field(min_length=1, examples=["3GPP TS 22.186"])
    reference: bool = False

    @field_validator("kpi")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in KPIS:
            raise invalid(
                "unknown KPI {kpi}; known: {known}", kpi=repr(v), known=", ".join(sorted(KPIS))
            )
        return v

    def to_target(self) -> Target:
        """The validated target as the KPI engine uses it."""
        return Target(self.kpi, self.op, self.value, self.source, self.reference)


class TrialDefinition(BaseModel):
    """A trial as its TOML file defines it; unknown keys are refused so a misspelling is not
    silently ignored."""

    model_config = ConfigDict(extra="forbid")
    trial_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", examples=["bus-supervision-2026"])
    title: str = Field(min_length=1, examples=["自動運転バス遠隔監視 (前橋駅〜中央前橋駅)"])
    theme: Theme
    period_start: datetime
    period_end: datetime
    description: str = ""
    latency_bound_ms: float | None = Field(default=None, gt=0, le=60_000)
    radio: dict[str, str | float] = Field(
        default_factory=dict, examples=[{"band": "n79", "bandwidth_mhz": 100, "mode": "SA"}]
    )
    sites: list[Site] = Field(default_factory=list)
    gnbs: list[Gnb] = Field(default_factory=list)
    devices: list[Device] = Field(min_length=1)
    targets: list[TargetIn] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """PostgreSQL text cannot hold NUL: refuse it here with a clear message."""

        def walk(v: Any) -> None:
            if isinstance(v, str) and "\x00" in v:
                raise invalid("text must not contain NUL characters")
            if isinstance(v, dict):
                for k, x in v.items():
                    walk(k)
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(data)
        return data

    @model_validator(mode="after")
    def _check(self) -> TrialDefinition:
        if self.period_start.tzinfo is None or self.period_end.tzinfo is None:
            raise invalid("period_start and period_end need a UTC offset")
        if self.period_end <= self.period_start:
            raise invalid("period_end must be after period_start")
        if self.period_start.year < 2000 or self.period_end.year >= 2100:
            raise invalid("the trial period must lie between 2000 and 2100")
        site_ids = {s.site_id for s in self.sites}
        for g in self.gnbs:
            if g.site_id not in site_ids:
                raise invalid(
                    "gNB {gnb} names unknown site {site}", gnb=g.gnb_id, site=repr(g.site_id)
                )
        ids = [d.device_id for d in self.devices]
        if len(ids) != len(set(ids)):
            raise invalid("device ids must be unique")
        return self

    @property
    def bound_ms(self) -> float:
        """The latency bound of the trial: its own, else its theme's default."""
        return self.latency_bound_ms or DEFAULT_LATENCY_BOUND_MS[self.theme]

    def effective_targets(self) -> list[Target]:
        """The trial's targets merged with its theme's reference targets."""
        return merge_targets(self.theme, [t.to_target() for t in self.targets])


def load_definition(path: Path) -> TrialDefinition:
    """Read a .toml or .json trial definition (raises ValueError with the reason)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(
            cli_gettext("{file}: trial definitions are .toml or .json").format(file=path)
        )
    return TrialDefinition.model_validate(data)
