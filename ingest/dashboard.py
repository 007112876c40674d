"""The "Ingest health" dashboard (folder operators): throughput, rejects, lag, freshness.

Every query filters on the time column that carries the BRIN index / hypertable chunks
(``ts``, or ``received_at`` for the small dead-letter table); the stream panels read the
per-minute rollups (core/migrations/0300, ``bucket`` = minute of ``ts``), not raw rows.
"""

from __future__ import annotations

from typing import Any

from core.grafana import (
    Gettext,
    axis_label,
    dashboard,
    field_units,
    fill,
    names,
    panel,
    sql_label,
    sql_target,
    sql_text,
    unit_for,
    value_texts,
)
from core.i18n import DEFAULT_LANG, N_, Lang, gettext_for
from ingest.streams import STREAMS

# One series per stream of the catalogue (table, stream name).
_STREAMS = tuple((s.table.name, s.name) for s in STREAMS)

# What people call each stream, from the catalogue (a catalogue msgid each).
STREAM_TITLES: dict[str, str] = {s.name: s.title or s.name for s in STREAMS}

# Dead-letter reason codes (ingest/parse.py, ingest/parsers.py, ingest/worker.py).
REJECT_REASONS: dict[str, str] = {
    "bad_json": N_("Not valid JSON"),
    "bad_utf8": N_("Not valid UTF-8"),
    "bad_senml": N_("Not valid SenML"),
    "bad_text": N_("Unreadable text field"),
    "bad_timestamp": N_("Bad timestamp"),
    "missing_field": N_("Missing field"),
    "not_object": N_("Not a JSON object"),
    "out_of_range": N_("Value out of range"),
    "too_large": N_("Message too large"),
    "unknown_topic": N_("Unknown topic"),
    "wrong_type": N_("Wrong type"),
    "db_refused": N_("Refused by the database"),
    "parser_error": N_("Parser error"),
    "poison": N_("Poison message (failed repeatedly)"),
    "write_error": N_("Write error"),
}

WORKER_STATES: dict[str, str] = {
    "STALLED": N_("Stalled"),
    "SILENT": N_("Silent"),
    "ok": N_("OK"),
}


def reason_label(expr: str, _: Gettext) -> str:
    """SQL showing a reject reason code as words: operators read reasons, not codes."""
    return sql_label(expr, {k: _(v) for k, v in REJECT_REASONS.items()})


def _rows_per_minute(_: Gettext = gettext_for(DEFAULT_LANG)) -> str:
    """One series per stream from its per-minute rollup, never from the raw rows."""
    parts = [
        f"SELECT $__timeGroupAlias(committed, '1m'), {sql_text(_(STREAM_TITLES[name]))}"
        " AS metric, sum(n) AS value "
        f"FROM grafana.{table}_commits_1m WHERE $__timeFilter(bucket) AND $__timeFilter(committed)"
        " GROUP BY 1"
        for table, name in _STREAMS
    ]
    return "SELECT * FROM (\n" + "\nUNION ALL\n".join(parts) + "\n) q ORDER BY 1, 2"


REJECTS_BY_REASON = """
SELECT $__timeGroupAlias(received_at, '5m'), {reason} AS metric,
       count(*) AS value
FROM grafana.ingest_rejects
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1, 2
"""

# Percentiles from the lag histogram (core/migrations/0300): the first bin whose running
# count reaches the share, within 2.9 % of the exact value.
# Ranges over 6 hours read the hourly lag histogram (core/migrations/0302), a point an
# hour; shorter ones the minute one. Exactly one branch runs: the other's condition on the
# range is a one-time filter that stops it before it reads anything.
LONG_RANGE = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '6 hours'"
LAG = f"""
SELECT time, min(lag_s) FILTER (WHERE cum >= 0.5 * total) AS "p50",
       min(lag_s) FILTER (WHERE cum >= 0.95 * total) AS "p95"
FROM (
    SELECT time, lag_s, sum(n) OVER (PARTITION BY time ORDER BY lag_s) AS cum,
           sum(n) OVER (PARTITION BY time) AS total
    FROM (SELECT $__timeGroupAlias(committed, '1m'), lag_s, sum(n) AS n
          FROM grafana.bus_telemetry_lag_1m
          WHERE $__timeFilter(bucket) AND $__timeFilter(committed) AND NOT ({LONG_RANGE})
          GROUP BY 1, 2
          UNION ALL
          SELECT $__timeGroupAlias(committed, '1h'), lag_s, sum(n) AS n
          FROM grafana.bus_telemetry_lag_hourly
          WHERE $__timeFilter(bucket) AND $__timeFilter(committed) AND {LONG_RANGE}
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
SELECT received_at AS "time", topic, {reason} AS "reason", reason AS "reason (detail)",
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


def ingest_health(lang: Lang = DEFAULT_LANG) -> dict[str, Any]:
    """The ingest-health dashboard in ``lang``: operators see a stalled or lossy ingest first."""
    _ = gettext_for(lang)
    panels = [
        *_throughput_panels(_),
        _lag_panel(_, lang),
        _freshness_panel(_, lang),
        _latest_rejects_panel(_),
        _workers_panel(_, lang),
    ]
    return dashboard(
        "mebuku-ingest-health",
        _("Ingest health"),
        panels,
        tags=["mebuku", "ingest", "operators"],
        description=_(
            "MQTT ingest: rows per minute, rejects by reason, lag, vehicle freshness, "
            "stalled workers."
        ),
        time_from="now-1h",
    )


def _throughput_panels(_: Gettext) -> list[dict[str, Any]]:
    """Rows stored per stream next to the rejects: a drop in one with a rise in the other."""
    reason = reason_label("split_part(reason, ':', 1)", _)
    return [
        axis_label(
            panel(
                "timeseries",
                _("Rows stored per minute"),
                [sql_target(_rows_per_minute(_))],
                grid=(0, 0, 16, 8),
                unit="short",
                description=_("Rows committed per minute and stream (by commit time)."),
            ),
            _("Rows stored"),
        ),
        names(
            panel(
                "stat",
                _("Reject share"),
                [sql_target(_reject_share(), "table")],
                grid=(16, 0, 8, 8),
                unit="percentunit",
                thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
                description=_("Messages in the dead letter over all messages in the range."),
            ),
            {"reject share": _("Reject share")},
        ),
        axis_label(
            panel(
                "timeseries",
                _("Rejects by reason"),
                [sql_target(fill(REJECTS_BY_REASON, {"reason": reason}))],
                grid=(0, 8, 12, 8),
                unit="short",
                description=_("Invalid messages kept in the dead letter, by reason."),
                options={"legend": {"displayMode": "table", "placement": "right"}},
            ),
            _("Rejected messages"),
        ),
    ]


def _lag_panel(_: Gettext, lang: Lang) -> dict[str, Any]:
    """Median and p95 lag of bus telemetry: late positions make the live map lie."""
    return names(
        axis_label(
            panel(
                "timeseries",
                _("Publish-to-commit lag (bus telemetry)"),
                [sql_target(LAG)],
                grid=(12, 8, 12, 8),
                unit=unit_for("s", lang),
                thresholds=[(None, "green"), (1, "red")],
                description=_(
                    "Time from the device's timestamp to storage: includes device clock error."
                ),
            ),
            _("Lag"),
        ),
        {"p50": _("Median"), "p95": _("95th percentile")},
    )


def _freshness_panel(_: Gettext, lang: Lang) -> dict[str, Any]:
    """Vehicles by silence: a bus that stopped reporting is the one to phone."""
    return field_units(
        names(
            panel(
                "table",
                _("Vehicle freshness"),
                [sql_target(FRESHNESS, "table")],
                grid=(0, 16, 10, 9),
                description=_("Vehicles that stopped reporting rise to the top."),
            ),
            {
                "vehicle": _("Vehicle"),
                "last report": _("Last report"),
                "silent for (s)": _("Silent for"),
                "reports": _("Reports"),
            },
        ),
        {"silent for (s)": unit_for("s", lang)},
    )


def _latest_rejects_panel(_: Gettext) -> dict[str, Any]:
    """The newest dead letters with the start of their payload, to find the bad sender."""
    reason = reason_label("split_part(reason, ':', 1)", _)
    return names(
        panel(
            "table",
            _("Latest rejects"),
            [sql_target(fill(LATEST_REJECTS, {"reason": reason}), "table")],
            grid=(10, 16, 14, 9),
            description=_("The newest dead letters; the reason's detail is in the tooltip."),
        ),
        {
            "time": _("Received"),
            "topic": _("Topic"),
            "reason": _("Reason"),
            "reason (detail)": _("Reason (detail)"),
            "payload (start)": _("Payload (start)"),
        },
    )


def _workers_panel(_: Gettext, lang: Lang) -> dict[str, Any]:
    """One row per worker from its heartbeat: the same stall rule as /readyz and the alert."""
    p = panel(
        "table",
        _("Ingest workers: stall detection"),
        [sql_target(WORKERS, "table")],
        grid=(0, 25, 24, 7),
        unit=unit_for("s", lang),
        thresholds=[(None, "green"), (60, "red")],
        description=_(
            "Each worker's heartbeat: Stalled = messages waiting and nothing committed for "
            "the stall window (MEBUKU_INGEST_STALL_SECONDS) while the database answers; "
            "Silent = no heartbeat (the worker died). An alert rule watches the same condition."
        ),
    )
    names(
        p,
        {
            "worker": _("Worker"),
            "state": _("State"),
            "oldest unacked (s)": _("Oldest unacknowledged message"),
            "waiting": _("Waiting messages"),
            "since last commit (s)": _("Since last commit"),
            "heartbeat age (s)": _("Heartbeat age"),
            "stall window (s)": _("Stall window"),
            "reason": _("Reason"),
        },
    )
    field_units(p, {"waiting": "short", "state": "none", "worker": "none", "reason": "none"})
    return value_texts(p, "state", {k: _(v) for k, v in WORKER_STATES.items()})


def dashboards(lang: Lang = DEFAULT_LANG) -> list[tuple[str, dict[str, Any]]]:
    """(folder, dashboard) pairs that ``mebuku grafana build`` finds via ``mebuku.dashboards``."""
    return [("operators", ingest_health(lang))]


# Alert rule: an ingest worker is stalled or silent (issue 10), the condition of the
# "Ingest workers" panel. Title and summary in Japanese (the operators' language), English
# in extra annotations; one rule, so nobody is paged twice.
STALLED_COUNT = """
SELECT count(*)::float8 AS "stalled or silent workers"
FROM grafana.ingest_heartbeat
WHERE stalled OR now() - updated_at > make_interval(secs => stall_seconds + 10)
"""
ALERT_TITLE = N_("Ingest worker stalled or silent")
ALERT_SUMMARY = N_("An ingest worker is stalled or has stopped reporting")
ALERT_DESCRIPTION = N_(
    "Messages are waiting at the ingestor and nothing has been committed for the stall "
    "window while the database answers, or a worker's heartbeat stopped. See the Ingest "
    "workers panel of the Ingest health dashboard and the worker's health endpoint on its "
    "metrics port."
)


def _expr(ref: str, model: dict[str, Any]) -> dict[str, Any]:
    """A server-side expression step of an alert rule (reduce, threshold)."""
    return {"refId": ref, "datasourceUid": "__expr__", "model": {"refId": ref, **model}}


def alert_rules(lang: Lang = DEFAULT_LANG) -> dict[str, Any]:
    """Alert-rule provisioning (Grafana 9.1+ file format): a stalled worker pages someone."""
    _ = gettext_for(lang)
    en = gettext_for("en")
    query = {
        "refId": "A",
        "relativeTimeRange": {"from": 600, "to": 0},
        "datasourceUid": "mebuku-timescale",
        "model": {
            "refId": "A",
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": STALLED_COUNT.strip(),
        },
    }
    rule = {
        "uid": "mebuku-ingest-stalled",
        "title": _(ALERT_TITLE),
        "condition": "C",
        "data": [
            query,
            _expr("B", {"type": "reduce", "expression": "A", "reducer": "last"}),
            _expr(
                "C",
                {
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            ),
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "1m",
        "annotations": {
            "summary": _(ALERT_SUMMARY),
            "description": _(ALERT_DESCRIPTION),
            "summary_en": en(ALERT_SUMMARY),
            "description_en": en(ALERT_DESCRIPTION),
        },
        "labels": {"team": "operators", "severity": "critical"},
    }
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "mebuku-ingest",
                "folder": _("Bus and taxi operators"),
                "interval": "1m",
                "rules": [rule],
            }
        ],
    }


def alert_rules_yaml() -> str:
    """grafana/provisioning/alerting/ingest.yaml (written by `mebuku grafana build`)."""
    import yaml

    head = (
        "# Generated by `mebuku grafana build` from ingest/dashboard.py: do not edit.\n"
        "# Alert rule: an ingest worker is stalled or silent (issue 10), the query of the\n"
        "# Ingest workers panel and the API's /readyz rule. Route it with a notification\n"
        "# policy for label team=operators. Details: ingest/README.md, Stall detection.\n"
    )

    class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type stubs here
        """Multi-line strings (the SQL) as literal blocks, as a person would write them."""

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    body = yaml.dump(alert_rules(), Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    return head + str(body)
