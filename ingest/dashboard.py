"""The "Ingest health" dashboard (folder operators): throughput, rejects, lag, freshness.

Every query filters on the time column that carries the BRIN index / hypertable chunks
(``ts``, or ``received_at`` for the small dead-letter table); the stream panels read the
per-minute rollups (core/migrations/0300, ``bucket`` = minute of ``ts``), not raw rows.
"""

from __future__ import annotations

from typing import Any

from core.grafana import dashboard, panel, sql_target
from ingest.streams import STREAMS

# One series per stream of the catalogue (label, table).
_STREAMS = tuple((s.table.name, s.name) for s in STREAMS)


def _rows_per_minute() -> str:
    parts = [
        f"SELECT $__timeGroupAlias(committed, '1m'), '{label}' AS metric, sum(n) AS value "
        f"FROM grafana.{table}_commits_1m WHERE $__timeFilter(bucket) AND $__timeFilter(committed)"
        " GROUP BY 1"
        for table, label in _STREAMS
    ]
    return "SELECT * FROM (\n" + "\nUNION ALL\n".join(parts) + "\n) q ORDER BY 1, 2"


REJECTS_BY_REASON = """
SELECT $__timeGroupAlias(received_at, '5m'), split_part(reason, ':', 1) AS metric,
       count(*) AS value
FROM grafana.ingest_rejects
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1, 2
"""

# Percentiles from the lag histogram (core/migrations/0300): the first bin whose running
# count reaches the share, within 2.9 % of the exact value.
LAG = """
SELECT time, min(lag_s) FILTER (WHERE cum >= 0.5 * total) AS "p50",
       min(lag_s) FILTER (WHERE cum >= 0.95 * total) AS "p95"
FROM (
    SELECT time, lag_s, sum(n) OVER (PARTITION BY time ORDER BY lag_s) AS cum,
           sum(n) OVER (PARTITION BY time) AS total
    FROM (SELECT $__timeGroupAlias(committed, '1m'), lag_s, sum(n) AS n
          FROM grafana.bus_telemetry_lag_1m
          WHERE $__timeFilter(bucket) AND $__timeFilter(committed)
          GROUP BY 1, 2) h
) c
GROUP BY time
ORDER BY time
"""


def _reject_share() -> str:
    """Dead letters over all messages: every stream's rows plus the dead letters."""
    rejects = "(SELECT count(*) FROM grafana.ingest_rejects WHERE $__timeFilter(received_at))"
    counts = [
        f"(SELECT coalesce(sum(n), 0) FROM grafana.{table}_commits_1m WHERE $__timeFilter(bucket))"
        for table, _ in _STREAMS
    ]
    total = "\n                   + ".join([*counts, rejects])
    return f"""
SELECT {rejects}::float8
       / greatest(1, {total})
       AS "reject share"
"""


FRESHNESS = """
SELECT vehicle_id AS "vehicle",
       max(last_ts) AS "last report",
       extract(epoch FROM now() - max(last_ts)) AS "silent for (s)",
       sum(n) AS "reports"
FROM grafana.bus_telemetry_1m
WHERE $__timeFilter(bucket)
GROUP BY vehicle_id
ORDER BY 3 DESC
"""

LATEST_REJECTS = """
SELECT received_at AS "time", topic, reason,
       left(convert_from(payload, 'UTF8'), 120) AS "payload (start)"
FROM grafana.ingest_rejects
WHERE $__timeFilter(received_at) AND octet_length(payload) > 0
  AND position('\\x00'::bytea IN payload) = 0
ORDER BY received_at DESC
LIMIT 50
"""

# One row per ingest worker from its heartbeat (ingest/worker.py). Same rule as the API's
# /readyz: stalled when the worker says so, silent when the heartbeat is older than its
# stall window plus 10 s. Also the alert rule's query (grafana/provisioning/alerting).
WORKERS = """
SELECT worker_id AS "worker",
       CASE WHEN stalled THEN 'STALLED'
            WHEN now() - updated_at > make_interval(secs => stall_seconds + 10) THEN 'SILENT'
            ELSE 'ok' END AS "state",
       oldest_unacked_s AS "oldest unacked (s)",
       waiting AS "waiting",
       extract(epoch FROM now() - last_commit_at) AS "since last commit (s)",
       extract(epoch FROM now() - updated_at) AS "heartbeat age (s)",
       stall_seconds AS "stall window (s)",
       reason
FROM grafana.ingest_heartbeat
ORDER BY 2 DESC, 1
"""


def ingest_health() -> dict[str, Any]:
    panels = [
        panel(
            "timeseries",
            "Rows stored per minute",
            [sql_target(_rows_per_minute())],
            grid=(0, 0, 16, 8),
            unit="short",
            description="Rows committed per minute and stream (by commit time).",
        ),
        panel(
            "stat",
            "Reject share",
            [sql_target(_reject_share(), "table")],
            grid=(16, 0, 8, 8),
            unit="percentunit",
            thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
            description="Messages in the dead letter over all messages in the range.",
        ),
        panel(
            "timeseries",
            "Rejects by reason",
            [sql_target(REJECTS_BY_REASON)],
            grid=(0, 8, 12, 8),
            unit="short",
            description="Invalid messages kept in ingest_rejects, by reason code.",
            options={"legend": {"displayMode": "table", "placement": "right"}},
        ),
        panel(
            "timeseries",
            "Publish-to-commit lag (telemetry)",
            [sql_target(LAG)],
            grid=(12, 8, 12, 8),
            unit="s",
            thresholds=[(None, "green"), (1, "red")],
            description="received_at minus the device's ts: includes device clock error.",
        ),
        panel(
            "table",
            "Vehicle freshness",
            [sql_target(FRESHNESS, "table")],
            grid=(0, 16, 10, 9),
            description="Vehicles that stopped reporting rise to the top.",
        ),
        panel(
            "table",
            "Latest rejects",
            [sql_target(LATEST_REJECTS, "table")],
            grid=(10, 16, 14, 9),
        ),
        panel(
            "table",
            "Ingest workers: stall detection",
            [sql_target(WORKERS, "table")],
            grid=(0, 25, 24, 7),
            unit="s",
            thresholds=[(None, "green"), (60, "red")],
            description="Each worker's heartbeat: STALLED = messages waiting and nothing "
            "committed for the stall window (MEBUKU_INGEST_STALL_SECONDS) while the database "
            "answers; SILENT = no heartbeat (the worker died). Alert rule: ingest/README.md.",
        ),
    ]
    return dashboard(
        "mebuku-ingest-health",
        "Ingest health",
        panels,
        tags=["mebuku", "ingest", "operators"],
        description="MQTT ingest: rows per minute, rejects by reason, lag, vehicle freshness, "
        "stalled workers.",
        time_from="now-1h",
    )


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [("operators", ingest_health())]
