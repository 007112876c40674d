"""The operators' bus-operations dashboard (folder ``operators``): live map coloured by
schedule deviation, speed and mode, on-time performance, delays, headways, dwell,
autonomy KPIs and takeover causes, and an alerts table."""

from __future__ import annotations

from typing import Any

from core.grafana import dashboard, panel, query_variable, sql_target

ROUTE_FILTER = "route_id IN ($route)"

VEHICLES_NOW = """
SELECT vs.vehicle_id, vs.lat AS latitude, vs.lon AS longitude,
       round((vs.delay_s / 60.0)::numeric, 1)::float8 AS "delay (min)",
       vs.status, vs.route_id, r.route_long_name AS route, vs.next_stop_id,
       round((vs.speed_mps * 3.6)::numeric, 1)::float8 AS "speed (km/h)", vs.mode, vs.ts
FROM grafana.vehicle_state vs
LEFT JOIN grafana.gtfs_routes r ON r.route_id = vs.route_id
WHERE vs.status <> 'offline' AND vs.ts > now() - interval '15 minutes'
ORDER BY vs.vehicle_id
"""

VEHICLES_BY_STATUS = """
SELECT status, count(*)::float8 AS vehicles
FROM grafana.vehicle_state
WHERE ts > now() - interval '1 day'
GROUP BY status ORDER BY status
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
SELECT coalesce(r.route_long_name, d.route_id) AS route,
       100.0 * sum(d.on_time) / nullif(sum(d.departures), 0) AS "on time %"
FROM grafana.mobility_route_daily d
LEFT JOIN grafana.gtfs_routes r ON r.route_id = d.route_id
WHERE d.bucket >= time_bucket('1 day', $__timeFrom()::timestamptz, 'Asia/Tokyo')
  AND d.bucket < $__timeTo()::timestamptz AND d.departures > 0 AND d.route_id IN ($route)
GROUP BY 1 ORDER BY 2
"""

DELAY = """
SELECT $__timeGroupAlias(ts, $__interval), route_id AS metric, avg(delay_s) / 60.0 AS delay
FROM grafana.vehicle_events
WHERE $__timeFilter(ts) AND type = 'departure' AND route_id IN ($route)
GROUP BY 1, 2 ORDER BY 1
"""

HEADWAYS = """
SELECT time, metric, headway FROM (
    SELECT ts AS time, route_id || ' ' || stop_id AS metric,
           extract(epoch FROM ts - lag(ts) OVER w) / 60.0 AS headway
    FROM grafana.vehicle_events
    WHERE $__timeFilter(ts) AND type = 'departure' AND route_id IN ($route)
    WINDOW w AS (PARTITION BY route_id, direction_id, stop_id ORDER BY ts)
) h
WHERE headway IS NOT NULL
ORDER BY time
"""

DWELL = """
SELECT coalesce(s.stop_name, e.stop_id) AS stop, avg(e.dwell_s) AS "mean dwell",
       max(e.dwell_s) AS "max dwell", count(*)::float8 AS departures
FROM grafana.vehicle_events e
LEFT JOIN grafana.gtfs_stops s ON s.stop_id = e.stop_id
WHERE $__timeFilter(e.ts) AND e.type = 'departure' AND e.route_id IN ($route)
GROUP BY 1 ORDER BY 2 DESC LIMIT 25
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
SELECT coalesce(e.cause, 'unknown') AS cause, count(*)::float8 AS takeovers,
       100.0 * count(*) / km.km AS "per 100 km"
FROM grafana.bus_events e, km
WHERE $__timeFilter(e.ts) AND e.type = 'takeover'
GROUP BY 1, km.km ORDER BY 2 DESC
"""

INTERVENTIONS = """
SELECT type, count(*)::float8 AS events
FROM grafana.bus_events
WHERE $__timeFilter(ts) AND type IN ('takeover', 'obstacle_stop', 'remote_intervention')
GROUP BY 1 ORDER BY 1
"""

ALERTS = """
SELECT ts AS time, vehicle_id, type, route_id, nullif(stop_id, '') AS stop_id,
       round(delay_s::numeric)::float8 AS delay_s, detail::text AS detail
FROM grafana.vehicle_events
WHERE $__timeFilter(ts) AND type IN ('off_route', 'overspeed', 'offline', 'bunching')
ORDER BY ts DESC LIMIT 200
"""

ROUTES = """
SELECT coalesce(route_long_name, route_id) AS __text, route_id AS __value
FROM grafana.gtfs_routes ORDER BY route_id
"""

DELAY_COLOURS: list[tuple[float | None, str]] = [
    (None, "blue"),
    (-1, "green"),
    (3, "yellow"),
    (5, "orange"),
    (10, "red"),
]


def _map_options() -> dict[str, Any]:
    return {
        "view": {"id": "coords", "lat": 36.389, "lon": 139.063, "zoom": 12},
        "controls": {"showZoom": True, "mouseWheelZoom": True},
        "layers": [
            {
                "type": "markers",
                "name": "vehicles",
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


def operators_dashboard() -> dict[str, Any]:
    panels = [
        panel(
            "geomap",
            "Vehicles now (colour: schedule deviation, minutes)",
            [sql_target(VEHICLES_NOW, "table")],
            grid=(0, 0, 16, 12),
            unit="m",
            thresholds=DELAY_COLOURS,
            options=_map_options(),
            description="Blue early, green on time, yellow/orange late, red over 10 min.",
        ),
        panel(
            "stat",
            "Vehicles by status",
            [sql_target(VEHICLES_BY_STATUS, "table")],
            grid=(16, 0, 8, 4),
            options={"reduceOptions": {"calcs": ["lastNotNull"], "values": True}},
        ),
        panel(
            "stat",
            "Autonomy in range",
            [sql_target(AUTONOMY, "table")],
            grid=(16, 4, 8, 4),
            options={"reduceOptions": {"calcs": ["lastNotNull"], "values": False}},
        ),
        panel(
            "bargauge",
            "On-time departures by route (-1/+5 min)",
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
        panel("timeseries", "Speed", [sql_target(SPEED)], grid=(0, 12, 12, 8), unit="velocitykmh"),
        panel(
            "timeseries",
            "Driving mode (share of fixes)",
            [sql_target(MODE_SHARE)],
            grid=(12, 12, 12, 8),
            unit="percent",
        ),
        panel(
            "timeseries",
            "Departure delay by route",
            [sql_target(DELAY)],
            grid=(0, 20, 12, 8),
            unit="m",
        ),
        panel(
            "timeseries",
            "Headways at stops",
            [sql_target(HEADWAYS)],
            grid=(12, 20, 12, 8),
            unit="m",
            field_config={"custom": {"drawStyle": "points", "pointSize": 4}},
        ),
        panel(
            "table",
            "Dwell by stop (seconds)",
            [sql_target(DWELL, "table")],
            grid=(0, 28, 12, 8),
        ),
        panel(
            "table",
            "Takeovers by cause",
            [sql_target(TAKEOVERS, "table")],
            grid=(12, 28, 6, 8),
        ),
        panel(
            "barchart",
            "Takeovers, obstacle stops, remote interventions",
            [sql_target(INTERVENTIONS, "table")],
            grid=(18, 28, 6, 8),
            options={"xField": "type", "orientation": "horizontal"},
        ),
        panel(
            "table",
            "Alerts: off-route, overspeed, offline, bunching",
            [sql_target(ALERTS, "table")],
            grid=(0, 36, 24, 8),
        ),
    ]
    return dashboard(
        "mebuku-bus-operations",
        "Bus operations",
        panels,
        tags=["mobility", "operators"],
        description="Live vehicles, schedule adherence and autonomous-bus KPIs.",
        variables=[query_variable("route", ROUTES, label="Route")],
    )


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [("operators", operators_dashboard())]
