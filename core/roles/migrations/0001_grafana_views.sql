-- Least-privilege database roles (issue 11, item 1): the `grafana` schema.
--
-- Grafana's data source logs in as mebuku_grafana, which may read ONLY the views below
-- (core/roles/grants.toml). The views run with their owner's rights (the migration
-- owner), so the role needs no right on any domain table. What they leave out is the
-- point: no eligibility facts, no card or certificate hashes, no resident ids, no API
-- keys, sessions or sign-in nonces, and no per-ride fares data: the city's fares
-- dashboard gets hourly / monthly aggregates only. Columns are listed explicitly, so a
-- column added to a table later does not appear here by accident.
-- This set runs last (entry point 90_roles), after every table exists.

CREATE SCHEMA IF NOT EXISTS grafana;
REVOKE ALL ON SCHEMA grafana FROM PUBLIC;

-- Time series (device data: no resident data).
CREATE VIEW grafana.bus_telemetry AS
SELECT vehicle_id, ts, seq, lat, lon, speed_mps, heading_deg, odometer_m, mode, door_open,
       passengers, trip_id, route_id, soc_pct, received_at
FROM public.bus_telemetry;

CREATE VIEW grafana.bus_events AS
SELECT vehicle_id, ts, type, cause, detail, received_at FROM public.bus_events;

-- Phones take part in 5G trials: positions are snapped to the dashboards' ~50 m cell
-- centres (0.00045 deg lat x 0.00056 deg lon), so no viewer can follow a handset.
CREATE VIEW grafana.fiveg_radio AS
SELECT site_id, device_id, ts, rsrp_dbm, rsrq_db, sinr_db, dl_mbps, ul_mbps, rtt_ms,
       jitter_ms, loss_pct, cell_id, pci, band,
       (floor(lat / 0.00045) + 0.5) * 0.00045 AS lat,
       (floor(lon / 0.00056) + 0.5) * 0.00056 AS lon,
       received_at
FROM public.fiveg_radio;

CREATE VIEW grafana.fiveg_sensor AS
SELECT site_id, device_id, name, ts, unit, value, value_string, value_bool, value_data, sum,
       received_at
FROM public.fiveg_sensor;

CREATE VIEW grafana.ingest_rejects AS
SELECT id, received_at, topic, payload, reason FROM public.ingest_rejects;

-- Bus operations (public-transport data, also published as GTFS-Realtime).
CREATE VIEW grafana.vehicle_state AS
SELECT vehicle_id, ts, lat, lon, speed_mps, heading_deg, mode, status, trip_id, route_id,
       direction_id, service_date, operator_id, dist_along_m, offset_m, next_stop_id,
       next_stop_sequence, delay_s, telemetry_received_at, updated_at
FROM public.vehicle_state;

CREATE VIEW grafana.vehicle_events AS
SELECT vehicle_id, ts, type, stop_id, trip_id, route_id, direction_id, operator_id,
       stop_sequence, service_date, scheduled_ts, delay_s, dwell_s, detail, created_at
FROM public.vehicle_events;

CREATE VIEW grafana.mobility_route_daily AS
SELECT bucket, route_id, operator_id, departures, on_time, mean_delay_s, max_delay_s,
       mean_dwell_s, bunching, off_route
FROM public.mobility_route_daily;

-- The current GTFS feed only (gtfs_current_version() would run with the caller's rights).
CREATE VIEW grafana.gtfs_routes AS
SELECT r.route_id, r.agency_id, r.route_short_name, r.route_long_name, r.route_type,
       r.route_color, r.route_text_color
FROM public.gtfs_routes r
WHERE r.feed_version = (SELECT id FROM public.gtfs_feed_versions WHERE is_current);

CREATE VIEW grafana.gtfs_stops AS
SELECT s.stop_id, s.stop_code, s.stop_name, s.stop_lat, s.stop_lon
FROM public.gtfs_stops s
WHERE s.feed_version = (SELECT id FROM public.gtfs_feed_versions WHERE is_current);

-- Local-5G trial registry (descriptive, no personal data).
CREATE VIEW grafana.fiveg_trials AS
SELECT trial_id, title, theme, period_start, period_end, description, latency_bound_ms
FROM public.fiveg_trials;

CREATE VIEW grafana.fiveg_trial_devices AS
SELECT trial_id, device_id, kind, label FROM public.fiveg_trial_devices;

CREATE VIEW grafana.fiveg_trial_targets AS
SELECT trial_id, kpi, op, value, unit, label, source, reference
FROM public.fiveg_trial_targets;

-- Fares: aggregates only. No resident, card, certificate or record id, no note.
-- Ledger by settlement month, operator and kind (what `mebuku settle` bills).
CREATE VIEW grafana.fares_ledger_monthly AS
SELECT period, operator_id, source, kind, count(*) AS lines, sum(amount_yen) AS amount_yen
FROM public.fare_ledger
GROUP BY period, operator_id, source, kind;

-- Ledger by hour of the ride (Grafana time filters work on `hour`), all operators.
CREATE VIEW grafana.fares_ledger_hourly AS
SELECT date_trunc('hour', ride_at) AS hour, source, kind, count(*) AS lines,
       sum(amount_yen) AS amount_yen
FROM public.fare_ledger
GROUP BY 1, source, kind;

-- Taxi records per hour of pickup: how many, how many flagged for review.
CREATE VIEW grafana.fares_taxi_rides_hourly AS
SELECT date_trunc('hour', pickup_at) AS hour, count(*) AS rides,
       count(*) FILTER (WHERE flags <> '{}') AS flagged
FROM public.fare_taxi_rides
GROUP BY 1;

-- Taxi riders per hour of pickup and decision (subsidised, limit reached, ...).
CREATE VIEW grafana.fares_taxi_decisions_hourly AS
SELECT date_trunc('hour', pickup_at) AS hour, reason, count(*) AS riders
FROM public.fare_taxi_riders
GROUP BY 1, reason;

-- Enrolment totals (one row).
CREATE VIEW grafana.fares_enrolment AS
SELECT (SELECT count(*) FROM public.fare_residents) AS residents,
       (SELECT count(*) FROM public.fare_ic_cards WHERE status = 'active') AS active_cards;

-- `mebuku db maintain` runs as mebuku_maintain: refreshing a materialized view needs
-- ownership (PostgreSQL < 17), so the refresh function runs with its owner's rights. It
-- only refreshes rollups registered in mebuku.rollups; only mebuku_maintain may call it
-- (grant in core/roles/grants.toml).
ALTER FUNCTION mebuku.refresh_rollup(text) SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp;
REVOKE EXECUTE ON FUNCTION mebuku.refresh_rollup(text) FROM PUBLIC;

-- Nobody but the owner creates objects in public (the PostgreSQL 15+ default, made sure).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
