"""The 5G council's Grafana dashboard: scorecard, KPIs over time, coverage, themes.

The scorecard, series, themes, bands and data coverage read the rollups of fiveg/migrations/0002
(grafana.fiveg_radio_5m, grafana.fiveg_radio_hist_1h: whole 5-minute buckets and hours;
percentiles within one histogram bin, as the API's ``source=rollup``); the other panels
read the raw samples of the selected trial's devices in the dashboard's time range
(``$__timeFilter``), with the same percentile definition as the API (``percentile_cont``).
The scorecard shows each target as "% of target" so one set of thresholds (red below
100 %, green from 100 %) fits every trial's own targets.
"""

from __future__ import annotations

from typing import Any

from core.grafana import dashboard, panel, query_variable, sql_target
from fiveg.targets import KPIS, KpiInfo

DEVICES = "SELECT device_id FROM grafana.fiveg_trial_devices WHERE trial_id = '${trial}'"
IN_TRIAL = f"$__timeFilter(ts) AND device_id IN ({DEVICES})"
# The same devices in the 5-minute rollup (fiveg/migrations/0002, grafana.fiveg_radio_5m).
IN_TRIAL_5M = f"$__timeFilter(bucket) AND device_id IN ({DEVICES})"


IN_TRIAL_1H = f"$__timeFilter(bucket) AND device_id IN ({DEVICES})"
# (sum, count) columns of grafana.fiveg_radio_5m per fiveg_radio column.
_SUMS = {c: (f"sum_{s}", f"n_{s}") for c, s in (
    ("dl_mbps", "dl"), ("ul_mbps", "ul"), ("rtt_ms", "rtt"), ("jitter_ms", "jitter"),
    ("loss_pct", "loss"),
)}  # fmt: skip


def _kpi_expr(name: str, k: KpiInfo) -> str:
    """The SQL of one catalogue KPI from the rollups (same definitions as the API's
    ``source=rollup``): means from the 5-minute sums ``m``, percentiles and the share
    under the latency bound from the hourly log histograms ``h`` (fiveg/histogram.py:
    the rank's bin, placed by rank inside it; within one bin, 5.9 %)."""
    if k.stat == "mean":
        total, count = _SUMS[k.column]
        return f"(SELECT sum({total}) / nullif(sum({count}), 0) FROM m)"
    if k.stat == "percentile":
        # percentile_cont's rank r: between the order statistics floor(r) and ceil(r),
        # each placed by rank inside its bin (fiveg.histogram.percentiles).
        def order_stat(i: str) -> str:
            return (
                f"(SELECT lo + (hi - lo) * ({i} - (cum - n) + 0.5) / n FROM h\n"
                f"      WHERE metric = '{k.column}' AND cum > {i} ORDER BY bin LIMIT 1)"
            )

        return (
            f"(SELECT a + (r - floor(r)) * (b - a) FROM (SELECT r, {order_stat('floor(r)')} AS a,\n"
            f"    {order_stat('ceil(r)')} AS b\n"
            f"    FROM (SELECT {k.q:g} * (max(total) - 1) AS r FROM h\n"
            f"          WHERE metric = '{k.column}') t) x)"
        )
    bound = "(SELECT latency_bound_ms FROM grafana.fiveg_trials WHERE trial_id = '${trial}')"
    return (
        f"(SELECT 100.0 * sum(CASE WHEN hi <= {bound} THEN n WHEN lo < {bound}\n"
        f"    THEN n * ({bound} - lo) / (hi - lo) ELSE 0 END) / nullif(sum(n), 0)\n"
        f"    FROM h WHERE metric = '{k.column}')"
    )


# Every KPI of the catalogue (fiveg.targets.KPIS) for the selected trial over the time
# range, as one jsonb object, from the rollups (whole 5-minute buckets and hours).
_KPI_PAIRS = ",\n".join(f"  '{name}', {_kpi_expr(name, k)}" for name, k in KPIS.items())
KPI_JSON = f"""
WITH m AS (SELECT * FROM grafana.fiveg_radio_5m WHERE {IN_TRIAL_5M}),
h AS (
  SELECT metric, bin, lo, hi, n, sum(n) OVER (PARTITION BY metric ORDER BY bin) AS cum,
         sum(n) OVER (PARTITION BY metric) AS total
  FROM (SELECT metric, bin, lo, hi, sum(n) AS n FROM grafana.fiveg_radio_hist_1h
        WHERE {IN_TRIAL_1H} AND bin IS NOT NULL GROUP BY 1, 2, 3, 4) b
)
SELECT jsonb_build_object(
{_KPI_PAIRS}
) AS k
"""

SCORE = f"""
WITH s AS ({KPI_JSON})
SELECT t.label || ' ' || t.op || ' ' || t.value || ' ' || t.unit AS metric,
       CASE WHEN t.op = '>=' THEN 100 * (s.k ->> t.kpi)::float8 / nullif(t.value, 0)
            ELSE 100 * t.value / nullif((s.k ->> t.kpi)::float8, 0) END AS "% of target"
FROM grafana.fiveg_trial_targets t CROSS JOIN s
WHERE t.trial_id = '${{trial}}' AND NOT t.reference
ORDER BY t.kpi
"""

MEASURED = f"""
WITH s AS ({KPI_JSON})
SELECT t.label AS "KPI", t.op || ' ' || t.value || ' ' || t.unit AS "target",
       round((s.k ->> t.kpi)::numeric, 2) AS "measured",
       CASE WHEN (s.k ->> t.kpi) IS NULL THEN 'no data'
            WHEN t.op = '>=' AND (s.k ->> t.kpi)::float8 >= t.value THEN 'PASS'
            WHEN t.op = '<=' AND (s.k ->> t.kpi)::float8 <= t.value THEN 'PASS'
            ELSE 'FAIL' END || CASE WHEN t.reference THEN ' (ref.)' ELSE '' END AS "result",
       t.source AS "source"
FROM grafana.fiveg_trial_targets t CROSS JOIN s
WHERE t.trial_id = '${{trial}}'
ORDER BY t.reference, t.kpi
"""

COVERAGE_PCT = f"""
SELECT 100.0 * count(DISTINCT bucket) * 300
       / greatest(extract(epoch FROM $__timeTo()::timestamptz - $__timeFrom()::timestamptz), 1)
       AS "data coverage"
FROM grafana.fiveg_radio_5m WHERE {IN_TRIAL_5M} AND n > 0
"""


# Every hour the range touches (the first one too, whole), so a series has no gap at its start.
HOURS_TOUCHED = (
    "bucket > $__timeFrom()::timestamptz - interval '1 hour'"
    f" AND bucket <= $__timeTo()::timestamptz AND device_id IN ({DEVICES})"
)


def _percentile_series(metrics: str, quantiles: str) -> str:
    """Per ``$__interval`` (at least an hour: the panel's minimum interval), metric and
    quantile q, the estimate from the hourly histograms (the rank's bin, placed by rank
    inside it; within one bin, 5.9 %): rows (time, metric, q, value)."""
    return f"""
  SELECT time, metric, q, min(lo + (hi - lo) * (r - (cum - n) + 0.5) / n)
           FILTER (WHERE cum > r AND cum - n <= r) AS value
  FROM (SELECT time, metric, bin, lo, hi, n, q.q,
               sum(n) OVER (PARTITION BY time, metric, q.q ORDER BY bin) AS cum,
               q.q * (sum(n) OVER (PARTITION BY time, metric, q.q) - 1) AS r
        FROM (SELECT $__timeGroupAlias(bucket, $__interval), metric, bin, lo, hi, sum(n) AS n
              FROM grafana.fiveg_radio_hist_1h
              WHERE {HOURS_TOUCHED} AND bin IS NOT NULL AND metric IN ({metrics})
              GROUP BY 1, 2, 3, 4, 5) h
        CROSS JOIN (VALUES {quantiles}) q(q)) c
  GROUP BY 1, 2, 3"""


THROUGHPUT = f"""
WITH p AS ({_percentile_series("'ul_mbps', 'dl_mbps'", "(0.05)")}),
m AS (
  SELECT $__timeGroupAlias(bucket, $__interval), sum(sum_ul) / nullif(sum(n_ul), 0) AS ul,
         sum(sum_dl) / nullif(sum(n_dl), 0) AS dl
  FROM grafana.fiveg_radio_5m WHERE {IN_TRIAL_5M} GROUP BY 1
)
SELECT m.time, max(p.value) FILTER (WHERE p.metric = 'ul_mbps') AS "UL p5",
       max(m.ul) AS "UL mean",
       max(p.value) FILTER (WHERE p.metric = 'dl_mbps') AS "DL p5",
       max(m.dl) AS "DL mean"
FROM m LEFT JOIN p ON p.time = m.time
GROUP BY 1 ORDER BY 1
"""

RTT = f"""
SELECT time, max(value) FILTER (WHERE q = 0.5) AS "RTT p50",
       max(value) FILTER (WHERE q = 0.95) AS "RTT p95",
       max(value) FILTER (WHERE q = 0.99) AS "RTT p99"
FROM ({_percentile_series("'rtt_ms'", "(0.5), (0.95), (0.99)")}) p
GROUP BY 1 ORDER BY 1
"""

# Geomap: ~50 m cells on a degree grid (0.00045 deg lat x 0.00056 deg lon at 36.4 N); the
# API's /coverage gives exact 50 m EPSG:6677 cells. Sparse cells keep a null RSRP (grey).
COVERAGE_MAP = f"""
SELECT (floor(lat / 0.00045) + 0.5) * 0.00045 AS latitude,
       (floor(lon / 0.00056) + 0.5) * 0.00056 AS longitude,
       count(*) AS samples,
       CASE WHEN count(*) >= 10
            THEN percentile_cont(0.5) WITHIN GROUP (ORDER BY rsrp_dbm) END AS "median RSRP",
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ul_mbps) AS "median UL"
FROM grafana.fiveg_radio WHERE {IN_TRIAL} AND lat IS NOT NULL AND lon IS NOT NULL
GROUP BY 1, 2
"""

# Band counts per device and 5 minutes (every sample with an RSRP is in one band).
BANDS = f"""
SELECT 100.0 * sum(rsrp_excellent) / nullif(sum(n_rsrp), 0) AS "excellent",
       100.0 * sum(rsrp_good) / nullif(sum(n_rsrp), 0) AS "good",
       100.0 * sum(rsrp_fair) / nullif(sum(n_rsrp), 0) AS "fair",
       100.0 * sum(rsrp_poor) / nullif(sum(n_rsrp), 0) AS "poor"
FROM (SELECT *, rsrp_excellent + rsrp_good + rsrp_fair + rsrp_poor AS n_rsrp
      FROM grafana.fiveg_radio_5m WHERE {IN_TRIAL_5M}) r
"""

# Per trial over its devices and whole hours of the range within its period, from the
# hourly histograms (the rank's bin, placed by rank inside it; within one bin, 5.9 %).
THEMES = """
WITH h AS (
  SELECT t.theme, t.trial_id, r.metric, r.bin, r.lo, r.hi, sum(r.n) AS n
  FROM grafana.fiveg_trials t
  JOIN grafana.fiveg_trial_devices d ON d.trial_id = t.trial_id
  JOIN grafana.fiveg_radio_hist_1h r ON r.device_id = d.device_id AND $__timeFilter(r.bucket)
       AND r.bucket >= t.period_start AND r.bucket < t.period_end
  GROUP BY 1, 2, 3, 4, 5, 6
), c AS (
  SELECT *, sum(n) OVER (PARTITION BY trial_id, metric ORDER BY bin) AS cum,
         CASE metric WHEN 'rtt_ms' THEN 0.95 ELSE 0.05 END
           * (sum(n) FILTER (WHERE bin IS NOT NULL) OVER (PARTITION BY trial_id, metric) - 1)
           AS r,
         sum(n) OVER (PARTITION BY trial_id, metric) AS samples
  FROM h
), q AS (
  SELECT theme, trial_id, metric, max(samples) AS samples,
         min(lo + (hi - lo) * (r - (cum - n) + 0.5) / n)
           FILTER (WHERE bin IS NOT NULL AND cum > r AND cum - n <= r) AS value
  FROM c GROUP BY 1, 2, 3
)
SELECT theme AS "theme", trial_id AS "trial", max(samples) AS "samples",
       max(value) FILTER (WHERE metric = 'ul_mbps') AS "UL p5 (Mbit/s)",
       max(value) FILTER (WHERE metric = 'dl_mbps') AS "DL p5 (Mbit/s)",
       max(value) FILTER (WHERE metric = 'rtt_ms') AS "RTT p95 (ms)"
FROM q
GROUP BY 1, 2 ORDER BY 1, 2
"""

SENSORS = f"""
SELECT DISTINCT ON (device_id, name) device_id AS "sensor", name, ts AS "latest",
       coalesce(value::text, value_string, value_bool::text, value_data) AS "value", unit
FROM grafana.fiveg_sensor WHERE {IN_TRIAL}
ORDER BY device_id, name, ts DESC
"""

# Heartbeats (maebashi/5g/{site}/{device}/status, about one a minute per device): the share
# of heartbeats saying "ok" is the share of device-time the trial's devices were available.
# A device that went silent sends nothing; the table below shows how long it has been.
AVAILABILITY = f"""
SELECT $__timeGroupAlias(ts, $__interval),
       (100.0 * count(*) FILTER (WHERE status = 'ok') / count(*))::float8 AS "available"
FROM grafana.fiveg_device_status WHERE {IN_TRIAL}
GROUP BY 1 ORDER BY 1
"""

DEVICE_STATUS = f"""
SELECT DISTINCT ON (device_id) device_id AS "device", site_id AS "site", ts AS "last heartbeat",
       extract(epoch FROM now() - ts)::float8 AS "silent for (s)", status,
       battery_pct AS "battery (%)", firmware
FROM grafana.fiveg_device_status WHERE {IN_TRIAL}
ORDER BY device_id, ts DESC
"""

PCT_THRESHOLDS: list[tuple[float | None, str]] = [(None, "red"), (100, "green")]


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    trial = query_variable(
        "trial",
        "SELECT trial_id FROM grafana.fiveg_trials ORDER BY period_start DESC, trial_id",
        label="Trial",
        multi=False,
        include_all=False,
    )
    panels = [
        panel(
            "stat",
            "Scorecard: % of target (100 % = met)",
            [sql_target(SCORE, "table")],
            grid=(0, 0, 16, 6),
            unit="percent",
            thresholds=PCT_THRESHOLDS,
            description="Each non-reference target of the trial over the time range; "
            "for '<=' targets the ratio is target / measured.",
            options={
                "reduceOptions": {"values": True, "calcs": [], "fields": "/% of target/"},
                "colorMode": "background",
                "textMode": "value_and_name",
            },
        ),
        panel(
            "stat",
            "Data coverage (5-minute buckets with samples)",
            [sql_target(COVERAGE_PCT, "table")],
            grid=(16, 0, 8, 6),
            unit="percent",
            thresholds=[(None, "red"), (90, "orange"), (99, "green")],
            options={"reduceOptions": {"values": False, "calcs": ["lastNotNull"]}},
        ),
        panel(
            "table",
            "Targets, measured values and sources",
            [sql_target(MEASURED, "table")],
            grid=(0, 6, 24, 6),
        ),
        panel(
            "timeseries",
            "Throughput (5th percentile = user-experienced rate)",
            [sql_target(THROUGHPUT)],
            grid=(0, 12, 12, 8),
            unit="Mbits",
        ),
        panel("timeseries", "Round-trip time", [sql_target(RTT)], grid=(12, 12, 12, 8), unit="ms"),
        panel(
            "geomap",
            "Coverage: median RSRP per ~50 m cell (grey: under 10 samples)",
            [sql_target(COVERAGE_MAP, "table")],
            grid=(0, 20, 12, 10),
            unit="dBm",
            thresholds=[(None, "#d73027"), (-100, "#fee08b"), (-90, "#91cf60"), (-80, "#1a9850")],
            options={
                "view": {"id": "coords", "lat": 36.389, "lon": 139.063, "zoom": 13},
                "layers": [
                    {
                        "type": "markers",
                        "name": "cells",
                        "location": {
                            "mode": "coords",
                            "latitude": "latitude",
                            "longitude": "longitude",
                        },
                        "config": {
                            "style": {
                                "color": {"field": "median RSRP", "fixed": "#bbbbbb"},
                                "size": {"fixed": 6},
                            }
                        },
                    }
                ],
            },
        ),
        panel(
            "bargauge",
            "RSRP quality bands (% of samples)",
            [sql_target(BANDS, "table")],
            grid=(12, 20, 12, 10),
            unit="percent",
            options={"orientation": "horizontal", "displayMode": "basic"},
        ),
        panel(
            "table",
            "Themes compared (samples in range, within each trial's period)",
            [sql_target(THEMES, "table")],
            grid=(0, 30, 16, 8),
        ),
        panel(
            "table",
            "Field sensors (SenML): latest",
            [sql_target(SENSORS, "table")],
            grid=(16, 30, 8, 8),
        ),
        panel(
            "timeseries",
            "Device availability (% of heartbeats reporting ok)",
            [sql_target(AVAILABILITY)],
            grid=(0, 38, 16, 8),
            unit="percent",
            thresholds=[(None, "red"), (90, "orange"), (99, "green")],
            description="Share of the trial devices' heartbeats (about one a minute each) "
            "that reported ok: degraded and fault count as unavailable. A silent device sends "
            "nothing: see 'silent for' in the table.",
        ),
        panel(
            "table",
            "Devices: latest heartbeat",
            [sql_target(DEVICE_STATUS, "table")],
            grid=(16, 38, 8, 8),
        ),
    ]
    return [
        (
            "council",
            dashboard(
                "fiveg-council",
                "Local 5G trials (council)",
                panels,
                tags=["fiveg", "council"],
                description="Maebashi local-5G trials against their targets (docs/fiveg-kpis.md)",
                variables=[trial],
                time_from="now-6h",
                refresh="1m",
            ),
        )
    ]
