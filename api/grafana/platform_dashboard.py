"""The city's platform overview: is data flowing, how late, what is rejected."""

from __future__ import annotations

from typing import Any

from core.grafana import (
    API_DATASOURCE,
    Gettext,
    axis_label,
    dashboard,
    names,
    panel,
    query_variable,
    sql_target,
    unit_for,
)
from core.i18n import DEFAULT_LANG, Lang, gettext_for
from ingest.dashboard import LONG_RANGE, reason_label
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
# whose running count reaches 95 % (within 2.9 %), the mean is exact. Ranges over 6 hours
# read the hourly histogram (core/migrations/0302), a point an hour.
_LAG = f"""
SELECT time, min(lag_s) FILTER (WHERE cum >= 0.95 * total) AS "p95 lag",
  (max(lag_sum) / nullif(max(total), 0))::float8 AS "mean lag"
FROM (
  SELECT time, lag_s, sum(n) OVER (PARTITION BY time ORDER BY lag_s) AS cum,
    sum(n) OVER (PARTITION BY time) AS total, sum(lag_sum) OVER (PARTITION BY time) AS lag_sum
  FROM (SELECT $__timeGroupAlias(bucket, $__interval), lag_s, sum(n) AS n,
          sum(sum_lag_s) AS lag_sum
        FROM grafana.bus_telemetry_lag_1m WHERE $__timeFilter(bucket) AND NOT ({LONG_RANGE})
        GROUP BY 1, 2
        UNION ALL
        SELECT $__timeGroupAlias(bucket, 1h), lag_s, sum(n) AS n,
          sum(sum_lag_s) AS lag_sum
        FROM grafana.bus_telemetry_lag_hourly WHERE $__timeFilter(bucket) AND {LONG_RANGE}
        GROUP BY 1, 2) h
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
SELECT {reason} AS reason, reason AS "reason (detail)", topic, count(*) AS messages,
       max(received_at) AS last_seen
FROM grafana.ingest_rejects
WHERE $__timeFilter(received_at)
GROUP BY ingest_rejects.reason, topic
ORDER BY messages DESC
LIMIT 50
"""

_VEHICLES = """
SELECT DISTINCT vehicle_id FROM grafana.bus_telemetry_1m WHERE $__timeFilter(bucket) ORDER BY 1
"""


def api_target(series: str, ref_id: str = "A") -> dict[str, Any]:
    """A query of the API's JSON data source: series the API computes over all device types."""
    return {"refId": ref_id, "datasource": API_DATASOURCE, "target": series, "type": "timeserie"}


def platform_dashboard(lang: Lang = DEFAULT_LANG) -> dict[str, Any]:
    """The platform overview in ``lang``: city staff see at a glance whether data flows."""
    _ = gettext_for(lang)
    sec = unit_for("s", lang)
    stored, lag = _flow_panels(_, sec)
    rejected, reasons = _reject_panels(_)
    panels = [
        stored,
        lag,
        rejected,
        axis_label(
            panel(
                "timeseries",
                _("Ingest lag, all devices (API)"),
                [api_target("ingest.lag_seconds")],
                grid=(6, 8, 18, 6),
                unit=sec,
                description=_("Computed by the API (JSON data source) over every device type."),
            ),
            _("Lag"),
        ),
        axis_label(
            panel(
                "timeseries",
                _("Telemetry per vehicle"),
                [sql_target(_PER_VEHICLE)],
                grid=(0, 14, 12, 8),
                unit="short",
            ),
            _("Reports"),
        ),
        reasons,
    ]
    return dashboard(
        "mebuku-platform",
        _("Mebuku platform: data flow"),
        panels,
        tags=["mebuku", "platform", "ingest"],
        description=_(
            "Is data arriving from buses and 5G devices, how late, and what is rejected."
        ),
        variables=[query_variable("vehicle", _VEHICLES, label=_("Vehicle"))],
    )


def _flow_panels(_: Gettext, sec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Messages stored and their lag: data that arrives late is as bad as none for the map."""
    stored = names(
        axis_label(
            panel(
                "timeseries",
                _("Messages stored"),
                [sql_target(_MESSAGES)],
                grid=(0, 0, 12, 8),
                unit="short",
                description=_("Messages of every stream stored per interval."),
            ),
            _("Messages"),
        ),
        {"messages": _("Messages")},
    )
    lag = names(
        axis_label(
            panel(
                "timeseries",
                _("Ingest lag (bus telemetry)"),
                [sql_target(_LAG)],
                grid=(12, 0, 12, 8),
                unit=sec,
                description=_("Seconds from measurement on the bus to storage."),
                thresholds=[(None, "green"), (5, "orange"), (30, "red")],
            ),
            _("Lag"),
        ),
        {"p95 lag": _("95th percentile"), "mean lag": _("Mean")},
    )
    return stored, lag


def _reject_panels(_: Gettext) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dead-letter count and its reasons in words: nothing is lost, and why it failed."""
    reasons = _REJECT_REASONS.replace("{reason}", reason_label("split_part(reason, ':', 1)", _))
    count = names(
        panel(
            "stat",
            _("Rejected messages"),
            [sql_target(_REJECTS, fmt="table")],
            grid=(0, 8, 6, 6),
            unit="short",
            description=_("Malformed messages kept in the dead letter (nothing is lost)."),
            thresholds=[(None, "green"), (1, "orange")],
        ),
        {"rejected": _("Rejected messages")},
    )
    by_reason = names(
        panel(
            "table",
            _("Rejects by reason"),
            [sql_target(reasons, fmt="table")],
            grid=(12, 14, 12, 8),
        ),
        {
            "reason": _("Reason"),
            "reason (detail)": _("Reason (detail)"),
            "topic": _("Topic"),
            "messages": _("Messages"),
            "last_seen": _("Last seen"),
        },
    )
    return count, by_reason


def dashboards(lang: Lang = DEFAULT_LANG) -> list[tuple[str, dict[str, Any]]]:
    """(folder, dashboard) pairs that ``mebuku grafana build`` finds via ``mebuku.dashboards``."""
    return [("city", platform_dashboard(lang))]
