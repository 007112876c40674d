-- Rollups of fiveg_radio for fast trial scorecards (docs/fiveg-kpis.md).
--
-- fiveg_radio_5m: per device and 5 minutes, counts, sums and radio-quality band counts
--   (exact means and band shares; data coverage and gaps at 5-minute resolution).
-- fiveg_{dl,ul,rtt}_hist_1h: per device, hour and log-spaced bin, a sample count
--   (percentiles overall and per hour; hourly keeps the rollup small enough to read ten
--   million samples' worth in well under a second, docs/benchmarks.md).
-- Samples without the metric land in bin NULL. Bins: bin(x) = width_bucket(log10(x), -2, 5, 280), i.e. 40 bins per decade from
-- 0.01 to 100000 (bin k covers [10^(-2+(k-1)/40), 10^(-2+k/40))); bin 0 holds x < 0.01
-- (including 0) and bin 281 holds x >= 100000. A percentile read from these bins is within
-- one bin of the exact value: relative error <= 10^(1/40) - 1 = 5.9 %.

SELECT mebuku.create_rollup(
    'fiveg_radio_5m', 'fiveg_radio', 'ts', interval '5 minutes',
    $agg$count(*) AS n,
    count(dl_mbps) AS n_dl, sum(dl_mbps) AS sum_dl,
    count(ul_mbps) AS n_ul, sum(ul_mbps) AS sum_ul,
    count(rtt_ms) AS n_rtt, sum(rtt_ms) AS sum_rtt,
    count(jitter_ms) AS n_jitter, sum(jitter_ms) AS sum_jitter,
    count(loss_pct) AS n_loss, sum(loss_pct) AS sum_loss,
    count(*) FILTER (WHERE rsrp_dbm >= -80) AS rsrp_excellent,
    count(*) FILTER (WHERE rsrp_dbm >= -90 AND rsrp_dbm < -80) AS rsrp_good,
    count(*) FILTER (WHERE rsrp_dbm >= -100 AND rsrp_dbm < -90) AS rsrp_fair,
    count(*) FILTER (WHERE rsrp_dbm < -100) AS rsrp_poor,
    count(*) FILTER (WHERE rsrq_db >= -10) AS rsrq_excellent,
    count(*) FILTER (WHERE rsrq_db >= -15 AND rsrq_db < -10) AS rsrq_good,
    count(*) FILTER (WHERE rsrq_db >= -20 AND rsrq_db < -15) AS rsrq_fair,
    count(*) FILTER (WHERE rsrq_db < -20) AS rsrq_poor,
    count(*) FILTER (WHERE sinr_db >= 20) AS sinr_excellent,
    count(*) FILTER (WHERE sinr_db >= 13 AND sinr_db < 20) AS sinr_good,
    count(*) FILTER (WHERE sinr_db >= 0 AND sinr_db < 13) AS sinr_fair,
    count(*) FILTER (WHERE sinr_db < 0) AS sinr_poor$agg$,
    'site_id, device_id');

SELECT mebuku.create_rollup('fiveg_dl_hist_1h', 'fiveg_radio', 'ts', interval '1 hour',
    'count(*) AS n',
    'device_id, width_bucket(log(CASE WHEN dl_mbps IS NOT NULL
        THEN greatest(dl_mbps, 0.001) END::double precision), -2, 5, 280)');
SELECT mebuku.create_rollup('fiveg_ul_hist_1h', 'fiveg_radio', 'ts', interval '1 hour',
    'count(*) AS n',
    'device_id, width_bucket(log(CASE WHEN ul_mbps IS NOT NULL
        THEN greatest(ul_mbps, 0.001) END::double precision), -2, 5, 280)');
SELECT mebuku.create_rollup('fiveg_rtt_hist_1h', 'fiveg_radio', 'ts', interval '1 hour',
    'count(*) AS n',
    'device_id, width_bucket(log(CASE WHEN rtt_ms IS NOT NULL
        THEN greatest(rtt_ms, 0.001) END::double precision), -2, 5, 280)');

-- Plain PostgreSQL: index the materialized halves (REFRESH keeps indexes).
DO $$
BEGIN
    IF NOT mebuku.timescale_enabled() THEN
        CREATE INDEX fiveg_radio_5m_mat_dev ON fiveg_radio_5m_mat (device_id, bucket);
        CREATE INDEX fiveg_dl_hist_1h_mat_dev ON fiveg_dl_hist_1h_mat (device_id, bucket);
        CREATE INDEX fiveg_ul_hist_1h_mat_dev ON fiveg_ul_hist_1h_mat (device_id, bucket);
        CREATE INDEX fiveg_rtt_hist_1h_mat_dev ON fiveg_rtt_hist_1h_mat (device_id, bucket);
    END IF;
END
$$;
