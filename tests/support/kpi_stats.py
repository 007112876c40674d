"""The exact, raw-data KPI path over samples in memory: the oracle the SQL KPIs and the
rollups are checked against (tests and benchmarks only; the service computes KPIs in SQL)."""

from __future__ import annotations

from collections.abc import Sequence

from fiveg.kpi import BANDS, Sample, Stats, band_counts, mean, percentile_cont


def _col(samples: Sequence[Sample], name: str) -> list[float]:
    return [v for s in samples if (v := getattr(s, name)) is not None]


def compute_stats(samples: Sequence[Sample], latency_bound_ms: float) -> Stats:
    """Every catalogue KPI of these samples (the exact, raw-data path)."""
    values: dict[str, float | None] = {}
    for metric in ("dl_mbps", "ul_mbps"):
        xs = _col(samples, metric)
        values[f"{metric}_mean"] = mean(xs)
        for p in (5, 50, 95):
            values[f"{metric}_p{p}"] = percentile_cont(xs, p / 100)
    rtt = _col(samples, "rtt_ms")
    values["rtt_ms_mean"] = mean(rtt)
    for p in (50, 95, 99):
        values[f"rtt_ms_p{p}"] = percentile_cont(rtt, p / 100)
    values["jitter_ms_mean"] = mean(_col(samples, "jitter_ms"))
    values["loss_pct_mean"] = mean(_col(samples, "loss_pct"))
    values["reliability_pct"] = (
        100.0 * sum(1 for r in rtt if r <= latency_bound_ms) / len(rtt) if rtt else None
    )
    bands = {m: band_counts(m, _col(samples, m)) for m in BANDS}
    return Stats(n=len(samples), values=values, bands=bands)
