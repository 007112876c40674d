-- Trial-level sums for the EBPM dashboard's local-5G KPIs (issue 14, item 4;
-- core/roles/migrations/0430, docs/benchmarks.md "Grafana panels against a fleet").
--
-- The means of a trial's KPIs (dl/ul/rtt/jitter/loss) over its whole period: per trial and
-- 5 minutes (the samples joined to the trial's devices at materialisation, as
-- fiveg_trial_hist_5m of 0003), then per hour rolled up from it. Sums in double precision
-- (sum(real) is real and would drift from the exact avg() over millions of samples).
-- A change of a trial's devices is re-materialized by `mebuku db maintain` like the
-- other trial rollups (core/timeseries.py finds them by their source).

SELECT mebuku.create_rollup(
    'fiveg_trial_sums_5m',
    'fiveg_radio r JOIN fiveg_trial_devices d ON d.device_id = r.device_id',
    'ts', interval '5 minutes',
    $agg$count(*) AS n,
    count(r.dl_mbps) AS n_dl, sum(r.dl_mbps::double precision) AS sum_dl,
    count(r.ul_mbps) AS n_ul, sum(r.ul_mbps::double precision) AS sum_ul,
    count(r.rtt_ms) AS n_rtt, sum(r.rtt_ms::double precision) AS sum_rtt,
    count(r.jitter_ms) AS n_jitter, sum(r.jitter_ms::double precision) AS sum_jitter,
    count(r.loss_pct) AS n_loss, sum(r.loss_pct::double precision) AS sum_loss$agg$,
    'd.trial_id');

SELECT mebuku.create_rollup(
    'fiveg_trial_sums_1h', 'fiveg_trial_sums_5m', 'bucket', interval '1 hour',
    $agg$sum(n)::bigint AS n,
    sum(n_dl)::bigint AS n_dl, sum(sum_dl) AS sum_dl,
    sum(n_ul)::bigint AS n_ul, sum(sum_ul) AS sum_ul,
    sum(n_rtt)::bigint AS n_rtt, sum(sum_rtt) AS sum_rtt,
    sum(n_jitter)::bigint AS n_jitter, sum(sum_jitter) AS sum_jitter,
    sum(n_loss)::bigint AS n_loss, sum(sum_loss) AS sum_loss$agg$,
    'trial_id');

DO $$
BEGIN
    IF NOT mebuku.timescale_enabled() THEN
        CREATE INDEX fiveg_trial_sums_5m_mat_trial ON fiveg_trial_sums_5m_mat (trial_id, bucket);
        CREATE INDEX fiveg_trial_sums_1h_mat_trial ON fiveg_trial_sums_1h_mat (trial_id, bucket);
    END IF;
END
$$;
