"""KPI math on plain values, checked against numbers known by construction."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fiveg import histogram
from fiveg.kpi import (
    Sample,
    bucket_start,
    find_gaps,
    handovers,
    percentile_cont,
    scorecard,
)
from fiveg.targets import Target, default_targets, merge_targets
from tests.fiveg import known_set
from tests.support.kpi_stats import compute_stats


def _samples() -> list[Sample]:
    keys = Sample.__dataclass_fields__
    return [Sample(**{k: v for k, v in r.items() if k in keys}) for r in known_set.samples()]


def test_percentile_cont_matches_postgres_definition() -> None:
    assert percentile_cont([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile_cont([10.0], 0.95) == 10.0
    assert percentile_cont([], 0.5) is None
    assert percentile_cont([float(i) for i in range(1, 101)], 0.05) == pytest.approx(5.95)
    with pytest.raises(ValueError):
        percentile_cont([1.0], 1.5)


def test_known_set_stats() -> None:
    s = compute_stats(_samples(), latency_bound_ms=50)
    v = s.values
    assert s.n == 600
    assert v["ul_mbps_p5"] == pytest.approx(5.95)
    assert v["ul_mbps_p50"] == pytest.approx(50.5)
    assert v["ul_mbps_p95"] == pytest.approx(95.05)
    assert v["dl_mbps_mean"] == pytest.approx(125)
    assert v["dl_mbps_p5"] == 50 and v["dl_mbps_p95"] == 200
    assert v["rtt_ms_p95"] == 80 and v["rtt_ms_p50"] == 10
    assert v["reliability_pct"] == pytest.approx(80)
    assert s.bands["rsrp_dbm"] == {"excellent": 150, "good": 150, "fair": 150, "poor": 150}
    assert s.bands["sinr_db"]["excellent"] == 600
    assert handovers(_samples()) == 9


def test_scorecard_availability_and_gaps() -> None:
    samples = _samples()
    per: dict[datetime, list[Sample]] = {}
    for s in samples:
        per.setdefault(bucket_start(s.ts, known_set.BUCKET), []).append(s)
    per_stats = {b: compute_stats(xs, 50) for b, xs in per.items()}
    overall = compute_stats(samples, 50)
    targets = [
        Target("rtt_ms_p95", "<=", 50, "test"),
        Target("dl_mbps_p5", ">=", 40, "test"),
        Target("ul_mbps_p5", ">=", 50, "ITU", reference=True),
    ]
    card = scorecard(targets, overall, per_stats, known_set.START, known_set.END, known_set.BUCKET)
    rtt, dl, ref = card.results
    assert not rtt.passed and rtt.availability_pct == pytest.approx(100 * 8 / 12)
    assert dl.passed and dl.availability_pct == pytest.approx(100 * 10 / 12)
    assert not ref.passed
    assert not card.passed  # the RTT target fails; the reference row does not count
    assert card.buckets_total == 12 and card.buckets_with_data == 10
    assert [(g.start.minute, g.end.minute) for g in card.gaps] == [(30, 40)]


def test_gaps_at_edges() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    w = timedelta(minutes=5)
    gaps = find_gaps([t0 + w], t0, t0 + 3 * w, w)
    assert [(g.start, g.end) for g in gaps] == [(t0, t0 + w), (t0 + 2 * w, t0 + 3 * w)]
    assert find_gaps([], t0, t0 + w, w)[0].seconds == 300


def test_bucket_start_matches_timescale_origin() -> None:
    ts = datetime(2026, 11, 20, 0, 7, 30, tzinfo=UTC)
    assert bucket_start(ts, timedelta(minutes=5)) == datetime(2026, 11, 20, 0, 5, tzinfo=UTC)
    # 7-day buckets start on Mondays (origin 2000-01-03).
    assert bucket_start(ts, timedelta(days=7)).weekday() == 0


def test_targets_defaults_and_overrides() -> None:
    t = {x.kpi: x for x in default_targets("transport")}
    assert t["ul_mbps_p5"].value == 25 and t["rtt_ms_p95"].value == 50
    assert t["dl_mbps_p5"].reference  # ITU-R M.2410 shown for reference
    e = {x.kpi: x for x in default_targets("emergency")}
    assert e["ul_mbps_p5"].value == 16 and e["rtt_ms_p95"].value == 20
    merged = merge_targets("transport", [Target("rtt_ms_p95", "<=", 30, "trial")])
    assert {x.kpi: x.value for x in merged}["rtt_ms_p95"] == 30
    with pytest.raises(ValueError, match="unknown KPI"):
        merge_targets("transport", [Target("speed", ">=", 1, "x")])


@given(
    st.lists(st.floats(min_value=0.01, max_value=99_999), min_size=1, max_size=300),
    st.sampled_from([0.05, 0.5, 0.95, 0.99]),
)
def test_histogram_percentile_error_bound(values: list[float], p: float) -> None:
    counts: dict[int, int] = {}
    for v in values:
        counts[histogram.bin_of(v)] = counts.get(histogram.bin_of(v), 0) + 1
    exact = percentile_cont(values, p)
    est = histogram.percentile(counts, p)
    assert exact is not None and est is not None
    assert abs(est - exact) <= histogram.RELATIVE_ERROR * exact + 1e-9


def test_histogram_bins_and_share() -> None:
    assert histogram.bin_of(0.0) == 0
    assert histogram.bin_of(1e6) == histogram.BINS + 1
    lo, hi = histogram.bin_edges(histogram.bin_of(25.0))
    assert lo <= 25.0 < hi and hi / lo == pytest.approx(1 + histogram.RELATIVE_ERROR)
    rng = random.Random(7)
    xs = [rng.lognormvariate(3, 1) for _ in range(5000)]
    counts: dict[int, int] = {}
    for v in xs:
        histogram.merge(counts, {histogram.bin_of(v): 1})
    share = histogram.share_at_most(counts, 20.0)
    exact = 100 * sum(1 for v in xs if v <= 20.0) / len(xs)
    assert share is not None and math.isclose(share, exact, abs_tol=1.0)
