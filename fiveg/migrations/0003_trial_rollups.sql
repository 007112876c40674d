-- Trial-level histograms for the council's percentile panels (issue 14, item 4;
-- docs/benchmarks.md "Grafana panels against a fleet").
--
-- fiveg_dl/ul/rtt_hist_1h (0002) keep a row per device, hour and bin: at 200 devices a
-- trial's six hours are ~100,000 rows plus up to an hour of raw samples in the live tail.
-- Here the device is joined to its trials at materialisation and dropped from the key:
--
-- fiveg_trial_hist_5m: per trial, 5 minutes, metric (dl_mbps, ul_mbps, rtt_ms) and bin
--   (the bins of 0002: width_bucket(log10(x), -2, 5, 280), bin NULL for a sample without
--   the metric), the samples. One relation for the three metrics.
-- fiveg_trial_hist_1h: the same per hour, rolled up from the 5-minute one (a hierarchical
--   continuous aggregate on TimescaleDB; on plain PostgreSQL a rollup of the 5-minute
--   view). What the panels read: whole hours materialized, and the hour still filling up
--   answered from the 5-minute buckets plus at most one refresh interval of raw samples.
--
-- A device added to or removed from a trial changes that trial's past buckets: the
-- trigger below notes the device and `mebuku db maintain` re-materializes the buckets
-- its samples fall in (core/timeseries.py; plain PostgreSQL re-materializes every rollup
-- on each run anyway). Until then the materialized buckets keep the old device list.

SELECT mebuku.create_rollup(
    'fiveg_trial_hist_5m',
    $src$fiveg_radio r JOIN fiveg_trial_devices d ON d.device_id = r.device_id
    CROSS JOIN LATERAL (VALUES ('dl_mbps', r.dl_mbps), ('ul_mbps', r.ul_mbps),
                               ('rtt_ms', r.rtt_ms)) m(metric, x)$src$,
    'ts', interval '5 minutes', 'count(*) AS n',
    $g$d.trial_id, m.metric, width_bucket(log(CASE WHEN m.x IS NOT NULL
        THEN greatest(m.x, 0.001) END::double precision), -2, 5, 280)$g$);

SELECT mebuku.create_rollup(
    'fiveg_trial_hist_1h', 'fiveg_trial_hist_5m', 'bucket', interval '1 hour',
    'sum(n)::bigint AS n', 'trial_id, metric, width_bucket');

CREATE TABLE mebuku.trial_device_changes (
    device_id   text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Runs as its owner: whoever may change a trial's devices (the API) notes the change
-- without any right on mebuku.trial_device_changes.
CREATE FUNCTION mebuku.note_trial_device_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO mebuku.trial_device_changes (device_id) VALUES (NEW.device_id);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO mebuku.trial_device_changes (device_id) VALUES (OLD.device_id);
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION mebuku.note_trial_device_change() FROM PUBLIC;

CREATE TRIGGER fiveg_trial_devices_changed
AFTER INSERT OR UPDATE OR DELETE ON fiveg_trial_devices
FOR EACH ROW EXECUTE FUNCTION mebuku.note_trial_device_change();

-- Plain PostgreSQL: index the materialized halves (REFRESH keeps indexes). The hourly
-- rollup's live part reads the 5-minute one by time across trials.
DO $$
BEGIN
    IF NOT mebuku.timescale_enabled() THEN
        CREATE INDEX fiveg_trial_hist_5m_mat_bucket ON fiveg_trial_hist_5m_mat (bucket);
        CREATE INDEX fiveg_trial_hist_5m_mat_trial ON fiveg_trial_hist_5m_mat (trial_id, bucket);
        CREATE INDEX fiveg_trial_hist_1h_mat_trial ON fiveg_trial_hist_1h_mat (trial_id, bucket);
    END IF;
END
$$;
