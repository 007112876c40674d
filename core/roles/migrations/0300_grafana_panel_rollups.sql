-- Rollup-backed views for the Grafana panels (issue 14, item 4; core/migrations/0300).
-- Device data only, like the raw views they stand in for; no positions.

CREATE VIEW grafana.bus_telemetry_commits_1m AS
SELECT bucket, date_bin AS committed, n FROM public.bus_telemetry_commits_1m;
CREATE VIEW grafana.bus_events_commits_1m AS
SELECT bucket, date_bin AS committed, n FROM public.bus_events_commits_1m;
CREATE VIEW grafana.fiveg_radio_commits_1m AS
SELECT bucket, date_bin AS committed, n FROM public.fiveg_radio_commits_1m;
CREATE VIEW grafana.fiveg_sensor_commits_1m AS
SELECT bucket, date_bin AS committed, n FROM public.fiveg_sensor_commits_1m;
CREATE VIEW grafana.fiveg_device_status_commits_1m AS
SELECT bucket, date_bin AS committed, n FROM public.fiveg_device_status_commits_1m;

CREATE VIEW grafana.bus_telemetry_1m AS
SELECT bucket, vehicle_id, mode, n, last_ts, n_speed, sum_speed_mps, sum_lag_s,
       min_odometer_m, max_odometer_m
FROM public.bus_telemetry_1m;

-- lag_s: the bin's geometric centre (0 for bin 0: under 1 ms, or negative).
CREATE VIEW grafana.bus_telemetry_lag_1m AS
SELECT bucket, date_bin AS committed,
       CASE WHEN width_bucket = 0 THEN 0
            ELSE power(10, -3 + (width_bucket - 0.5) / 40.0) END::double precision AS lag_s,
       n, sum_lag_s
FROM public.bus_telemetry_lag_1m;

-- The council dashboard's band shares and data coverage (fiveg/migrations/0002).
CREATE VIEW grafana.fiveg_radio_5m AS
SELECT bucket, site_id, device_id, n, n_dl, sum_dl, n_ul, sum_ul, n_rtt, sum_rtt, n_jitter,
       sum_jitter, n_loss, sum_loss, rsrp_excellent, rsrp_good, rsrp_fair, rsrp_poor
FROM public.fiveg_radio_5m;
