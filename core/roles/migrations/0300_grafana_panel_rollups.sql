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

-- The hourly log histograms of fiveg/migrations/0002, one relation: metric, bin and its
-- edges (fiveg/histogram.py: bin 0 below 0.01, bin 281 at or above 100000; NULL: no value).
CREATE VIEW grafana.fiveg_radio_hist_1h AS
SELECT h.bucket, h.device_id, h.metric, h.bin, e.lo, e.hi, h.n
FROM (SELECT bucket, device_id, 'dl_mbps' AS metric, width_bucket AS bin, n
      FROM public.fiveg_dl_hist_1h
      UNION ALL
      SELECT bucket, device_id, 'ul_mbps', width_bucket, n FROM public.fiveg_ul_hist_1h
      UNION ALL
      SELECT bucket, device_id, 'rtt_ms', width_bucket, n FROM public.fiveg_rtt_hist_1h) h,
     LATERAL (SELECT CASE WHEN h.bin <= 0 THEN 0
                          WHEN h.bin > 280 THEN 100000
                          ELSE power(10, -2 + (h.bin - 1) / 40.0) END::double precision AS lo,
                     CASE WHEN h.bin <= 0 THEN 0.01
                          WHEN h.bin > 280 THEN 100000
                          ELSE power(10, -2 + h.bin / 40.0) END::double precision AS hi) e;

-- core/migrations/0301 replaced mebuku.refresh_rollup(): give it back its owner's rights
-- (as 0001 did), which CREATE OR REPLACE resets. mebuku.set_rollup_view() needs no such
-- rights: only the views' owner can replace them.
ALTER FUNCTION mebuku.refresh_rollup(text) SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp;
REVOKE EXECUTE ON FUNCTION mebuku.refresh_rollup(text) FROM PUBLIC;
