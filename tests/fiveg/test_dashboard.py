"""The council dashboard: valid JSON model, and every panel's SQL (expanded exactly as
Grafana would) returns rows of the right shape on the panel seed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from api.grafana.build import validate
from fiveg import dashboard, store
from fiveg.engine import trial_kpis
from tests.support.grafana_macros import QueryContext, Variable, expand, parse_interval
from tests.support.seed import fiveg as panel_seed


@pytest.fixture(scope="module")
def seeded(db_url: str) -> str:
    panel_seed.seed(db_url)
    return db_url


def test_dashboard_model() -> None:
    boards = dashboard.dashboards()
    validate(boards)
    folder, d = boards[0]
    assert folder == "council" and d["uid"] == "fiveg-council"
    kinds = [p["type"] for p in d["panels"]]
    assert {"stat", "timeseries", "geomap", "table", "bargauge"} <= set(kinds)
    score = d["panels"][0]
    steps = score["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"value": None, "color": "red"}, {"value": 100, "color": "green"}]


@pytest.mark.parametrize("trial", ["bus-supervision-2026", "ambulance-video-2026"])
def test_every_panel_returns_rows(seeded: str, trial: str) -> None:
    now = datetime.now(UTC)
    ctx = QueryContext(
        time_from=now - timedelta(hours=6),
        time_to=now,
        interval=timedelta(minutes=1),
        variables={"trial": Variable([trial])},
    )
    _, d = dashboard.dashboards()[0]
    with psycopg.connect(seeded) as conn:
        for p in d["panels"]:
            # As Grafana does: $__interval is never below the panel's minimum interval.
            step = timedelta(seconds=parse_interval(p.get("interval", "1m")))
            pctx = replace(ctx, interval=max(ctx.interval, step))
            for t in p["targets"]:
                cur = conn.execute(expand(t["rawSql"], pctx))
                rows = cur.fetchall()
                names = [c.name for c in cur.description or []]
                assert rows, p["title"]
                if t["format"] == "time_series":
                    points = timedelta(hours=6) / pctx.interval
                    assert names[0] == "time" and len(rows) >= points - 1, p["title"]
                    assert all(isinstance(v, float | int) for v in rows[0][1:]), p["title"]
        # The scorecard rows: one per non-reference target, as % of target.
        cur = conn.execute(expand(d["panels"][0]["targets"][0]["rawSql"], ctx))
        scores = cur.fetchall()
        n = conn.execute(
            "SELECT count(*) FROM fiveg_trial_targets WHERE trial_id = %s AND NOT reference",
            [trial],
        ).fetchone()
        assert n is not None and len(scores) == n[0]
        assert all(s[1] is not None and s[1] > 0 for s in scores)


@pytest.mark.anyio
async def test_running_trial_is_measured_up_to_now(seeded: str) -> None:
    async with await psycopg.AsyncConnection.connect(seeded, autocommit=True) as c:
        t = await store.get_trial(c, "bus-supervision-2026")
        assert t is not None and t.definition.period_end > datetime.now(UTC)
        k = await trial_kpis(c, t)
    end, coverage = k.end, k.scorecard.data_coverage_pct
    assert timedelta(0) <= datetime.now(UTC) - end < timedelta(minutes=1)
    # Six hours of samples in the day since the trial started; tomorrow is not a gap.
    assert 24 <= coverage <= 26
