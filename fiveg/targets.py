"""The KPI catalogue and each theme's default targets, with the sources they come from.

Targets are what the council decides against, so every default names its source
(``../shared/docs/domain.md`` section 8; docs/fiveg-kpis.md). A trial may override any of
them in its definition file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Theme = Literal["transport", "education", "emergency"]
THEMES: tuple[Theme, ...] = ("transport", "education", "emergency")
Op = Literal[">=", "<="]


Stat = Literal["mean", "percentile", "reliability"]


@dataclass(frozen=True)
class KpiInfo:
    """One KPI: how it is shown and how it is computed from a ``fiveg_radio`` column."""

    label: str
    unit: str
    higher_is_better: bool
    column: str  # the fiveg_radio column it is computed from
    stat: Stat = "mean"
    q: float | None = None  # the fraction, for percentiles (percentile_cont)


def _pct(label: str, unit: str, higher: bool, column: str, q: float) -> KpiInfo:
    return KpiInfo(label, unit, higher, column, "percentile", q)


# The KPI catalogue: every KPI a target may name, in report order. It drives the KPI SQL
# (fiveg/store.py, the council dashboard), the targets and the report rows.
# Percentiles are percentile_cont (linear interpolation).
KPIS: dict[str, KpiInfo] = {
    "dl_mbps_mean": KpiInfo("Downlink mean", "Mbit/s", True, "dl_mbps"),
    "dl_mbps_p5": _pct(
        "Downlink 5th percentile (user-experienced)", "Mbit/s", True, "dl_mbps", 0.05
    ),
    "dl_mbps_p50": _pct("Downlink median", "Mbit/s", True, "dl_mbps", 0.5),
    "dl_mbps_p95": _pct("Downlink 95th percentile", "Mbit/s", True, "dl_mbps", 0.95),
    "ul_mbps_mean": KpiInfo("Uplink mean", "Mbit/s", True, "ul_mbps"),
    "ul_mbps_p5": _pct("Uplink 5th percentile (user-experienced)", "Mbit/s", True, "ul_mbps", 0.05),
    "ul_mbps_p50": _pct("Uplink median", "Mbit/s", True, "ul_mbps", 0.5),
    "ul_mbps_p95": _pct("Uplink 95th percentile", "Mbit/s", True, "ul_mbps", 0.95),
    "rtt_ms_mean": KpiInfo("RTT mean", "ms", False, "rtt_ms"),
    "rtt_ms_p50": _pct("RTT median", "ms", False, "rtt_ms", 0.5),
    "rtt_ms_p95": _pct("RTT 95th percentile", "ms", False, "rtt_ms", 0.95),
    "rtt_ms_p99": _pct("RTT 99th percentile", "ms", False, "rtt_ms", 0.99),
    "jitter_ms_mean": KpiInfo("Jitter mean", "ms", False, "jitter_ms"),
    "loss_pct_mean": KpiInfo("Packet loss mean", "%", False, "loss_pct"),
    "reliability_pct": KpiInfo(
        "Reliability (RTT within latency bound)", "%", True, "rtt_ms", "reliability"
    ),
}


def percentiles_of(column: str) -> list[tuple[str, float]]:
    """(KPI name, fraction) of every percentile KPI of ``column``, in catalogue order."""
    return [
        (name, k.q)
        for name, k in KPIS.items()
        if k.column == column and k.stat == "percentile" and k.q is not None
    ]


@dataclass(frozen=True)
class Target:
    """A KPI goal a trial must meet, with the source that justifies the value."""

    kpi: str
    op: Op
    value: float
    source: str
    reference: bool = False

    @property
    def info(self) -> KpiInfo:
        """The KPI's label, unit and direction."""
        return KPIS[self.kpi]

    def met(self, measured: float | None) -> bool:
        """Whether ``measured`` meets the goal; no measurement never passes."""
        if measured is None:
            return False
        return measured >= self.value if self.op == ">=" else measured <= self.value


TS_22_186 = "3GPP TS 22.186 (V2X remote driving): about 25 Mbit/s uplink per vehicle"
AMBULANCE = (
    "Ambulance 5G trials: about 12 Mbit/s video + 4 Mbit/s ultrasound at about 10 ms RTT "
    "(domain.md section 8)"
)
ITU = "ITU-R M.2410 (IMT-2020) user-experienced data rate: 5th percentile"

# ITU-R M.2410 minimums, shown on every scorecard for reference (not part of pass/fail).
REFERENCE_TARGETS: tuple[Target, ...] = (
    Target("dl_mbps_p5", ">=", 100.0, ITU + " DL 100 Mbit/s", reference=True),
    Target("ul_mbps_p5", ">=", 50.0, ITU + " UL 50 Mbit/s", reference=True),
)

DEFAULT_TARGETS: dict[Theme, tuple[Target, ...]] = {
    "transport": (
        Target("ul_mbps_p5", ">=", 25.0, TS_22_186),
        Target("rtt_ms_p95", "<=", 50.0, "Maebashi 5G council: bus supervision video loop"),
    ),
    "emergency": (
        Target("ul_mbps_p5", ">=", 16.0, AMBULANCE),
        Target("rtt_ms_p95", "<=", 20.0, AMBULANCE),
    ),
    "education": (
        Target("dl_mbps_p5", ">=", 100.0, "Maebashi 5G council: 4K remote class per classroom"),
    ),
}

# Latency bound used for reliability when the trial does not give one.
DEFAULT_LATENCY_BOUND_MS: dict[Theme, float] = {
    "transport": 50.0,
    "emergency": 20.0,
    "education": 50.0,
}


def default_targets(theme: Theme) -> list[Target]:
    """The theme's targets, then the ITU reference rows not already targeted."""
    own = list(DEFAULT_TARGETS[theme])
    kpis = {t.kpi for t in own}
    return own + [t for t in REFERENCE_TARGETS if t.kpi not in kpis]


def merge_targets(theme: Theme, overrides: list[Target]) -> list[Target]:
    """Defaults with the trial's own targets replacing those of the same KPI."""
    by_kpi = {t.kpi: t for t in default_targets(theme)}
    for t in overrides:
        if t.kpi not in KPIS:
            raise ValueError(f"unknown KPI {t.kpi!r}; known: {', '.join(sorted(KPIS))}")
        by_kpi[t.kpi] = t
    return list(by_kpi.values())
