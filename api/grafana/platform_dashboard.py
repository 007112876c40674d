"""The city's platform overview: is data flowing, how late, what is rejected."""

from __future__ import annotations

from typing import Any

from core.grafana import API_DATASOURCE, dashboard, panel, query_variable, sql_target
from ingest.streams import TABLES

# Every table of the stream catalogue, from its per-minute rollup (core/migrations/0300).
_UNION = "\n  UNION ALL ".join(
    f"SELECT bucket AS ts, n FROM grafana.{t}_commits_1m WHERE $__timeFilter(bucket)"
    for t in TABLES
)
_MESSAGES = f"""
SELECT $__timeGroupAlias(ts, $__interval), sum(n)::float8 AS "messages"
FROM (
  {_UNION}
) m
GROUP BY 1
ORDER BY 1
"""

# The whole fleet, from the lag histogram (core/migrations/0300): p95 is the first bin
# whose running count reaches 95 % (within 2.9 %), the mean is exact.
_LAG = """
SELECT time, min(lag_s) FILTER (WHERE cum >= 0.95 * total) AS "p95 lag",
  (max(lag_sum) / nullif(max(total), 0))::float8 AS "mean lag"
FROM (
  SELECT time, lag_s, sum(n) OVER (PARTITION BY time ORDER BY lag_s) AS cum,
    sum(n) OVER (PARTITION BY time) AS total, sum(lag_sum) OVER (PARTITION BY time) AS lag_sum
  FROM (SELECT $__timeGroupAlias(bucket, $__interval), lag_s, sum(n) AS n,
          sum(sum_lag_s) AS lag_sum
        FROM grafana.bus_telemetry_lag_1m WHERE $__timeFilter(bucket) GROUP BY 1, 2) h
) c
GROUP BY time
ORDER BY time
"""

_PER_VEHICLE = """
SELECT $__timeGroupAlias(bucket, $__interval), vehicle_id AS metric, sum(n)::float8 AS "messages"
FROM grafana.bus_telemetry_1m
WHERE $__timeFilter(bucket) AND vehicle_id IN ($vehicle)
GROUP BY 1, 2
ORDER BY 1
"""

_REJECTS = """
SELECT count(*)::float8 AS "rejected"
FROM grafana.ingest_rejects
WHERE $__timeFilter(received_at)
"""

_REJECT_REASONS = """
SELECT reason, topic, count(*) AS messages, max(received_at) AS last_seen
FROM grafana.ingest_rejects
WHERE $__timeFilter(received_at)
GROUP BY reason, topic
ORDER BY messages DESC
LIMIT 50
"""

_VEHICLES = """
SELECT DISTINCT vehicle_id FROM grafana.bus_telemetry_1m WHERE $__timeFilter(bucket) ORDER BY 1
"""


def api_target(series: str, ref_id: str = "A") -> dict[str, Any]:
    return {"refId": ref_id, "datasource": API_DATASOURCE, "target": series, "type": "timeserie"}


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    panels = [
        panel(
            "timeseries",
            "Messages stored",
            [sql_target(_MESSAGES)],
            grid=(0, 0, 12, 8),
            unit="short",
            description="Messages of every stream stored per interval.",
        ),
        panel(
            "timeseries",
            "Ingest lag (bus telemetry)",
            [sql_target(_LAG)],
            grid=(12, 0, 12, 8),
            unit="s",
            description="Seconds from measurement on the bus to storage.",
            thresholds=[(None, "green"), (5, "orange"), (30, "red")],
        ),
        panel(
            "stat",
            "Rejected messages",
            [sql_target(_REJECTS, fmt="table")],
            grid=(0, 8, 6, 6),
            unit="short",
            description="Malformed messages kept in ingest_rejects (nothing is lost).",
            thresholds=[(None, "green"), (1, "orange")],
        ),
        panel(
            "timeseries",
            "Ingest lag, all devices (API)",
            [api_target("ingest.lag_seconds")],
            grid=(6, 8, 18, 6),
            unit="s",
            description="Computed by the API (JSON data source) over every device type.",
        ),
        panel(
            "timeseries",
            "Telemetry per vehicle",
            [sql_target(_PER_VEHICLE)],
            grid=(0, 14, 12, 8),
            unit="short",
        ),
        panel(
            "table",
            "Rejects by reason",
            [sql_target(_REJECT_REASONS, fmt="table")],
            grid=(12, 14, 12, 8),
        ),
    ]
    return [
        (
            "city",
            dashboard(
                "mebuku-platform",
                "Mebuku platform: data flow",
                panels,
                tags=["mebuku", "platform", "ingest"],
                description="Is data arriving from buses and 5G devices, how late, and what "
                "is rejected.",
                variables=[query_variable("vehicle", _VEHICLES, label="Vehicle")],
            ),
        )
    ]
