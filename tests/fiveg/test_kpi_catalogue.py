"""Contract tests over the KPI catalogue (fiveg.targets.KPIS), one battery per KPI.

On one set of samples, every catalogue KPI is computed by the API's exact path (SQL
composed from the catalogue), agrees with its definition computed here in Python, is
within the histogram's error of the rollup path, and the council dashboard's SQL gives
the same number. A KPI added to the catalogue gets this battery with no new test code.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
import pytest

from fiveg import histogram, store
from fiveg.dashboard import KPI_JSON
from fiveg.kpi import Stats
from fiveg.targets import KPIS, KpiInfo
from fiveg.trial import TrialDefinition
from tests.fiveg import known_set
from tests.support.grafana_macros import QueryContext, Variable, expand

T = TypeVar("T")
BOUND = 50.0  # the transport theme's latency bound (the known trial gives none)
DEVICES = ["bus-01", "bus-02"]


async def _run(db_url: str, fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        return await fn(conn)


def _samples() -> list[dict[str, Any]]:
    rng = random.Random(12)
    rows = []
    for i in range(720):
        ts = known_set.START + timedelta(seconds=5 * i)
        rows.append(
            {
                "site_id": known_set.SITE,
                "device_id": DEVICES[i % 2],
                "ts": ts,
                "ul_mbps": round(rng.lognormvariate(3.4, 0.4), 3),
                "dl_mbps": round(rng.lognormvariate(5.3, 0.3), 3),
                "rtt_ms": round(rng.lognormvariate(3.2, 0.4), 3) if i % 7 else None,
                "jitter_ms": round(rng.uniform(0.5, 5), 3),
                "loss_pct": round(rng.uniform(0, 1), 3),
                "rsrp_dbm": round(rng.uniform(-110, -70), 1),
                "rsrq_db": round(rng.uniform(-18, -6), 1),
                "sinr_db": round(rng.uniform(-2, 30), 1),
                "cell_id": "c1",
                "pci": 1,
                "band": "n79",
                "lat": known_set.STATION[0],
                "lon": known_set.STATION[1],
            }
        )
    return rows


@pytest.fixture(scope="module")
async def seeded(db_url: str, anyio_backend: str) -> tuple[str, list[dict[str, Any]]]:
    rows = _samples()
    known_set.insert_direct(db_url, rows)
    d = TrialDefinition.model_validate(known_set.trial_definition())
    await _run(db_url, lambda c: store.save_trial(c, d))
    return db_url, rows


def _expected(name: str, k: KpiInfo, rows: list[dict[str, Any]]) -> float | None:
    """The catalogue's definition, in Python (percentile_cont: linear interpolation)."""
    xs = sorted(float(r[k.column]) for r in rows if r[k.column] is not None)
    if not xs:
        return None
    if k.stat == "mean":
        return math.fsum(xs) / len(xs)
    if k.stat == "percentile":
        assert k.q is not None
        rank = k.q * (len(xs) - 1)
        lo, hi = math.floor(rank), math.ceil(rank)
        return xs[lo] + (rank - lo) * (xs[hi] - xs[lo])
    return 100.0 * sum(1 for x in xs if x <= BOUND) / len(xs)


@pytest.fixture(scope="module")
async def raw(seeded: tuple[str, list[dict[str, Any]]], anyio_backend: str) -> Stats:
    url, _ = seeded
    end = known_set.START + timedelta(hours=1)
    return await _run(url, lambda c: store.raw_stats(c, DEVICES, known_set.START, end, BOUND))


@pytest.fixture(scope="module")
async def rollup(seeded: tuple[str, list[dict[str, Any]]], anyio_backend: str) -> Stats:
    url, _ = seeded
    end = known_set.START + timedelta(hours=1)
    res = await _run(url, lambda c: store.rollup_stats(c, DEVICES, known_set.START, end, BOUND))
    return res.overall


@pytest.fixture(scope="module")
def dashboard_values(seeded: tuple[str, list[dict[str, Any]]]) -> dict[str, float | None]:
    url, _ = seeded
    ctx = QueryContext(
        time_from=known_set.START,
        time_to=known_set.START + timedelta(hours=1),
        interval=timedelta(minutes=1),
        variables={"trial": Variable(["known-bus-trial"])},
    )
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE fiveg_trials SET latency_bound_ms = %s", [BOUND])
        row = conn.execute(expand(KPI_JSON, ctx)).fetchone()
    assert row is not None
    doc = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return {k: (None if v is None else float(v)) for k, v in doc.items()}


every_kpi = pytest.mark.parametrize("name", list(KPIS))


@every_kpi
def test_exact_path_computes_the_catalogue_definition(
    name: str, seeded: tuple[str, list[dict[str, Any]]], raw: Stats
) -> None:
    _, rows = seeded
    expected = _expected(name, KPIS[name], rows)
    assert expected is not None
    assert raw.values[name] == pytest.approx(expected, rel=1e-6), name


@every_kpi
def test_rollup_path_agrees_within_the_histogram_error(
    name: str, raw: Stats, rollup: Stats
) -> None:
    exact, estimate = raw.values[name], rollup.values[name]
    assert exact is not None and estimate is not None
    if KPIS[name].stat == "mean":
        assert estimate == pytest.approx(exact, rel=1e-6)
    elif KPIS[name].stat == "percentile":
        assert estimate == pytest.approx(exact, rel=histogram.RELATIVE_ERROR)
    else:  # a share: the bound's own bin is split linearly
        assert abs(estimate - exact) < 5.0


@every_kpi
def test_council_dashboard_shows_the_same_number(
    name: str, rollup: Stats, dashboard_values: dict[str, float | None]
) -> None:
    # The dashboard reads the same rollups as the API's source=rollup (issue 14 item 4).
    assert dashboard_values[name] == pytest.approx(rollup.values[name], rel=1e-6)


def test_bands_are_counted_on_both_paths(raw: Stats, rollup: Stats) -> None:
    assert raw.n == rollup.n == 720
    assert raw.bands == rollup.bands
    assert all(sum(b.values()) == 720 for b in raw.bands.values())
