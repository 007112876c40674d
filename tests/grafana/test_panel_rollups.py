"""The rollup-backed panels answer what the raw-row queries they replaced answered.

Issue 14, item 4: the panels read per-minute rollups (core/migrations/0300) instead of
raw rows. On two hours of a simulated fleet (tests/support/fleet.py) whose first hour is
materialized (`mebuku db maintain` on plain PostgreSQL, a continuous-aggregate refresh
on TimescaleDB) and whose second hour is still only in the raw tables (the live tail /
real-time aggregation), each panel's SQL, expanded as Grafana would, is compared with the
raw query it replaced, for a minute-aligned range (Grafana's range edges cut a minute;
the rollups count whole minutes). Counts, sums and means must be equal; percentiles read
from the lag histogram within one bin and a half (9 %); the autonomy shares within one
percentage point (whole minutes per mode instead of fix-to-fix steps).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from api.grafana import platform_dashboard as platform
from core import migrator, timeseries
from core.db import has_timescale
from core.grafana import fill
from core.i18n import gettext, gettext_for
from fiveg import dashboard as fiveg
from fiveg.targets import KPIS
from ingest import dashboard as ingest
from mobility import dashboard as mobility
from tests.conftest import make_settings
from tests.support.fleet import Volume, load, register_devices
from tests.support.grafana_macros import QueryContext, Variable, expand
from tests.support.seed.fiveg import _save, example_trials

HOUR = 3600
Row = tuple[Any, ...]

# The raw-row queries the panels ran before (ingest/dashboard.py, mobility/dashboard.py,
# api/grafana/platform_dashboard.py at the start of issue 14).
RAW_ROWS_PER_MINUTE = (
    "SELECT * FROM (\n"
    + "\nUNION ALL\n".join(
        f"SELECT $__timeGroupAlias(received_at, '1m'), "
        f"'{gettext(ingest.STREAM_TITLES[name], 'ja')}' AS metric, count(*) AS value "
        f"FROM grafana.{table} WHERE $__timeFilter(ts) AND $__timeFilter(received_at) GROUP BY 1"
        for table, name in ingest._STREAMS
    )
    + "\n) q ORDER BY 1, 2"
)
RAW_REJECT_SHARE = (
    "SELECT (SELECT count(*) FROM grafana.ingest_rejects WHERE $__timeFilter(received_at))"
    "::float8 / greatest(1, "
    + " + ".join(
        f"(SELECT count(*) FROM grafana.{t} WHERE $__timeFilter(ts))" for t, _ in ingest._STREAMS
    )
    + " + (SELECT count(*) FROM grafana.ingest_rejects WHERE $__timeFilter(received_at)))"
)
# The lag histograms' first bin holds every lag under 1 ms, a device clock running ahead
# included, and shows it as 0: the raw percentiles floor the lag at 0 the same way (a fix
# stamped on the hour by a clock 0.3 s fast is committed in the hour before).
RAW_LAG = """
SELECT time, percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_s),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY lag_s)
FROM (SELECT $__timeGroupAlias(received_at, '1m'),
             greatest(extract(epoch FROM received_at - ts), 0) AS lag_s
      FROM grafana.bus_telemetry
      WHERE $__timeFilter(ts) AND $__timeFilter(received_at)) l
GROUP BY 1 ORDER BY 1
"""
RAW_FRESHNESS = """
SELECT vehicle_id, max(ts), extract(epoch FROM now() - max(ts)), count(*)
FROM grafana.bus_telemetry WHERE $__timeFilter(ts) GROUP BY vehicle_id ORDER BY 3 DESC
"""
RAW_SPEED = """
SELECT $__timeGroupAlias(ts, $__interval), vehicle_id AS metric, avg(speed_mps) * 3.6 AS speed
FROM grafana.bus_telemetry WHERE $__timeFilter(ts) GROUP BY 1, 2 ORDER BY 1, 2
"""
RAW_MODE_SHARE = """
SELECT $__timeGroupAlias(ts, $__interval),
       100.0 * avg((mode = 'autonomous')::int), 100.0 * avg((mode = 'remote')::int)
FROM grafana.bus_telemetry WHERE $__timeFilter(ts) AND mode IS NOT NULL
GROUP BY 1 ORDER BY 1
"""
RAW_AUTONOMY = """
WITH t AS (
    SELECT mode, odometer_m - lag(odometer_m) OVER w AS dd,
           lag(mode) OVER w AS pmode, extract(epoch FROM ts - lag(ts) OVER w) AS dt
    FROM grafana.bus_telemetry
    WHERE $__timeFilter(ts) AND odometer_m IS NOT NULL
    WINDOW w AS (PARTITION BY vehicle_id ORDER BY ts)
)
SELECT coalesce(100.0 * sum(dd) FILTER (WHERE pmode = 'autonomous') / nullif(sum(dd), 0), 0),
       coalesce(100.0 * sum(dt) FILTER (WHERE pmode = 'autonomous') / nullif(sum(dt), 0), 0),
       coalesce(sum(dd), 0) / 1000.0
FROM t WHERE dd >= 0 AND dt <= 60
"""
RAW_TAKEOVERS = """
WITH km AS (
    SELECT greatest(coalesce(sum(dd), 0) / 1000.0, 0.001) AS km FROM (
        SELECT odometer_m - lag(odometer_m) OVER (PARTITION BY vehicle_id ORDER BY ts) AS dd
        FROM grafana.bus_telemetry WHERE $__timeFilter(ts) AND odometer_m IS NOT NULL
    ) d WHERE dd >= 0
)
SELECT coalesce(e.cause, 'unknown') AS cause, count(*)::float8 AS takeovers,
       100.0 * count(*) / km.km AS "per 100 km"
FROM grafana.bus_events e, km
WHERE $__timeFilter(e.ts) AND e.type = 'takeover'
GROUP BY 1, km.km ORDER BY 2 DESC, 1
"""
RAW_MESSAGES = (
    """
SELECT $__timeGroupAlias(ts, $__interval), count(*)::float8
FROM ("""
    + "\n  UNION ALL ".join(
        f"SELECT ts FROM grafana.{t} WHERE $__timeFilter(ts)" for t, _ in ingest._STREAMS
    )
    + """) m GROUP BY 1 ORDER BY 1
"""
)
RAW_PLATFORM_LAG = """
SELECT $__timeGroupAlias(ts, $__interval),
  percentile_cont(0.95) WITHIN GROUP (ORDER BY greatest(extract(epoch FROM received_at - ts), 0)),
  avg(extract(epoch FROM received_at - ts))::float8
FROM grafana.bus_telemetry WHERE $__timeFilter(ts) GROUP BY 1 ORDER BY 1
"""
RAW_PER_VEHICLE = """
SELECT $__timeGroupAlias(ts, $__interval), vehicle_id AS metric, count(*)::float8
FROM grafana.bus_telemetry WHERE $__timeFilter(ts) AND vehicle_id IN ($vehicle)
GROUP BY 1, 2 ORDER BY 1, 2
"""
RAW_VEHICLES = "SELECT DISTINCT vehicle_id FROM grafana.bus_telemetry ORDER BY 1"
RAW_COVERAGE_PCT = f"""
SELECT 100.0 * count(DISTINCT time_bucket('5 minutes', ts)) * 300
       / greatest(extract(epoch FROM $__timeTo()::timestamptz - $__timeFrom()::timestamptz), 1)
FROM grafana.fiveg_radio WHERE {fiveg.IN_TRIAL}
"""
# The scorecard's KPIs as they were computed from raw samples (percentile_cont).
RAW_KPIS = f"""
SELECT avg(dl_mbps), percentile_cont(0.05) WITHIN GROUP (ORDER BY dl_mbps),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ul_mbps),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY rtt_ms), avg(jitter_ms), avg(loss_pct),
       100.0 * count(*) FILTER (WHERE rtt_ms <= (
           SELECT latency_bound_ms FROM grafana.fiveg_trials WHERE trial_id = '${{trial}}'))
           / nullif(count(rtt_ms), 0)
FROM grafana.fiveg_radio WHERE {fiveg.IN_TRIAL}
"""
ROLLUP_KPIS = f"""
WITH s AS ({fiveg.KPI_JSON})
SELECT (k ->> 'dl_mbps_mean')::float8, (k ->> 'dl_mbps_p5')::float8,
       (k ->> 'ul_mbps_p50')::float8, (k ->> 'rtt_ms_p95')::float8,
       (k ->> 'jitter_ms_mean')::float8, (k ->> 'loss_pct_mean')::float8,
       (k ->> 'reliability_pct')::float8
FROM s
"""
RAW_THEMES = """
SELECT t.theme, t.title, count(r.*),
       percentile_cont(0.05) WITHIN GROUP (ORDER BY r.ul_mbps),
       percentile_cont(0.05) WITHIN GROUP (ORDER BY r.dl_mbps),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY r.rtt_ms)
FROM grafana.fiveg_trials t
JOIN grafana.fiveg_trial_devices d ON d.trial_id = t.trial_id
JOIN grafana.fiveg_radio r ON r.device_id = d.device_id AND $__timeFilter(r.ts)
     AND r.ts >= t.period_start AND r.ts < t.period_end
GROUP BY t.theme, t.title, t.trial_id ORDER BY t.theme, t.title
"""
RAW_THROUGHPUT = f"""
SELECT $__timeGroupAlias(ts, $__interval),
       percentile_cont(0.05) WITHIN GROUP (ORDER BY ul_mbps), avg(ul_mbps),
       percentile_cont(0.05) WITHIN GROUP (ORDER BY dl_mbps), avg(dl_mbps)
FROM grafana.fiveg_radio WHERE {fiveg.IN_TRIAL} GROUP BY 1 ORDER BY 1
"""
RAW_RTT = f"""
SELECT $__timeGroupAlias(ts, $__interval),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY rtt_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY rtt_ms),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY rtt_ms)
FROM grafana.fiveg_radio WHERE {fiveg.IN_TRIAL} GROUP BY 1 ORDER BY 1
"""
RAW_BANDS = f"""
SELECT 100.0 * count(*) FILTER (WHERE rsrp_dbm >= -80) / nullif(count(rsrp_dbm), 0),
       100.0 * count(*) FILTER (WHERE rsrp_dbm >= -90 AND rsrp_dbm < -80)
             / nullif(count(rsrp_dbm), 0),
       100.0 * count(*) FILTER (WHERE rsrp_dbm >= -100 AND rsrp_dbm < -90)
             / nullif(count(rsrp_dbm), 0),
       100.0 * count(*) FILTER (WHERE rsrp_dbm < -100) / nullif(count(rsrp_dbm), 0)
FROM grafana.fiveg_radio WHERE {fiveg.IN_TRIAL}
"""

# The coverage map as it was on raw samples (exact medians), per cell.
RAW_CELLS = f"""
SELECT cx || '_' || cy, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY rsrp_dbm),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ul_mbps),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY dl_mbps)
FROM grafana.fiveg_radio_cells WHERE {fiveg.IN_TRIAL}
GROUP BY cx, cy ORDER BY 1
"""
PANEL_CELLS = f"""
SELECT cell, samples, "median RSRP", "median UL", "median DL" FROM ({fiveg.COVERAGE_MAP}) m
ORDER BY 1
"""


def _num(x: Any) -> Any:
    return float(x) if isinstance(x, Decimal | int | float) and not isinstance(x, bool) else x


def _close(a: Any, b: Any, rel: float, abs_: float) -> bool:
    a, b = _num(a), _num(b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    return bool(a == b)


def assert_same(
    raw: Sequence[Row], rollup: Sequence[Row], *, rel: float = 1e-9, abs_: float = 1e-9,
    key: Callable[[Row], Any] = lambda r: r,
) -> None:  # fmt: skip
    """Same rows (after ``key``), values equal within ``rel`` / ``abs_``."""
    assert raw, "the raw query returned nothing: the comparison would be vacuous"
    assert len(raw) == len(rollup), (len(raw), len(rollup))
    order = lambda r: tuple(str(_num(x)) for x in r[:2])  # noqa: E731 (time, series)
    for r, g in zip(sorted(raw, key=order), sorted(rollup, key=order), strict=True):
        r, g = key(r), key(g)
        assert len(r) == len(g), (r, g)
        assert all(_close(a, b, rel, abs_) for a, b in zip(r, g, strict=True)), (r, g)


@pytest.fixture(scope="module")
def fleet(db_url: str) -> tuple[str, datetime, datetime]:
    return _load_fleet(db_url)


def _load_fleet(url: str) -> tuple[str, datetime, datetime]:
    """Two hours of 4 buses and 6 devices ending 3 minutes ago, the first hour materialized
    (the watermark put at its end), the second only raw. Returns (url, start, end)."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    # The first hour is materialized up to start + 1 h: a start 1-4 minutes past the hour
    # would leave the first whole clock hour (which the checks read) nothing materialized,
    # whatever the minute the tests run at; start on the hour then.
    if 0 < end.minute < 5:
        end -= timedelta(minutes=end.minute)
    start = end - timedelta(hours=2)
    vol = Volume(buses=4, devices=6, days=2 / 24)
    asyncio.run(_save(url, example_trials(end)))
    register_devices(url, vol.devices, start, end + timedelta(days=1))
    load(url, vol, start, 2 * HOUR)
    mid = start + timedelta(hours=1)
    with psycopg.connect(url, autocommit=True) as conn:
        # Some clocks ahead of the broker (negative lag) and some late commits (minutes).
        conn.execute(
            "UPDATE bus_telemetry SET received_at = ts - interval '0.3 s' "
            "WHERE vehicle_id = 'bench-bus-002' AND seq % 7 = 0"
        )
        conn.execute(
            "UPDATE bus_telemetry SET received_at = ts + interval '95 s' "
            "WHERE vehicle_id = 'bench-bus-003' AND seq % 11 = 0"
        )
        # Materialize the first hour only: the second is answered from raw rows.
        timescale = has_timescale(conn)
        for (name,) in conn.execute(
            "SELECT name FROM mebuku.rollups ORDER BY bucket_width, name"
        ).fetchall():
            if timescale:
                conn.execute(
                    f"CALL refresh_continuous_aggregate('{name}', NULL, %s::timestamptz)", [mid]
                )
            else:
                conn.execute("SELECT mebuku.refresh_rollup(%s)", [name])
                # As refresh_rollup would have set it then: the start of mid's bucket.
                conn.execute(
                    "UPDATE mebuku.rollups SET watermark = CASE WHEN bucket_tz IS NULL"
                    " THEN time_bucket(bucket_width, %(t)s)"
                    " ELSE time_bucket(bucket_width, %(t)s, bucket_tz) END WHERE name = %(n)s",
                    {"t": mid, "n": name},
                )
                conn.execute("SELECT mebuku.set_rollup_view(%s)", [name])
    return url, start, end


def run(url: str, sql: str, ctx: QueryContext) -> list[Row]:
    with psycopg.connect(url) as conn:
        return conn.execute(expand(sql, ctx).encode()).fetchall()


def contexts(
    start: datetime, end: datetime, timescale: bool
) -> list[tuple[str, QueryContext]]:  # fmt: skip
    """Minute-aligned ranges (Grafana's ``to`` is inclusive: stop 1 ms before the minute):
    the whole two hours at 1 and 5 minutes, and 30 minutes across the materialized edge."""
    vehicles = {
        "vehicle": Variable([f"bench-bus-{v:03d}" for v in (1, 2, 3, 4)], multi=True),
        "trial": Variable(["bus-supervision-2026"]),
    }
    ms = timedelta(milliseconds=1)
    mid = start + timedelta(hours=1)
    return [
        ("2h/1m", QueryContext(start, end - ms, timedelta(minutes=1), timescale, vehicles)),
        ("2h/5m", QueryContext(start, end - ms, timedelta(minutes=5), timescale, vehicles)),
        (
            "edge/1m",
            QueryContext(
                mid - timedelta(minutes=15),
                mid + timedelta(minutes=15) - ms,
                timedelta(minutes=1),
                timescale,
                vehicles,
            ),
        ),
    ]


def check_panels(url: str, start: datetime, end: datetime, timescale: bool) -> int:
    """Compare every rollup-backed panel with its raw query; returns comparisons made."""
    compared = 0
    for name, ctx in contexts(start, end, timescale):
        assert run(url, "SELECT count(*) FROM grafana.bus_telemetry", ctx)[0][0] > 10_000, name
        exact = [
            (RAW_ROWS_PER_MINUTE, ingest._rows_per_minute()),
            (RAW_REJECT_SHARE, ingest._reject_share()),
            (RAW_SPEED, mobility.SPEED),
            (RAW_MODE_SHARE, mobility.MODE_SHARE),
            (
                RAW_TAKEOVERS,
                mobility.TAKEOVERS.format(cause="coalesce(e.cause, 'unknown')").replace(
                    "ORDER BY 2 DESC", "ORDER BY 2 DESC, 1"
                ),
            ),
            (RAW_MESSAGES, platform._MESSAGES),
            (RAW_PER_VEHICLE, platform._PER_VEHICLE.replace("ORDER BY 1", "ORDER BY 1, 2")),
        ]
        for raw, rollup in exact:
            assert_same(run(url, raw, ctx), run(url, rollup, ctx))
            compared += 1
        # Freshness: "silent for" is measured at each query's own now().
        assert_same(
            run(url, RAW_FRESHNESS, ctx), run(url, ingest.FRESHNESS, ctx), abs_=5.0,
            key=lambda r: (r[0], r[1], round(float(r[2])), r[3]),
        )  # fmt: skip
        # Percentiles from the histogram: within a bin and a half; the mean exact.
        lag_raw, lag_rollup = run(url, RAW_LAG, ctx), run(url, ingest.LAG, ctx)
        assert_same(lag_raw, lag_rollup, rel=0.09, abs_=0.001)
        assert_same(
            run(url, RAW_PLATFORM_LAG, ctx), run(url, platform._LAG, ctx), rel=0.09, abs_=0.001
        )
        assert_same(
            run(url, RAW_AUTONOMY, ctx), run(url, mobility.AUTONOMY, ctx), rel=1e-6, abs_=1.0
        )
        compared += 4
    vehicles = contexts(start, end, timescale)[0][1]
    assert run(url, RAW_VEHICLES, vehicles) == run(url, platform._VEHICLES, vehicles)
    # The 5-minute rollup over whole 5-minute buckets.
    five = timedelta(minutes=5)
    first = start + (-(start - datetime(2000, 1, 3, tzinfo=UTC)) % five)
    last = end - ((end - datetime(2000, 1, 3, tzinfo=UTC)) % five)
    for a, b in ((first, last), (first + five, last - 3 * five)):
        ctx = replace(vehicles, time_from=a, time_to=b - timedelta(milliseconds=1))
        assert (
            run(url, f"SELECT count(*) FROM grafana.fiveg_radio WHERE {fiveg.IN_TRIAL}", ctx)[0][0]
            > 1000
        )
        assert_same(run(url, RAW_BANDS, ctx), run(url, fiveg.BANDS, ctx))
        assert_same(run(url, RAW_COVERAGE_PCT, ctx), run(url, fiveg.COVERAGE_PCT, ctx))
        compared += 2
    # The scorecard over whole hours: means exact, percentiles within one bin (5.9 %),
    # the share under the latency bound within a percentage point.
    hour = timedelta(hours=1)
    a = start + (-(start - datetime(2000, 1, 3, tzinfo=UTC)) % hour)
    ctx = replace(vehicles, time_from=a, time_to=a + hour - timedelta(milliseconds=1))
    kpis, estimate = run(url, RAW_KPIS, ctx)[0], run(url, ROLLUP_KPIS, ctx)[0]
    assert kpis[0] is not None
    for i, rel in enumerate((1e-6, 0.06, 0.06, 0.06, 1e-6, 1e-6)):
        assert math.isclose(float(kpis[i]), estimate[i], rel_tol=rel), (i, kpis, estimate)
    assert abs(float(kpis[6]) - estimate[6]) < 1.0, (kpis, estimate)
    targets = run(
        url,
        "SELECT count(*) FROM grafana.fiveg_trial_targets "
        "WHERE trial_id = '${trial}' AND NOT reference",
        ctx,
    )[0][0]
    score = run(url, fill(fiveg.SCORE, fiveg._target_parts(gettext_for("en"))), ctx)
    assert targets > 0 and len(score) == targets, score
    assert all(r[1] is not None for r in score), score
    # The series per hour (the panels' minimum interval): means exact, percentiles 5.9 %.
    hourly = replace(ctx, interval=hour)
    for raw_sql, panel_sql, exact_cols in (
        (RAW_THROUGHPUT, fiveg.THROUGHPUT, (2, 4)),
        (RAW_RTT, fiveg.RTT, ()),
    ):
        series_raw, series = run(url, raw_sql, hourly), run(url, panel_sql, hourly)
        assert len(series_raw) == len(series) == 1, (series_raw, series)
        for r, g in zip(series_raw, series, strict=True):
            assert r[0] == g[0]
            for i in range(1, len(r)):
                rel = 1e-6 if i in exact_cols else 0.06
                assert math.isclose(float(r[i]), float(g[i]), rel_tol=rel), (i, r, g)
    # Ranges over 6 hours: the lag panels read the hourly lag histogram, a point an hour.
    long = replace(
        ctx, time_from=a - timedelta(days=1), time_to=a + timedelta(days=3), interval=hour
    )
    lag_raw = run(url, RAW_LAG.replace("'1m'", "'1h'"), long)
    assert len(lag_raw) >= 2, lag_raw
    assert_same(lag_raw, run(url, ingest.LAG, long), rel=0.09, abs_=0.001)
    assert_same(
        run(url, RAW_PLATFORM_LAG, long), run(url, platform._LAG, long), rel=0.09, abs_=0.001
    )
    check_themes(url, ctx)
    # The coverage map over whole hours (hourly cells), and over days (a range longer than
    # a day: its whole days from the daily cells).
    check_cells(url, ctx)
    check_cells(url, replace(ctx, time_from=a - timedelta(days=1), time_to=a + timedelta(days=3)))
    return compared + 10  # vehicles, KPIs, scorecard, 2 series, 2 lags, themes, 2 maps


def check_themes(url: str, ctx: QueryContext) -> None:
    """The themes table (trial-level histograms) against raw samples."""
    themes_raw = run(url, RAW_THEMES, ctx)
    themes = run(url, fill(fiveg.THEMES, {"theme": "t.theme"}), ctx)
    assert len(themes_raw) == 3 and [r[:3] for r in themes_raw] == [r[:3] for r in themes]
    for r, g in zip(themes_raw, themes, strict=True):
        assert all(math.isclose(a, b, rel_tol=0.06) for a, b in zip(r[3:], g[3:6], strict=True))


def check_cells(url: str, ctx: QueryContext) -> None:
    """The coverage map from the cell rollups against raw samples of an hour-aligned
    range: the same cells and sample counts, medians within one bin (1 dB, 5.9 %)."""
    raw, panel = run(url, RAW_CELLS, ctx), run(url, PANEL_CELLS, ctx)
    assert len(raw) > 10 and [r[:2] for r in raw] == [r[:2] for r in panel]
    for r, g in zip(raw, panel, strict=True):
        if r[1] >= fiveg.COVERAGE_MIN_SAMPLES:
            assert abs(r[2] - g[2]) <= 1.0, (r, g)
        else:
            assert g[2] is None, (r, g)
        assert math.isclose(r[3], g[3], rel_tol=0.06) and math.isclose(r[4], g[4], rel_tol=0.06)


# The EBPM dashboard's local-5G views (core/roles/migrations/0430: trial rollups clipped
# to each trial's period) against the exact open-data views the release publishes.
EXACT_KPIS = (
    "SELECT trial_id, kpi, samples, measured, met, target FROM opendata.fiveg_trial_kpis"
    " ORDER BY 1, 2"
)
EBPM_KPIS = (
    "SELECT trial_id, kpi, samples, measured, met, target FROM grafana.ebpm_fiveg_targets"
    " ORDER BY 1, 2"
)
EXACT_CELLS = (
    "SELECT trial_id, cell, samples, rsrp_dbm_median, dl_mbps_median, ul_mbps_median"
    " FROM opendata.fiveg_coverage_cells WHERE samples >= 10 ORDER BY 1, 2"
)
EBPM_CELLS = (
    "SELECT trial_id, cell, samples, rsrp_dbm_median, dl_mbps_median, ul_mbps_median"
    " FROM grafana.ebpm_fiveg_cells ORDER BY 1, 2"
)


def _within_bin(exact: Any, estimate: Any, kpi: str) -> bool:
    """A KPI from the rollups against the exact one: means equal, percentiles within one
    log bin (5.9 %), the share within the latency bound within a percentage point."""
    if exact is None or estimate is None:
        return exact is None and estimate is None
    a, b = float(exact), float(estimate)
    if kpi.endswith("_mean"):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if kpi == "reliability_pct":
        return abs(a - b) < 1.0
    return math.isclose(a, b, rel_tol=0.06, abs_tol=0.01)


def check_ebpm(url: str) -> int:
    """The EBPM views against the open-data ones: the same targets and sample counts,
    values within one bin, the same verdicts (unless the target lies within that bin);
    the same cells and sample counts, medians within one bin. Returns KPIs compared."""
    ctx = contexts(datetime.now(UTC), datetime.now(UTC), False)[0][1]
    exact, ebpm = run(url, EXACT_KPIS, ctx), run(url, EBPM_KPIS, ctx)
    assert len(exact) > 10 and [r[:3] for r in exact] == [r[:3] for r in ebpm]
    assert all(r[2] > 1000 for r in exact), exact
    for r, g in zip(exact, ebpm, strict=True):
        assert r[3] is not None and _within_bin(r[3], g[3], r[1]), (r, g)
        assert r[4] == g[4] or _within_bin(r[5], r[3], r[1]), (r, g)
    cells_exact, cells = run(url, EXACT_CELLS, ctx), run(url, EBPM_CELLS, ctx)
    assert len(cells_exact) > 10 and [r[:3] for r in cells_exact] == [r[:3] for r in cells]
    for r, g in zip(cells_exact, cells, strict=True):
        assert abs(r[3] - g[3]) <= 1.0, (r, g)
        for i in (4, 5):
            assert math.isclose(r[i], g[i], rel_tol=0.06, abs_tol=0.01), (r, g)
    return len(exact)


@contextmanager
def _every_kpi_targeted(url: str) -> Iterator[None]:
    """Every KPI of the catalogue given to every trial as a reference target (for the
    comparisons; removed after)."""
    with psycopg.connect(url, autocommit=True) as conn:
        added = conn.execute(
            "INSERT INTO fiveg_trial_targets (trial_id, kpi, op, value, unit, label, source,"
            " reference) SELECT t.trial_id, k.kpi, '>=', 1, 'x', k.kpi, 'test', true"
            " FROM fiveg_trials t, unnest(%s::text[]) k(kpi)"
            " ON CONFLICT DO NOTHING RETURNING trial_id, kpi",
            [list(KPIS)],
        ).fetchall()
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for trial, kpi in added:
                conn.execute(
                    "DELETE FROM fiveg_trial_targets WHERE trial_id = %s AND kpi = %s",
                    [trial, kpi],
                )


def check_ebpm_periods(url: str, start: datetime, end: datetime, summarize: bool = False) -> None:
    """As loaded (from a minute into the future), then with periods that cut 5-minute
    buckets and hours at both ends (the partial buckets read raw), each against the exact
    views; every KPI of the catalogue is given a reference target for the comparison.
    summarize: also with summaries built for the cut periods."""
    with _every_kpi_targeted(url):
        assert check_ebpm(url) == 3 * len(KPIS)
        _check_ebpm_cut(url, start, end, summarize)


def _check_ebpm_cut(url: str, start: datetime, end: datetime, summarize: bool = False) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        saved = conn.execute(
            "SELECT trial_id, period_start, period_end FROM fiveg_trials"
        ).fetchall()
        trials = sorted(r[0] for r in saved)
        cuts = [
            (start + timedelta(minutes=7, seconds=13), end - timedelta(minutes=17, seconds=29)),
            (start + timedelta(minutes=61, seconds=1), end - timedelta(minutes=2, seconds=1)),
            (start + timedelta(minutes=3), start + timedelta(minutes=79, seconds=30)),
        ]
        for trial, (a, b) in zip(trials, cuts, strict=False):
            conn.execute(
                "UPDATE fiveg_trials SET period_start = %s, period_end = %s WHERE trial_id = %s",
                [a, b, trial],
            )
    try:
        # A summary built for another period_start is ignored until it is rebuilt.
        check_ebpm(url)
        if summarize:
            assert _summarize(url) == len(trials)
            check_ebpm(url)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for trial, a, b in saved:
                conn.execute(
                    "UPDATE fiveg_trials SET period_start = %s, period_end = %s"
                    " WHERE trial_id = %s",
                    [a, b, trial],
                )


def _summarize(url: str) -> int:
    """What `mebuku db maintain` or the TimescaleDB job does after refreshing the rollups
    (core/roles/migrations/0440), but leaving the last 10-15 minutes to the tail (the
    default leaves 2-7); returns the trials whose summary moved."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT mebuku.ebpm_fiveg_summarize(settle => interval '10 minutes')"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _refresh_all(url: str) -> None:
    """Every rollup materialized up to now (refresh_rollup; on TimescaleDB a refresh)."""
    with psycopg.connect(url, autocommit=True) as conn:
        timescale = has_timescale(conn)
        for (name,) in conn.execute(
            "SELECT name FROM mebuku.rollups ORDER BY bucket_width, name"
        ).fetchall():
            if timescale:
                conn.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, now())")
            else:
                conn.execute("SELECT mebuku.refresh_rollup(%s)", [name])


def _ebpm_counts(url: str) -> tuple[list[Row], list[Row]]:
    ctx = contexts(datetime.now(UTC), datetime.now(UTC), False)[0][1]
    return (
        run(url, "SELECT trial_id, samples FROM grafana.ebpm_fiveg_targets ORDER BY 1, 2", ctx),
        run(url, "SELECT trial_id, samples FROM opendata.fiveg_trial_kpis ORDER BY 1, 2", ctx),
    )


def check_ebpm_summary(url: str, start: datetime, end: datetime) -> None:
    """The EBPM views over the per-trial summaries (0440) plus what is past them: equal to
    the exact views with each period partly summarized, with periods cut (summaries built
    for the old periods ignored, then rebuilt), and after late samples in a summarized
    stretch (the recount rebuilds the summary)."""
    assert _summarize(url) == 3
    with psycopg.connect(url) as conn:
        marks = conn.execute("SELECT period_start, upto FROM fiveg_trial_summary").fetchall()
    # Each period part summarized, the rest read from the rollups and raw samples.
    assert len(marks) == 3 and all(start < u < end for _, u in marks), marks
    check_ebpm_periods(url, start, end, summarize=True)
    assert _summarize(url) == 3  # the restored periods: rebuilt
    with _every_kpi_targeted(url):
        check_ebpm(url)
    # Late samples (half a second after some of a device's own) in the summarized stretch.
    with psycopg.connect(url, autocommit=True) as conn:
        late = conn.execute(
            "INSERT INTO fiveg_radio (site_id, device_id, ts, rsrp_dbm, rsrq_db, sinr_db,"
            " dl_mbps, ul_mbps, rtt_ms, jitter_ms, loss_pct, cell_id, pci, band, lat, lon,"
            " received_at) SELECT site_id, device_id, ts + interval '0.5 s', rsrp_dbm, rsrq_db,"
            " sinr_db, dl_mbps, ul_mbps, rtt_ms, jitter_ms, loss_pct, cell_id, pci, band,"
            " lat, lon, now() FROM fiveg_radio WHERE device_id = 'bench-5g-001'"
            " AND ts >= %s AND ts < %s",
            [start + timedelta(minutes=20), start + timedelta(minutes=50)],
        ).rowcount
    assert late > 1000
    _refresh_all(url)
    summarized, exact = _ebpm_counts(url)
    assert summarized != exact  # the summaries do not have them yet
    assert _summarize(url) >= 1  # that device's trial rebuilt
    assert _ebpm_counts(url)[0] == exact
    with _every_kpi_targeted(url):
        check_ebpm(url)


def test_rollup_panels_match_raw_queries_on_plain_postgresql(
    fleet: tuple[str, datetime, datetime],
) -> None:
    url, start, end = fleet
    with psycopg.connect(url) as conn:
        assert not has_timescale(conn)
        # Part of the answer comes from the materialized view, part from the live tail.
        wm = conn.execute(
            "SELECT watermark FROM mebuku.rollups WHERE name = 'bus_telemetry_1m'"
        ).fetchone()
        assert wm is not None and start < wm[0] < end
    assert check_panels(url, start, end, timescale=False) == 3 * 11 + 4 + 10
    # The panels expand with the data source's TimescaleDB option too (time_bucket).
    assert check_panels(url, start, end, timescale=True) == 3 * 11 + 4 + 10
    check_ebpm_periods(url, start, end)
    check_ebpm_summary(url, start, end)


def test_the_lag_histogram_sees_late_and_early_commits(
    fleet: tuple[str, datetime, datetime],
) -> None:
    url, start, end = fleet
    ctx = contexts(start, end, False)[0][1]
    rows = run(
        url,
        "SELECT min(lag_s), max(lag_s), sum(n) FROM grafana.bus_telemetry_lag_1m "
        "WHERE $__timeFilter(bucket)",
        ctx,
    )
    low, high, n = rows[0]
    assert low == 0  # negative lags land in bin 0
    assert 90 < high < 100  # the 95 s commits, to within a bin
    raw = run(url, "SELECT count(*) FROM grafana.bus_telemetry WHERE $__timeFilter(ts)", ctx)
    assert n == raw[0][0]


def check_device_change(url: str, start: datetime) -> None:
    """A device moved to another trial: its samples' materialized buckets follow it once
    `mebuku db maintain` has run (the trial rollups key samples by trial)."""
    hour = timedelta(hours=1)
    a = start + (-(start - datetime(2000, 1, 3, tzinfo=UTC)) % hour)
    ctx = replace(
        contexts(start, start + 2 * hour, False)[0][1],
        time_from=a,
        time_to=a + hour - timedelta(milliseconds=1),
    )
    themes = fill(fiveg.THEMES, {"theme": "t.theme"})
    before = [r[:3] for r in run(url, themes, ctx)]
    with psycopg.connect(url, autocommit=True) as conn:
        (device, old, new), *_ = conn.execute(
            "SELECT d.device_id, d.trial_id, t.trial_id FROM fiveg_trial_devices d"
            " JOIN fiveg_trials t ON t.trial_id <> d.trial_id"
            " WHERE d.device_id LIKE 'bench-5g-%' ORDER BY 1, 3"
        ).fetchall()
        conn.execute("UPDATE fiveg_trial_devices SET trial_id = %s WHERE device_id = %s"
                     " AND trial_id = %s", [new, device, old])  # fmt: skip
    # The raw samples moved at once; the materialized part of the hour has not yet.
    moved = [r[:3] for r in run(url, RAW_THEMES, ctx)]
    assert moved != before
    assert [r[:3] for r in run(url, themes, ctx)] != moved
    timeseries.maintain(url, make_settings(url))
    check_themes(url, ctx)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM mebuku.trial_device_changes").fetchone() == (0,)


def test_device_changes_are_rematerialized_on_plain_postgresql(
    fleet: tuple[str, datetime, datetime],
) -> None:
    url, start, _ = fleet
    check_device_change(url, start)


@pytest.mark.timescale
def test_rollup_panels_match_raw_queries_on_timescaledb(timescale_url: str) -> None:
    migrator.migrate(timescale_url, make_settings(timescale_url))
    # The summaries' job (0440) is run by hand below: scheduled, it could summarize a
    # stretch while the fleet is still being loaded into it.
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        (job,) = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_schema = 'mebuku' AND proc_name = 'ebpm_fiveg_summary_job'"
        ).fetchall()
        conn.execute("SELECT alter_job(%s, scheduled => false)", [job[0]])
    url, start, end = _load_fleet(timescale_url)
    with psycopg.connect(url) as conn:
        assert has_timescale(conn)
    assert check_panels(url, start, end, timescale=True) == 3 * 11 + 4 + 10
    check_ebpm_periods(url, start, end)
    check_ebpm_summary(url, start, end)
    # The job refreshes the trial rollups and builds the summaries again.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM fiveg_trial_summary")
        conn.execute("CALL run_job(%s)", [job[0]])
        marks = conn.execute("SELECT upto > period_start FROM fiveg_trial_summary").fetchall()
    assert marks == [(True,)] * 3, marks
    with _every_kpi_targeted(url):
        check_ebpm(url)
    check_device_change(url, start)
