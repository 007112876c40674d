"""The 5G council's Grafana dashboard: scorecard, KPIs over time, coverage, themes.

The scorecard, series and themes read the trial-level histograms of fiveg/migrations/0003
(grafana.fiveg_trial_hist_1h: whole hours, the current one from 5-minute buckets; percentiles
within one histogram bin, as the API's ``source=rollup``), the means, bands and data
coverage the 5-minute rollup of 0002 (grafana.fiveg_radio_5m), the coverage map the trial's
cell rollups (core/roles/migrations/0420, medians within one bin); the other panels
read the raw samples of the selected trial's devices in the dashboard's time range
(``$__timeFilter``), with the same percentile definition as the API (``percentile_cont``).
The scorecard shows each target as "% of target" so one set of thresholds (red below
100 %, green from 100 %) fits every trial's own targets. Trials, devices, KPIs, themes and
target sources are shown by name (fiveg/labels.py, the same words as the council report);
the coverage map draws the API's 50 m EPSG:6677 cells.
"""

from __future__ import annotations

from typing import Any

from core.grafana import (
    Gettext,
    axis_label,
    dashboard,
    field_units,
    fill,
    hidden,
    names,
    panel,
    query_variable,
    sql_label,
    sql_target,
    sql_text,
    unit_for,
    value_texts,
)
from core.i18n import DEFAULT_LANG, N_, Lang, gettext_for
from fiveg.labels import (
    CITATIONS,
    COUNCIL_GOALS,
    COUNCIL_PREFIX,
    KPI_LABELS,
    THEME_LABELS,
    VERDICTS,
)
from fiveg.targets import KPIS, KpiInfo

DEVICES = "SELECT device_id FROM grafana.fiveg_trial_devices WHERE trial_id = '${trial}'"
IN_TRIAL = f"$__timeFilter(ts) AND device_id IN ({DEVICES})"
# The same devices in the 5-minute rollup (fiveg/migrations/0002, grafana.fiveg_radio_5m).
IN_TRIAL_5M = f"$__timeFilter(bucket) AND device_id IN ({DEVICES})"


# $__timeFilter(bucket) for the trial rollups, with the upper bound kept out of their live
# tail: pushed down there, both bounds become a range on time_bucket(time_bucket(ts)) that
# the planner estimates at one raw row, and TimescaleDB then joined each raw row of the tail
# to every trial device (0.7 s for three minutes of 200 devices). The lower bound alone
# leaves a sane estimate; the upper one is applied after (a volatile expression is not
# pushed down) and cuts the rolled-up rows.
IN_RANGE = (
    "bucket >= $__timeFrom()::timestamptz"
    " AND bucket <= $__timeTo()::timestamptz + 0 * random() * interval '1 s'"
)
# The trial's rows of the trial-level rollups (fiveg/migrations/0003, core/roles/migrations/0420).
IN_TRIAL_1H = f"{IN_RANGE} AND trial_id = '${{trial}}'"
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
  FROM (SELECT metric, bin, lo, hi, sum(n) AS n FROM grafana.fiveg_trial_hist_1h
        WHERE {IN_TRIAL_1H} AND bin IS NOT NULL GROUP BY 1, 2, 3, 4) b
)
SELECT jsonb_build_object(
{_KPI_PAIRS}
) AS k
"""

SCORE = f"""
WITH s AS ({KPI_JSON})
SELECT {{kpi}} || ' ' || {{target}} AS metric,
       CASE WHEN t.op = '>=' THEN 100 * (s.k ->> t.kpi)::float8 / nullif(t.value, 0)
            ELSE 100 * t.value / nullif((s.k ->> t.kpi)::float8, 0) END AS "% of target"
FROM grafana.fiveg_trial_targets t CROSS JOIN s
WHERE t.trial_id = '${{trial}}' AND NOT t.reference
ORDER BY t.kpi
"""

MEASURED = f"""
WITH s AS ({KPI_JSON})
SELECT {{kpi}} AS "KPI", {{target}} AS "target",
       round((s.k ->> t.kpi)::numeric, 2) AS "measured",
       CASE WHEN (s.k ->> t.kpi) IS NULL THEN 'insufficient-data'
            WHEN t.op = '>=' AND (s.k ->> t.kpi)::float8 >= t.value THEN 'pass'
            WHEN t.op = '<=' AND (s.k ->> t.kpi)::float8 <= t.value THEN 'pass'
            ELSE 'fail' END AS "result",
       CASE WHEN t.reference THEN {{reference}} ELSE {{own}} END AS "kind",
       {{source}} AS "source", t.kpi
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
    " AND bucket <= $__timeTo()::timestamptz + 0 * random() * interval '1 s'"
    " AND trial_id = '${trial}'"
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
              FROM grafana.fiveg_trial_hist_1h
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

# Geomap: the API's and the report's cells (fiveg/coverage.py): 50 m squares of EPSG:6677,
# drawn at their centres as squares, from the trial's cell rollups (core/roles/migrations/
# 0420): the hours that start in the range, the whole days of a range longer than a day from
# the daily rollup (the daily branch is cut off before it runs for shorter ranges). Each
# median is read from the cell's bins (1 dB for RSRP, 40 a decade for UL/DL) as
# percentile_cont would pick it, the order statistics placed by rank inside their bins:
# within one bin of the exact one. Cells under 10 samples keep a null RSRP (grey), as the
# API's `sufficient`.
COVERAGE_MIN_SAMPLES = 10
_LONG_RANGE = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '1 day'"
_FIRST_DAY = (
    "time_bucket('1 day', $__timeFrom()::timestamptz - interval '1 microsecond') + interval '1 day'"
)
_LAST_DAY = "time_bucket('1 day', $__timeTo()::timestamptz)"


def _order_stat(i: str) -> str:
    """Order statistic ``i`` of a cell's metric, placed by rank inside its bin."""
    return (
        f"min(lo + (hi - lo) * ({i} - (cum - n) + 0.5) / n)"
        f" FILTER (WHERE bin IS NOT NULL AND cum > {i} AND cum - n <= {i})"
    )


def _cell_median(metric: str) -> str:
    return f"max(a + (r - floor(r)) * (z - a)) FILTER (WHERE metric = '{metric}')"


COVERAGE_MAP = f"""
WITH b AS (
  SELECT cx, cy, metric, bin, sum(n) AS n FROM (
    SELECT cx, cy, metric, bin, n FROM grafana.fiveg_trial_cells_1d
    WHERE trial_id = '${{trial}}' AND {_LONG_RANGE}
      AND bucket >= {_FIRST_DAY} AND bucket < {_LAST_DAY}
    UNION ALL
    SELECT cx, cy, metric, bin, n FROM grafana.fiveg_trial_cells_1h
    WHERE trial_id = '${{trial}}' AND {IN_RANGE}
      AND (NOT ({_LONG_RANGE}) OR bucket < {_FIRST_DAY} OR bucket >= {_LAST_DAY})
  ) u
  GROUP BY 1, 2, 3, 4
), c AS (
  SELECT cx, cy, metric, bin, n, grafana.fiveg_cell_bin_lo(metric, bin) AS lo,
         grafana.fiveg_cell_bin_hi(metric, bin) AS hi, sum(n) OVER w AS cum,
         sum(n) OVER p AS samples,
         0.5 * (sum(n) FILTER (WHERE bin IS NOT NULL) OVER p - 1) AS r
  FROM b
  WINDOW p AS (PARTITION BY cx, cy, metric), w AS (p ORDER BY bin)
), m AS (
  SELECT cx, cy, metric, max(samples) AS samples, max(r) AS r,
         {_order_stat("floor(r)")} AS a, {_order_stat("ceil(r)")} AS z
  FROM c GROUP BY 1, 2, 3
), cells AS (
  SELECT cx, cy, max(samples) FILTER (WHERE metric = 'rsrp_dbm') AS samples,
         {_cell_median("rsrp_dbm")} AS rsrp, {_cell_median("ul_mbps")} AS ul,
         {_cell_median("dl_mbps")} AS dl
  FROM m GROUP BY 1, 2
)
SELECT ll[1] AS latitude, ll[2] AS longitude, c.samples,
       CASE WHEN c.samples >= {COVERAGE_MIN_SAMPLES} THEN c.rsrp END AS "median RSRP",
       c.ul AS "median UL", c.dl AS "median DL", c.cx || '_' || c.cy AS cell
FROM cells c
CROSS JOIN LATERAL grafana.fiveg_cell_centre(c.cx, c.cy) ll
ORDER BY c.cx, c.cy
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
  JOIN grafana.fiveg_trial_hist_1h r ON r.trial_id = t.trial_id
       AND r.bucket >= $__timeFrom()::timestamptz
       AND r.bucket <= $__timeTo()::timestamptz + 0 * random() * interval '1 s'
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
SELECT {theme} AS "theme", t.title AS "trial", max(q.samples) AS "samples",
       max(q.value) FILTER (WHERE q.metric = 'ul_mbps') AS "UL p5 (Mbit/s)",
       max(q.value) FILTER (WHERE q.metric = 'dl_mbps') AS "DL p5 (Mbit/s)",
       max(q.value) FILTER (WHERE q.metric = 'rtt_ms') AS "RTT p95 (ms)",
       t.trial_id
FROM q JOIN grafana.fiveg_trials t ON t.trial_id = q.trial_id
GROUP BY t.theme, t.title, t.trial_id ORDER BY t.theme, t.title
"""

SENSORS = f"""
SELECT DISTINCT ON (s.device_id, s.name)
       coalesce(nullif(d.label, ''), s.device_id) AS "sensor", s.name, s.ts AS "latest",
       coalesce(s.value::text, s.value_string, s.value_bool::text, s.value_data) AS "value",
       s.unit, s.device_id
FROM grafana.fiveg_sensor s
LEFT JOIN grafana.fiveg_trial_devices d ON d.device_id = s.device_id AND d.trial_id = '${{trial}}'
WHERE $__timeFilter(s.ts) AND s.device_id IN ({DEVICES})
ORDER BY s.device_id, s.name, s.ts DESC
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
SELECT DISTINCT ON (s.device_id)
       coalesce(nullif(d.label, ''), s.device_id) AS "device", s.site_id AS "site",
       s.ts AS "last heartbeat", extract(epoch FROM now() - s.ts)::float8 AS "silent for (s)",
       s.status, s.battery_pct AS "battery (%)", s.firmware, s.device_id
FROM grafana.fiveg_device_status s
LEFT JOIN grafana.fiveg_trial_devices d ON d.device_id = s.device_id AND d.trial_id = '${{trial}}'
WHERE $__timeFilter(s.ts) AND s.device_id IN ({DEVICES})
ORDER BY s.device_id, s.ts DESC
"""


PCT_THRESHOLDS: list[tuple[float | None, str]] = [(None, "red"), (100, "green")]
RSRP_COLOURS: list[tuple[float | None, str]] = [
    (None, "#d73027"),
    (-100, "#fee08b"),
    (-90, "#91cf60"),
    (-80, "#1a9850"),
]
STATUSES = {"ok": N_("OK"), "degraded": N_("Degraded"), "fault": N_("Fault")}


def _target_sql(_: Gettext) -> str:
    """A target as words: "25 Mbit/s 以上" / "at least 25 Mbit/s"."""
    more, less = sql_text(_("{value} {unit} or more")), sql_text(_("{value} {unit} or less"))
    return (
        f"replace(replace(CASE t.op WHEN '>=' THEN {more} ELSE {less} END,"
        " '{value}', t.value::text), '{unit}', t.unit)"
    )


def _source_sql(_: Gettext) -> str:
    """A target's source as a publication (the same rule as fiveg.labels.cite)."""
    whens = [
        f"WHEN t.source LIKE {sql_text(prefix + '%')}"
        f" OR split_part(t.source, ':', 1) LIKE {sql_text('%' + prefix + '%')}"
        f" THEN {sql_text(_(citation))}"
        for prefix, citation in CITATIONS
    ]
    agreed = sql_text(_("Maebashi local 5G council, agreed target: {goal}"))
    goal = f"trim(substr(t.source, {len(COUNCIL_PREFIX) + 1}))"
    goal_label = sql_label(goal, {k: _(v) for k, v in COUNCIL_GOALS.items()})
    whens.append(
        f"WHEN t.source LIKE {sql_text(COUNCIL_PREFIX + '%')}"
        f" THEN replace({agreed}, '{{goal}}', {goal_label})"
    )
    return "CASE " + " ".join(whens) + " ELSE t.source END"


def _target_parts(_: Gettext) -> dict[str, str]:
    kpi = sql_label("t.kpi", {k: _(KPI_LABELS.get(k, v.label)) for k, v in KPIS.items()}, "t.label")
    return {
        "kpi": kpi,
        "target": _target_sql(_),
        "source": _source_sql(_),
        "reference": sql_text(_("Reference value")),
        "own": sql_text(_("Trial target")),
    }


def _scorecard(_: Gettext) -> list[dict[str, Any]]:
    parts = _target_parts(_)
    score = panel(
        "stat",
        _("Scorecard: % of target (100 % = met)"),
        [sql_target(fill(SCORE, parts), "table")],
        grid=(0, 0, 16, 6),
        unit="percent",
        thresholds=PCT_THRESHOLDS,
        description=_(
            "Each target of the trial (not the reference values) over the time range; for "
            "targets of at most a value the ratio is target / measured."
        ),
        options={
            "reduceOptions": {"values": True, "calcs": [], "fields": "/% of target/"},
            "colorMode": "background",
            "textMode": "value_and_name",
        },
    )
    names(score, {"% of target": _("% of target")})
    measured = panel(
        "table",
        _("Targets, measured values and sources"),
        [sql_target(fill(MEASURED, parts), "table")],
        grid=(0, 6, 24, 6),
    )
    names(
        measured,
        {
            "KPI": _("KPI"),
            "target": _("Target"),
            "measured": _("Measured"),
            "result": _("Result"),
            "kind": _("Kind"),
            "source": _("Source"),
        },
    )
    value_texts(measured, "result", {k: _(v) for k, v in VERDICTS.items()})
    hidden(measured, ["kpi"])
    return [score, measured]


def _coverage_map(_: Gettext) -> dict[str, Any]:
    p = panel(
        "geomap",
        _("Coverage: median RSRP per 50 m cell (grey: under 10 samples)"),
        [sql_target(COVERAGE_MAP, "table")],
        grid=(0, 20, 12, 10),
        unit="dBm",
        thresholds=RSRP_COLOURS,
        description=_(
            "50 m cells of the plane rectangular coordinate system zone IX (EPSG:6677), the "
            "same cells as the API's coverage map and the council report."
        ),
        options={
            "view": {"id": "coords", "lat": 36.389, "lon": 139.063, "zoom": 14},
            "controls": {"showZoom": True, "mouseWheelZoom": True},
            "layers": [
                {
                    "type": "markers",
                    "name": _("50 m cells"),
                    "location": {
                        "mode": "coords",
                        "latitude": "latitude",
                        "longitude": "longitude",
                    },
                    "tooltip": True,
                    "config": {
                        "showLegend": True,
                        "style": {
                            "color": {"field": "median RSRP", "fixed": "#bbbbbb"},
                            "symbol": {"mode": "fixed", "fixed": "img/icons/marker/square.svg"},
                            "size": {"fixed": 7},
                            "opacity": 0.8,
                        },
                    },
                }
            ],
        },
    )
    names(
        p,
        {
            "latitude": _("Latitude (cell centre)"),
            "longitude": _("Longitude (cell centre)"),
            "samples": _("Samples"),
            "median RSRP": _("Median RSRP"),
            "median UL": _("Median uplink"),
            "median DL": _("Median downlink"),
            "cell": _("Cell"),
        },
    )
    return field_units(
        p,
        {
            "samples": "short",
            "median UL": "Mbits",
            "median DL": "Mbits",
            "latitude": "none",
            "longitude": "none",
        },
    )


def _device_panels(_: Gettext, lang: Lang) -> list[dict[str, Any]]:
    sensors = panel(
        "table",
        _("Field sensors (SenML): latest"),
        [sql_target(SENSORS, "table")],
        grid=(16, 30, 8, 8),
    )
    names(
        sensors,
        {
            "sensor": _("Device"),
            "name": _("Measurement"),
            "latest": _("Latest"),
            "value": _("Value"),
            "unit": _("Unit"),
        },
    )
    hidden(sensors, ["device_id"])
    status = panel(
        "table",
        _("Devices: latest heartbeat"),
        [sql_target(DEVICE_STATUS, "table")],
        grid=(16, 38, 8, 8),
    )
    names(
        status,
        {
            "device": _("Device"),
            "site": _("Site"),
            "last heartbeat": _("Last heartbeat"),
            "silent for (s)": _("Silent for"),
            "status": _("Status"),
            "battery (%)": _("Battery"),
            "firmware": _("Firmware"),
        },
    )
    field_units(status, {"silent for (s)": unit_for("s", lang), "battery (%)": "percent"})
    value_texts(status, "status", {k: _(v) for k, v in STATUSES.items()})
    hidden(status, ["device_id"])
    return [sensors, status]


def _radio_panels(_: Gettext) -> list[dict[str, Any]]:
    throughput = axis_label(
        panel(
            "timeseries",
            _("Throughput (5th percentile = user-experienced rate)"),
            [sql_target(THROUGHPUT)],
            grid=(0, 12, 12, 8),
            unit="Mbits",
        ),
        _("Throughput"),
    )
    names(
        throughput,
        {
            "UL p5": _("Uplink, 5th percentile"),
            "UL mean": _("Uplink, mean"),
            "DL p5": _("Downlink, 5th percentile"),
            "DL mean": _("Downlink, mean"),
        },
    )
    rtt = axis_label(
        panel(
            "timeseries", _("Round-trip delay"), [sql_target(RTT)], grid=(12, 12, 12, 8), unit="ms"
        ),
        _("Round-trip delay"),
    )
    names(
        rtt,
        {
            "RTT p50": _("Median"),
            "RTT p95": _("95th percentile"),
            "RTT p99": _("99th percentile"),
        },
    )
    bands = panel(
        "bargauge",
        _("RSRP quality bands (% of samples)"),
        [sql_target(BANDS, "table")],
        grid=(12, 20, 12, 10),
        unit="percent",
        options={"orientation": "horizontal", "displayMode": "basic"},
    )
    names(
        bands,
        {"excellent": _("Excellent"), "good": _("Good"), "fair": _("Fair"), "poor": _("Poor")},
    )
    return [throughput, rtt, bands]


def _themes(_: Gettext) -> dict[str, Any]:
    theme = sql_label("t.theme", {k: _(v) for k, v in THEME_LABELS.items()})
    p = panel(
        "table",
        _("Themes compared (samples in range, within each trial's period)"),
        [sql_target(fill(THEMES, {"theme": theme}), "table")],
        grid=(0, 30, 16, 8),
    )
    names(
        p,
        {
            "theme": _("Theme"),
            "trial": _("Trial"),
            "samples": _("Samples"),
            "UL p5 (Mbit/s)": _("Uplink, 5th percentile"),
            "DL p5 (Mbit/s)": _("Downlink, 5th percentile"),
            "RTT p95 (ms)": _("Round-trip delay, 95th percentile"),
        },
    )
    field_units(
        p,
        {"UL p5 (Mbit/s)": "Mbits", "DL p5 (Mbit/s)": "Mbits", "RTT p95 (ms)": "ms"},
    )
    return hidden(p, ["trial_id"])


def council_dashboard(lang: Lang = DEFAULT_LANG) -> dict[str, Any]:
    """The council's dashboard in ``lang``."""
    _ = gettext_for(lang)
    trial = query_variable(
        "trial",
        "SELECT title AS __text, trial_id AS __value FROM grafana.fiveg_trials"
        " ORDER BY period_start DESC, trial_id",
        label=_("Trial"),
        multi=False,
        include_all=False,
    )
    score, measured = _scorecard(_)
    throughput, rtt, bands = _radio_panels(_)
    sensors, status = _device_panels(_, lang)
    panels = [
        score,
        names(
            panel(
                "stat",
                _("Data coverage (5-minute intervals with samples)"),
                [sql_target(COVERAGE_PCT, "table")],
                grid=(16, 0, 8, 6),
                unit="percent",
                thresholds=[(None, "red"), (90, "orange"), (99, "green")],
                options={"reduceOptions": {"values": False, "calcs": ["lastNotNull"]}},
            ),
            {"data coverage": _("Data coverage")},
        ),
        measured,
        throughput,
        rtt,
        _coverage_map(_),
        bands,
        _themes(_),
        sensors,
        names(
            axis_label(
                panel(
                    "timeseries",
                    _("Device availability (% of heartbeats reporting ok)"),
                    [sql_target(AVAILABILITY)],
                    grid=(0, 38, 16, 8),
                    unit="percent",
                    thresholds=[(None, "red"), (90, "orange"), (99, "green")],
                    description=_(
                        "Share of the trial devices' heartbeats (about one a minute each) that "
                        "reported ok: degraded and fault count as unavailable. A silent device "
                        "sends nothing: see 'silent for' in the table."
                    ),
                ),
                _("Available"),
            ),
            {"available": _("Available")},
        ),
        status,
    ]
    return dashboard(
        "fiveg-council",
        _("Local 5G trials (council)"),
        panels,
        tags=["fiveg", "council"],
        description=_("Maebashi local 5G trials against their targets."),
        variables=[trial],
        time_from="now-6h",
        refresh="1m",
    )


def dashboards(lang: Lang = DEFAULT_LANG) -> list[tuple[str, dict[str, Any]]]:
    """The council's dashboards in ``lang`` (entry point ``mebuku.dashboards``)."""
    return [("council", council_dashboard(lang))]
