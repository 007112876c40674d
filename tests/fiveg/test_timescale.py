"""The rollups as continuous aggregates on TimescaleDB give the same scorecard as the raw
path (skipped unless MEBUKU_TEST_TIMESCALE_URL names a TimescaleDB server)."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from core import migrator
from fiveg import histogram, store
from fiveg.engine import trial_kpis
from fiveg.trial import TrialDefinition
from tests.conftest import make_settings
from tests.fiveg import known_set

pytestmark = pytest.mark.timescale


@pytest.mark.anyio
async def test_rollups_are_continuous_aggregates_and_agree(timescale_url: str) -> None:
    migrator.migrate(timescale_url, make_settings(timescale_url))
    known_set.insert_direct(timescale_url, known_set.samples())
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        caggs = {r[0] for r in conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates")}  # fmt: skip
        assert caggs >= {"fiveg_radio_5m", "fiveg_dl_hist_1h", "fiveg_ul_hist_1h",
                         "fiveg_rtt_hist_1h"}  # fmt: skip
        for name in sorted(caggs):
            conn.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, NULL)")

    async with await psycopg.AsyncConnection.connect(timescale_url, autocommit=True) as c:
        d = TrialDefinition.model_validate(known_set.trial_definition())
        await store.save_trial(c, d)
        t = await store.get_trial(c, d.trial_id)
        assert t is not None
        hour = timedelta(hours=1)
        raw = await trial_kpis(c, t, bucket=hour, source="raw")
        roll = await trial_kpis(c, t, bucket=hour, source="rollup")
    assert roll.overall.n == raw.overall.n == 600
    for kpi, exact in raw.overall.values.items():
        est = roll.overall.values[kpi]
        assert est is not None and exact is not None, kpi
        assert abs(est - exact) <= histogram.RELATIVE_ERROR * exact + 1e-9, kpi
    assert raw.scorecard.gaps == roll.scorecard.gaps
