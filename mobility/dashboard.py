"""The operators' bus-operations dashboard (folder ``operators``): live map coloured by
schedule deviation, speed and mode, on-time performance, delays, headways, dwell,
autonomy KPIs and takeover causes, and an alerts table."""

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

# Codes of the vehicle and event tables, as people say them (docs/glossary.md).
STATUSES: dict[str, str] = {
    "in_transit": N_("In service"),
    "stopped_at": N_("At a stop"),
    "off_route": N_("Off route"),
    "layover": N_("Layover"),
    "offline": N_("Offline"),
}
MODES: dict[str, str] = {
    "autonomous": N_("Autonomous"),
    "manual": N_("Manual driving"),
    "remote": N_("Remote driving"),
}
EVENT_TYPES: dict[str, str] = {
    "takeover": N_("Takeover"),
    "obstacle_stop": N_("Obstacle stop"),
    "remote_intervention": N_("Remote intervention"),
    "off_route": N_("Off route"),
    "overspeed": N_("Overspeed"),
    "offline": N_("Offline"),
    "bunching": N_("Bunching"),
}
CAUSES: dict[str, str] = {
    "parked_vehicle": N_("Parked vehicle"),
    "pedestrian": N_("Pedestrian"),
    "signal": N_("Traffic signal"),
    "right_turn": N_("Right turn"),
    "obstacle": N_("Obstacle"),
    "other": N_("Other"),
    "unknown": N_("Unknown"),
}
# GTFS direction_id as in the timetable: 0 outbound (下り), 1 inbound (上り).
DIRECTIONS: dict[str, str] = {"0": N_("Outbound"), "1": N_("Inbound")}


def direction_label(expr: str, _: Gettext) -> str:
    """SQL naming a GTFS ``direction_id`` (上り/下り): riders and staff never say "0/1"."""
    whens = " ".join(f"WHEN {k} THEN {sql_text(_(v))}" for k, v in DIRECTIONS.items())
    return f"CASE {expr} {whens} ELSE '' END"


ROUTE_FILTER = "route_id IN ($route)"

VEHICLES_NOW = """
SELECT vs.vehicle_id, vs.lat AS latitude, vs.lon AS longitude,
       round((vs.delay_s / 60.0)::numeric, 1)::float8 AS "delay (min)",
       vs.status, coalesce(r.route_long_name, r.route_short_name, vs.route_id) AS route,
       coalesce(ns.stop_name, vs.next_stop_id) AS next_stop,
       round((vs.speed_mps * 3.6)::numeric, 1)::float8 AS "speed (km/h)", vs.mode, vs.ts,
       vs.route_id, vs.next_stop_id
FROM grafana.vehicle_state vs
LEFT JOIN grafana.gtfs_routes r ON r.route_id = vs.route_id
LEFT JOIN grafana.gtfs_stops ns ON ns.stop_id = vs.next_stop_id
WHERE vs.status <> 'offline' AND vs.ts > now() - interval '15 minutes'
ORDER BY vs.vehicle_id
"""

VEHICLES_BY_STATUS = """
SELECT {status} AS status, count(*)::float8 AS vehicles
FROM grafana.vehicle_state
WHERE ts > now() - interval '1 day'
GROUP BY vehicle_state.status ORDER BY vehicle_state.status
"""

SPEED = """
SELECT $__timeGroupAlias(bucket, $__interval), vehicle_id AS metric,
       sum(sum_speed_mps) / nullif(sum(n_speed), 0) * 3.6 AS speed
FROM grafana.bus_telemetry_1m
WHERE $__timeFilter(bucket)
GROUP BY 1, 2 ORDER BY 1
"""

MODE_SHARE = """
SELECT $__timeGroupAlias(bucket, $__interval),
       100.0 * coalesce(sum(n) FILTER (WHERE mode = 'autonomous'), 0) / sum(n) AS "autonomous %",
       100.0 * coalesce(sum(n) FILTER (WHERE mode = 'remote'), 0) / sum(n) AS "remote %"
FROM grafana.bus_telemetry_1m
WHERE $__timeFilter(bucket) AND mode IS NOT NULL
GROUP BY 1 ORDER BY 1
"""

ON_TIME = """
SELECT coalesce(r.route_long_name, r.route_short_name, d.route_id) AS route,
       100.0 * sum(d.on_time) / nullif(sum(d.departures), 0) AS "on time %"
FROM grafana.mobility_route_daily d
LEFT JOIN grafana.gtfs_routes r ON r.route_id = d.route_id
WHERE d.bucket >= time_bucket('1 day', $__timeFrom()::timestamptz, 'Asia/Tokyo')
  AND d.bucket < $__timeTo()::timestamptz AND d.departures > 0 AND d.route_id IN ($route)
GROUP BY 1 ORDER BY 2
"""

DELAY = """
SELECT $__timeGroupAlias(e.ts, $__interval),
       coalesce(r.route_long_name, r.route_short_name, e.route_id) AS metric,
       avg(e.delay_s) / 60.0 AS delay
FROM grafana.vehicle_events e
LEFT JOIN grafana.gtfs_routes r ON r.route_id = e.route_id
WHERE $__timeFilter(e.ts) AND e.type = 'departure' AND e.route_id IN ($route)
GROUP BY 1, 2 ORDER BY 1
"""

# Headways (minutes between consecutive departures of a route and direction at a stop),
# summarised per route and direction over all its stops.
HEADWAYS = """
WITH h AS (
    SELECT route_id, direction_id, stop_id,
           extract(epoch FROM ts - lag(ts) OVER w) / 60.0 AS headway
    FROM grafana.vehicle_events
    WHERE $__timeFilter(ts) AND type = 'departure' AND route_id IN ($route)
    WINDOW w AS (PARTITION BY route_id, direction_id, stop_id ORDER BY ts)
)
SELECT coalesce(r.route_long_name, r.route_short_name, h.route_id) AS route,
       h.direction_id AS direction,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY h.headway) AS "median headway",
       percentile_cont(0.9) WITHIN GROUP (ORDER BY h.headway) AS "p90 headway",
       max(h.headway) AS "max headway",
       count(*)::float8 AS intervals,
       count(DISTINCT h.stop_id)::float8 AS stops,
       h.route_id
FROM h LEFT JOIN grafana.gtfs_routes r ON r.route_id = h.route_id
WHERE h.headway IS NOT NULL
GROUP BY h.route_id, r.route_long_name, r.route_short_name, h.direction_id
ORDER BY 1, 2
"""

# Drill-down: headways at the stop chosen in $stop, one series per route and direction.
STOP_HEADWAYS = """
SELECT time, metric, headway FROM (
    SELECT e.ts AS time,
           coalesce(r.route_long_name, r.route_short_name, e.route_id) || ' ' || {direction}
               AS metric,
           extract(epoch FROM e.ts - lag(e.ts) OVER w) / 60.0 AS headway
    FROM grafana.vehicle_events e
    LEFT JOIN grafana.gtfs_routes r ON r.route_id = e.route_id
    WHERE $__timeFilter(e.ts) AND e.type = 'departure' AND e.route_id IN ($route)
      AND e.stop_id = ${stop:sqlstring}
    WINDOW w AS (PARTITION BY e.route_id, e.direction_id, e.stop_id ORDER BY e.ts)
) h
WHERE headway IS NOT NULL
ORDER BY time
"""

DWELL = """
SELECT coalesce(s.stop_name, e.stop_id) AS stop, avg(e.dwell_s) AS "mean dwell",
       max(e.dwell_s) AS "max dwell", count(*)::float8 AS departures, e.stop_id
FROM grafana.vehicle_events e
LEFT JOIN grafana.gtfs_stops s ON s.stop_id = e.stop_id
WHERE $__timeFilter(e.ts) AND e.type = 'departure' AND e.route_id IN ($route)
GROUP BY 1, e.stop_id ORDER BY 2 DESC LIMIT 25
"""

# From the per-minute rollup (core/migrations/0300): distance share from each minute's
# odometer span per mode, time share from fixes per mode, km from each bus's odometer span.
AUTONOMY = """
WITH t AS (
    SELECT vehicle_id, mode, n, max_odometer_m - min_odometer_m AS dd, min_odometer_m,
           max_odometer_m
    FROM grafana.bus_telemetry_1m
    WHERE $__timeFilter(bucket) AND min_odometer_m IS NOT NULL
)
SELECT coalesce(100.0 * sum(dd) FILTER (WHERE mode = 'autonomous') / nullif(sum(dd), 0), 0)
           AS "autonomous distance %",
       coalesce(100.0 * sum(n) FILTER (WHERE mode = 'autonomous') / nullif(sum(n), 0), 0)
           AS "autonomous time %",
       (SELECT coalesce(sum(km), 0) FROM (SELECT max(max_odometer_m) - min(min_odometer_m) AS km
                                         FROM t GROUP BY vehicle_id) v) / 1000.0 AS "km driven"
FROM t
"""

TAKEOVERS = """
WITH km AS (
    SELECT greatest(coalesce(sum(dd), 0) / 1000.0, 0.001) AS km FROM (
        SELECT max(max_odometer_m) - min(min_odometer_m) AS dd
        FROM grafana.bus_telemetry_1m WHERE $__timeFilter(bucket) GROUP BY vehicle_id
    ) d WHERE dd >= 0
)
SELECT {cause} AS cause, count(*)::float8 AS takeovers,
       100.0 * count(*) / km.km AS "per 100 km"
FROM grafana.bus_events e, km
WHERE $__timeFilter(e.ts) AND e.type = 'takeover'
GROUP BY 1, km.km ORDER BY 2 DESC
"""

INTERVENTIONS = """
SELECT {type} AS type, count(*)::float8 AS events
FROM grafana.bus_events
WHERE $__timeFilter(ts) AND type IN ('takeover', 'obstacle_stop', 'remote_intervention')
GROUP BY bus_events.type ORDER BY bus_events.type
"""

ALERTS = """
SELECT e.ts AS time, e.vehicle_id, e.type,
       coalesce(r.route_long_name, r.route_short_name, e.route_id) AS route,
       coalesce(s.stop_name, nullif(e.stop_id, '')) AS stop,
       round(e.delay_s::numeric)::float8 AS delay_s, e.detail::text AS detail,
       e.route_id, nullif(e.stop_id, '') AS stop_id
FROM grafana.vehicle_events e
LEFT JOIN grafana.gtfs_routes r ON r.route_id = e.route_id
LEFT JOIN grafana.gtfs_stops s ON s.stop_id = e.stop_id
WHERE $__timeFilter(e.ts) AND e.type IN ('off_route', 'overspeed', 'offline', 'bunching')
ORDER BY e.ts DESC LIMIT 200
"""

ROUTES = """
SELECT coalesce(route_long_name, route_short_name, route_id) AS __text, route_id AS __value
FROM grafana.gtfs_routes ORDER BY route_id
"""

# Stops served by the chosen routes in the time range, by name (the drill-down's choice).
STOPS = """
SELECT DISTINCT coalesce(s.stop_name, e.stop_id) AS __text, e.stop_id AS __value
FROM grafana.vehicle_events e
LEFT JOIN grafana.gtfs_stops s ON s.stop_id = e.stop_id
WHERE $__timeFilter(e.ts) AND e.type = 'departure' AND e.route_id IN ($route)
ORDER BY 1
"""

DELAY_COLOURS: list[tuple[float | None, str]] = [
    (None, "blue"),
    (-1, "green"),
    (3, "yellow"),
    (5, "orange"),
    (10, "red"),
]


def _map_options(_: Gettext) -> dict[str, Any]:
    """Geomap centred on Maebashi with one marker layer coloured by schedule deviation."""
    return {
        "view": {"id": "coords", "lat": 36.389, "lon": 139.063, "zoom": 12},
        "controls": {"showZoom": True, "mouseWheelZoom": True},
        "layers": [
            {
                "type": "markers",
                "name": _("Buses"),
                "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
                "tooltip": True,
                "config": {
                    "showLegend": True,
                    "style": {
                        "color": {"field": "delay (min)", "fixed": "#888888"},
                        "size": {"fixed": 8},
                        "text": {"field": "vehicle_id", "mode": "field"},
                    },
                },
            }
        ],
    }


def _texts(table: dict[str, str], _: Gettext) -> dict[str, str]:
    """A code -> words table translated, so panels show names, not codes."""
    return {code: _(text) for code, text in table.items()}


def _vehicles_map(_: Gettext, lang: Lang) -> dict[str, Any]:
    """The live map: the first thing a dispatcher looks at, so late buses stand out in colour."""
    p = panel(
        "geomap",
        _("Vehicles now (colour: schedule deviation, minutes)"),
        [sql_target(VEHICLES_NOW, "table")],
        grid=(0, 0, 16, 12),
        unit=unit_for("m", lang),
        thresholds=DELAY_COLOURS,
        options=_map_options(_),
        description=_("Blue early, green on time, yellow/orange late, red over 10 min."),
    )
    names(
        p,
        {
            "vehicle_id": _("Vehicle"),
            "latitude": _("Latitude"),
            "longitude": _("Longitude"),
            "delay (min)": _("Delay"),
            "status": _("Status"),
            "route": _("Route"),
            "next_stop": _("Next stop"),
            "speed (km/h)": _("Speed"),
            "mode": _("Driving mode"),
            "ts": _("Last fix"),
            "route_id": _("Route id"),
            "next_stop_id": _("Next stop code"),
        },
    )
    field_units(p, {"speed (km/h)": "velocitykmh", "latitude": "none", "longitude": "none"})
    value_texts(p, "status", _texts(STATUSES, _))
    return value_texts(p, "mode", _texts(MODES, _))


def _headway_panels(_: Gettext, lang: Lang) -> list[dict[str, Any]]:
    """Headway summary and the chosen stop's headways: bunching shows as uneven gaps."""
    minutes = unit_for("m", lang)
    summary = panel(
        "table",
        _("Headways by route and direction"),
        [sql_target(HEADWAYS, "table")],
        grid=(12, 20, 12, 8),
        unit=minutes,
        description=_(
            "Minutes between consecutive departures of a route and direction at the same "
            "stop, over all its stops. Choose a stop above for its headways over time."
        ),
    )
    names(
        summary,
        {
            "route": _("Route"),
            "direction": _("Direction"),
            "median headway": _("Median headway"),
            "p90 headway": _("90th percentile headway"),
            "max headway": _("Longest headway"),
            "intervals": _("Intervals"),
            "stops": _("Stops"),
        },
    )
    field_units(summary, {"intervals": "short", "stops": "short", "direction": "none"})
    value_texts(summary, "direction", _texts(DIRECTIONS, _))
    hidden(summary, ["route_id"])
    per_stop = axis_label(
        panel(
            "timeseries",
            _("Headways at the stop ${stop:text}"),
            [sql_target(fill(STOP_HEADWAYS, {"direction": direction_label("e.direction_id", _)}))],
            grid=(0, 44, 24, 8),
            unit=minutes,
            field_config={"custom": {"drawStyle": "points", "pointSize": 4}},
            description=_("One series per route and direction; the stop is chosen above."),
        ),
        _("Headway"),
    )
    return [summary, per_stop]


def _tables(_: Gettext, lang: Lang) -> list[dict[str, Any]]:
    """Dwell, takeover causes and alerts: the tables an operator works through by row."""
    sec = unit_for("s", lang)
    dwell = panel(
        "table",
        _("Dwell by stop"),
        [sql_target(DWELL, "table")],
        grid=(0, 28, 12, 8),
        unit=sec,
    )
    names(
        dwell,
        {
            "stop": _("Stop"),
            "mean dwell": _("Mean dwell"),
            "max dwell": _("Longest dwell"),
            "departures": _("Departures"),
        },
    )
    field_units(dwell, {"departures": "short"})
    hidden(dwell, ["stop_id"])
    takeovers = panel(
        "table",
        _("Takeovers by cause"),
        [
            sql_target(
                TAKEOVERS.format(
                    cause=sql_label("coalesce(e.cause, 'unknown')", _texts(CAUSES, _))
                ),
                "table",
            )
        ],
        grid=(12, 28, 6, 8),
    )
    names(
        takeovers,
        {"cause": _("Cause"), "takeovers": _("Takeovers"), "per 100 km": _("Per 100 km")},
    )
    alerts = panel(
        "table",
        _("Alerts: off-route, overspeed, offline, bunching"),
        [sql_target(ALERTS, "table")],
        grid=(0, 36, 24, 8),
    )
    names(
        alerts,
        {
            "time": _("Time"),
            "vehicle_id": _("Vehicle"),
            "type": _("Alert"),
            "route": _("Route"),
            "stop": _("Stop"),
            "delay_s": _("Delay"),
            "detail": _("Detail"),
        },
    )
    field_units(alerts, {"delay_s": sec})
    value_texts(alerts, "type", _texts(EVENT_TYPES, _))
    hidden(alerts, ["route_id", "stop_id"])
    return [dwell, takeovers, alerts]


# Issue 15: arrival prediction accuracy per route, share within each MBTA bin.
PREDICTION_ACCURACY = """
SELECT coalesce(r.route_long_name, a.route_id) AS route,
       (100.0 * sum(a.accurate) FILTER (WHERE a.bin = '0-3')
        / nullif(sum(a.predictions) FILTER (WHERE a.bin = '0-3'), 0))::float8 AS "0-3 min %",
       (100.0 * sum(a.accurate) FILTER (WHERE a.bin = '3-6')
        / nullif(sum(a.predictions) FILTER (WHERE a.bin = '3-6'), 0))::float8 AS "3-6 min %",
       (100.0 * sum(a.accurate) FILTER (WHERE a.bin = '6-12')
        / nullif(sum(a.predictions) FILTER (WHERE a.bin = '6-12'), 0))::float8 AS "6-12 min %",
       (100.0 * sum(a.accurate) FILTER (WHERE a.bin = '12-30')
        / nullif(sum(a.predictions) FILTER (WHERE a.bin = '12-30'), 0))::float8 AS "12-30 min %",
       (100.0 * sum(a.accurate) / nullif(sum(a.predictions), 0))::float8 AS "all %",
       sum(a.predictions)::float8 AS predictions
FROM grafana.mobility_prediction_accuracy a
LEFT JOIN grafana.gtfs_routes r ON r.route_id = a.route_id
WHERE $__timeFilter(a.time) AND a.route_id IN ($route)
GROUP BY 1 ORDER BY 1
"""


def _accuracy_panel(_: Gettext) -> dict[str, Any]:
    """How far to trust the arrival predictions shown to riders, per route."""
    p = panel(
        "table",
        _("Arrival prediction accuracy by route (share within the MBTA bins)"),
        [sql_target(PREDICTION_ACCURACY, "table")],
        grid=(0, 52, 24, 8),
        unit="percent",
    )
    names(
        p,
        {
            "route": _("Route"),
            "0-3 min %": _("0-3 min ahead"),
            "3-6 min %": _("3-6 min ahead"),
            "6-12 min %": _("6-12 min ahead"),
            "12-30 min %": _("12-30 min ahead"),
            "all %": _("All horizons"),
            "predictions": _("Predictions scored"),
        },
    )
    return field_units(p, {"predictions": "short"})


def operators_dashboard(lang: Lang = DEFAULT_LANG) -> dict[str, Any]:
    """The bus-operations dashboard in ``lang``: where the buses are and whether on time."""
    _ = gettext_for(lang)
    dwell, takeovers, alerts = _tables(_, lang)
    headways, stop_headways = _headway_panels(_, lang)
    panels = [
        _vehicles_map(_, lang),
        *_fleet_stats(_),
        *_trend_panels(_, lang),
        headways,
        dwell,
        takeovers,
        _interventions_panel(_),
        alerts,
        stop_headways,
        _accuracy_panel(_),
    ]
    return dashboard(
        "mebuku-bus-operations",
        _("Bus operations"),
        panels,
        tags=["mobility", "operators"],
        description=_("Live vehicles, schedule adherence and autonomous-bus KPIs."),
        variables=[
            query_variable("route", ROUTES, label=_("Route")),
            query_variable("stop", STOPS, label=_("Stop"), multi=False, include_all=False),
        ],
    )


def _fleet_stats(_: Gettext) -> list[dict[str, Any]]:
    """The three numbers beside the map: fleet status, autonomy share, on-time share."""
    return [
        names(
            panel(
                "stat",
                _("Vehicles by status"),
                [
                    sql_target(
                        VEHICLES_BY_STATUS.format(
                            status=sql_label("vehicle_state.status", _texts(STATUSES, _))
                        ),
                        "table",
                    )
                ],
                grid=(16, 0, 8, 4),
                options={"reduceOptions": {"calcs": ["lastNotNull"], "values": True}},
            ),
            {"vehicles": _("Vehicles")},
        ),
        names(
            panel(
                "stat",
                _("Autonomy in range"),
                [sql_target(AUTONOMY, "table")],
                grid=(16, 4, 8, 4),
                unit="percent",
                options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False}},
            ),
            {
                "autonomous distance %": _("Autonomous share of distance"),
                "autonomous time %": _("Autonomous share of time"),
                "km driven": _("Distance driven"),
            },
        ),
        names(
            panel(
                "bargauge",
                _("On-time departures by route (-1/+5 min)"),
                [sql_target(ON_TIME, "table")],
                grid=(16, 8, 8, 4),
                unit="percent",
                thresholds=[(None, "red"), (80, "yellow"), (90, "green")],
                options={
                    "orientation": "horizontal",
                    "displayMode": "basic",
                    "reduceOptions": {"calcs": ["lastNotNull"], "values": True},
                },
            ),
            {"on time %": _("On-time performance")},
        ),
    ]


def _trend_panels(_: Gettext, lang: Lang) -> list[dict[str, Any]]:
    """Speed, driving mode and delay over time: when in the day the service slips."""
    return [
        axis_label(
            panel(
                "timeseries",
                _("Speed by vehicle"),
                [sql_target(SPEED)],
                grid=(0, 12, 12, 8),
                unit="velocitykmh",
            ),
            _("Speed"),
        ),
        names(
            axis_label(
                panel(
                    "timeseries",
                    _("Driving mode (share of fixes)"),
                    [sql_target(MODE_SHARE)],
                    grid=(12, 12, 12, 8),
                    unit="percent",
                ),
                _("Share of fixes"),
            ),
            {"autonomous %": _("Autonomous"), "remote %": _("Remote driving")},
        ),
        axis_label(
            panel(
                "timeseries",
                _("Departure delay by route"),
                [sql_target(DELAY)],
                grid=(0, 20, 12, 8),
                unit=unit_for("m", lang),
            ),
            _("Delay"),
        ),
    ]


def _interventions_panel(_: Gettext) -> dict[str, Any]:
    """Counts of takeovers and stops by type: how often the autonomous bus needed help."""
    return names(
        panel(
            "barchart",
            _("Takeovers, obstacle stops, remote interventions"),
            [
                sql_target(
                    INTERVENTIONS.format(type=sql_label("bus_events.type", _texts(EVENT_TYPES, _))),
                    "table",
                )
            ],
            grid=(18, 28, 6, 8),
            options={"xField": "type", "orientation": "horizontal"},
        ),
        {"events": _("Events"), "type": _("Event")},
    )


def dashboards(lang: Lang = DEFAULT_LANG) -> list[tuple[str, dict[str, Any]]]:
    """(folder, dashboard) pairs that ``mebuku grafana build`` finds via ``mebuku.dashboards``."""
    return [("operators", operators_dashboard(lang))]
