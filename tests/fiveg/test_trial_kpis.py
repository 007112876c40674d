"""Done-when: a known sample set goes through MQTT and `mebuku ingest`, then the KPI
engine, the scorecard, the rollups, the coverage map and the sensor summary give exactly
the numbers the set was built to have (tests/fiveg/known_set.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest

from core.embedded import EmbeddedMosquitto
from fiveg import engine, histogram, store
from fiveg.coverage import cell_of, coverage_geojson
from fiveg.engine import TrialKpis, trial_kpis
from fiveg.kpi import Sample, Stats, bucket_start
from fiveg.store import StoredTrial
from fiveg.trial import TrialDefinition
from tests.fiveg import known_set
from tests.fiveg.feed import ingestor, publish_and_wait
from tests.support.kpi_stats import compute_stats

T = TypeVar("T")
SITE = f"fg-{uuid.uuid4().hex[:8]}"


async def run(db_url: str, fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        return await fn(conn)


@pytest.fixture(scope="module")
async def fed(db_url: str, mqtt_broker: EmbeddedMosquitto, anyio_backend: str) -> str:
    with ingestor(db_url, mqtt_broker, SITE):
        publish_and_wait(
            db_url, mqtt_broker, SITE, known_set.samples(SITE), known_set.senml_packs()
        )
    d = TrialDefinition.model_validate(known_set.trial_definition())
    await run(db_url, lambda c: store.save_trial(c, d))
    return db_url


async def _trial(db_url: str) -> StoredTrial:
    t = await run(db_url, lambda c: store.get_trial(c, "known-bus-trial"))
    assert t is not None
    return t


async def _kpis(db_url: str, source: str, bucket: timedelta = known_set.BUCKET) -> TrialKpis:
    t = await _trial(db_url)
    return await run(db_url, lambda c: trial_kpis(c, t, bucket=bucket, source=source))  # type: ignore[arg-type]


def _pure() -> tuple[Stats, dict[datetime, Stats]]:
    keys = Sample.__dataclass_fields__
    samples = [Sample(**{k: v for k, v in r.items() if k in keys}) for r in known_set.samples()]
    per: dict[datetime, list[Sample]] = {}
    for s in samples:
        per.setdefault(bucket_start(s.ts, known_set.BUCKET), []).append(s)
    return compute_stats(samples, 50), {b: compute_stats(x, 50) for b, x in per.items()}


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9), k


def test_every_sample_arrived_through_mqtt(fed: str) -> None:
    with psycopg.connect(fed) as conn:
        n, sites = conn.execute(
            "SELECT count(*), array_agg(DISTINCT site_id) FROM fiveg_radio"
            " WHERE device_id IN ('bus-01', 'bus-02')"
        ).fetchone()  # type: ignore[misc]
    assert n == 600 and sites == [SITE]


@pytest.mark.anyio
async def test_raw_kpis_are_exact(fed: str) -> None:
    k = await _kpis(fed, "raw")
    v = k.overall.values
    assert k.overall.n == 600
    assert v["ul_mbps_p5"] == pytest.approx(5.95)
    assert v["ul_mbps_p50"] == pytest.approx(50.5)
    assert v["ul_mbps_p95"] == pytest.approx(95.05)
    assert v["dl_mbps_mean"] == pytest.approx(125.0)
    assert (v["dl_mbps_p5"], v["dl_mbps_p95"]) == (50.0, 200.0)
    assert (v["rtt_ms_p50"], v["rtt_ms_p95"], v["rtt_ms_p99"]) == (10.0, 80.0, 80.0)
    assert v["reliability_pct"] == pytest.approx(80.0)
    assert v["loss_pct_mean"] == pytest.approx(0.25)
    assert k.overall.bands["rsrp_dbm"] == dict.fromkeys(("excellent", "good", "fair", "poor"), 150)
    assert k.overall.bands["sinr_db"] == {"excellent": 600, "good": 0, "fair": 0, "poor": 0}
    # The SQL raw path and the pure module agree on every KPI, overall and per bucket.
    overall, per_bucket = _pure()
    _assert_same(k.overall.values, overall.values)
    assert sorted(k.per_bucket) == sorted(per_bucket)
    for b, st in per_bucket.items():
        _assert_same(k.per_bucket[b].values, st.values)
        assert k.per_bucket[b].bands == st.bands
    assert k.per_device["bus-01"].values["dl_mbps_p5"] == 200.0
    assert k.per_device["bus-02"].values["loss_pct_mean"] == 0.0
    # Handovers: 9 cell changes over 20 device-buckets of 5 minutes.
    assert k.mobility is not None and k.mobility.handovers == 9
    assert k.mobility.device_hours == pytest.approx(100 / 60)
    assert k.mobility.per_device_hour == pytest.approx(5.4)


@pytest.mark.anyio
async def test_scorecard_against_transport_targets(fed: str) -> None:
    card = (await _kpis(fed, "raw")).scorecard
    rows = {(r.target.kpi, r.target.reference): r for r in card.results}
    assert set(rows) == {
        ("ul_mbps_p5", False), ("rtt_ms_p95", False), ("dl_mbps_p5", True), ("ul_mbps_p5", True)
    }  # fmt: skip
    ul, rtt = rows["ul_mbps_p5", False], rows["rtt_ms_p95", False]
    dl_ref, ul_ref = rows["dl_mbps_p5", True], rows["ul_mbps_p5", True]
    assert ul_ref.target.value == 50 and "M.2410" in ul_ref.target.source and not ul_ref.passed
    assert ul.target.value == 25.0 and ul.measured == pytest.approx(5.95) and not ul.passed
    assert (rtt.target.value, rtt.measured, rtt.passed) == (50.0, 80.0, False)
    assert rtt.availability_pct == pytest.approx(100 * 8 / 12)
    # Per bucket, UL p5 is >= 25 exactly where the bucket's 60 values start at >= 22 ...
    _, per_bucket = _pure()
    met = sum(1 for s in per_bucket.values() if (s.values["ul_mbps_p5"] or 0) >= 25)
    assert ul.availability_pct == pytest.approx(100 * met / 12)
    assert dl_ref.target.reference and dl_ref.target.value == 100 and not dl_ref.passed
    assert not card.passed
    assert (card.buckets_total, card.buckets_with_data) == (12, 10)
    assert card.data_coverage_pct == pytest.approx(100 * 10 / 12)
    assert [(g.start - known_set.START, g.end - known_set.START) for g in card.gaps] == [
        (timedelta(minutes=30), timedelta(minutes=40))
    ]


@pytest.mark.anyio
async def test_rollup_agrees_with_raw_within_the_documented_bound(fed: str) -> None:
    hour = timedelta(hours=1)
    live = await _kpis(fed, "rollup", hour)  # nothing materialized yet: all from the live tail
    with psycopg.connect(fed, autocommit=True) as conn:
        for name in ("fiveg_radio_5m", "fiveg_dl_hist_1h", "fiveg_ul_hist_1h", "fiveg_rtt_hist_1h"):
            conn.execute("SELECT mebuku.refresh_rollup(%s)", [name])
        assert conn.execute("SELECT count(*) FROM fiveg_ul_hist_1h_mat").fetchone()[0] > 0  # type: ignore[index]
    raw, roll = await _kpis(fed, "raw", hour), await _kpis(fed, "rollup", hour)
    assert live.overall.values == roll.overall.values and live.overall.bands == roll.overall.bands
    assert roll.overall.n == raw.overall.n == 600
    assert roll.overall.bands == raw.overall.bands
    for kpi, exact in raw.overall.values.items():
        est = roll.overall.values[kpi]
        assert exact is not None and est is not None, kpi
        if kpi.endswith(("_mean",)):
            assert est == pytest.approx(exact, rel=1e-9), kpi
        elif "_p" in kpi:
            assert abs(est - exact) <= histogram.RELATIVE_ERROR * exact + 1e-9, kpi
    # 50 ms sits inside a bin; all RTTs are 10 or 80 ms, so the share is still exact.
    assert roll.overall.values["reliability_pct"] == pytest.approx(80.0)
    assert [r.passed for r in roll.scorecard.results] == [r.passed for r in raw.scorecard.results]
    assert roll.scorecard.gaps == raw.scorecard.gaps
    assert [r.availability_pct for r in roll.scorecard.results] == [
        r.availability_pct for r in raw.scorecard.results
    ]
    # Coverage and gaps stay at 5-minute resolution on both paths.
    assert roll.scorecard.buckets_total == 12 and roll.scorecard.buckets_with_data == 10
    assert [(g.start.minute, g.end.minute) for g in roll.scorecard.gaps] == [(30, 40)]
    assert roll.bucket == hour and list(roll.per_bucket) == [known_set.START]


@pytest.mark.anyio
async def test_coverage_map(fed: str) -> None:
    d = await _trial(fed)
    pts = await run(
        fed, lambda c: store.coverage_points(c, d.devices, known_set.START, known_set.END)
    )
    gj = coverage_geojson(pts, min_samples=10)
    cells = {f["properties"]["cell"]: f for f in gj["features"]}
    station = "{}_{}".format(*cell_of(*known_set.STATION))
    north = "{}_{}".format(*cell_of(*known_set.NORTH))
    far = "{}_{}".format(*cell_of(*known_set.FAR))
    assert set(cells) == {station, north, far}
    s, n, f = (cells[c]["properties"] for c in (station, north, far))
    assert (s["samples"], n["samples"], f["samples"]) == (300, 295, 5)
    # bus-01 has even sample numbers: RSRP -75/-95 alternate, median -85 (good).
    assert (s["median_rsrp_dbm"], s["rsrp_band"], s["median_dl_mbps"]) == (-85.0, "good", 200.0)
    assert (n["median_rsrp_dbm"], n["rsrp_band"], n["median_dl_mbps"]) == (-105.0, "poor", 50.0)
    assert s["median_ul_mbps"] == 50.0  # even j: ul = j % 100 + 1 is odd 1..99, median 50
    assert f["sufficient"] is False and f["fill"] is None and f["rsrp_band"] is None
    assert s["sufficient"] and s["fill"] == "#91cf60"
    ring = cells[station]["geometry"]["coordinates"][0]
    assert len(ring) == 5 and ring[0] == ring[-1]
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    assert min(lons) <= known_set.STATION[1] <= max(lons)
    assert min(lats) <= known_set.STATION[0] <= max(lats)
    # 50 m cells: about 0.00045 degrees of latitude.
    assert max(lats) - min(lats) == pytest.approx(50 / 111_000, rel=0.02)


@pytest.mark.anyio
async def test_sensor_summary(fed: str) -> None:
    d = await _trial(fed)
    rows = await run(
        fed,
        lambda c: store.sensor_summaries(
            c, d.devices, known_set.START, known_set.END, known_set.BUCKET
        ),
    )
    assert len(rows) == 1
    s = rows[0]
    assert (s.device_id, s.name, s.unit, s.count) == ("env-01", "env-01:temperature", "Cel", 10)
    assert s.latest_value == pytest.approx(25.4)
    assert s.latest_ts == known_set.START + timedelta(minutes=54)
    assert [(g.start - known_set.START, g.end - known_set.START) for g in s.gaps] == [
        (timedelta(minutes=5), timedelta(minutes=50)),
        (timedelta(minutes=55), timedelta(minutes=60)),
    ]


@pytest.mark.anyio
async def test_auto_source_switches_to_rollups_for_big_trials(
    fed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = await _trial(fed)
    assert (
        await run(fed, lambda c: store.sample_count(c, t.devices, known_set.START, known_set.END))
        == 600
    )
    assert (await _kpis(fed, "auto")).source == "raw"
    monkeypatch.setattr(engine, "RAW_LIMIT", 599)
    k = await _kpis(fed, "auto")
    assert k.source == "rollup" and k.bucket == timedelta(hours=1) and k.mobility is None
