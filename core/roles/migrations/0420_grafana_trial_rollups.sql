-- Trial-level rollups behind the council's panels (issue 14, item 4; fiveg/migrations/0003,
-- core/migrations/0302; docs/benchmarks.md "Grafana panels against a fleet").
--
-- 1. Each 5G sample's 50 m cell (EPSG:6677, 0400) is computed once, when the row is
--    written: fiveg_radio.cell_x / cell_y, set by a trigger (a stored generated column is
--    refused on a hypertable with compression enabled). The map and the open-data cells
--    then only aggregate. The projection is 0400's grafana.jgd2011_ix_xy, repeated here
--    because a writer (the ingest role) has no use of the grafana schema;
--    tests/grafana/test_coverage_cells.py checks both give fiveg.coverage's cells.
-- 2. fiveg_trial_cells_5m / _1h / _1d: per trial, cell, metric and bin, the samples
--    (rsrp_dbm in 1 dB bins: bin k holds [k, k+1) dBm; ul_mbps and dl_mbps in the log bins
--    of fiveg/migrations/0002; bin NULL: no value). 5 minutes from the raw samples joined to
--    the trial's devices, then hours and days rolled up from it; the map reads days for
--    the whole days of a range longer than a day and hours for the rest, so a medians is
--    within one bin of the exact one.
-- 3. The grafana.* views the panels read.

ALTER TABLE fiveg_radio ADD COLUMN cell_x integer, ADD COLUMN cell_y integer;

CREATE FUNCTION mebuku.fiveg_radio_cell() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t double precision;
    dl double precision;
    xi double precision;
    eta double precision;
BEGIN
    IF NEW.lat IS NULL OR NEW.lon IS NULL THEN
        NEW.cell_x := NULL;
        NEW.cell_y := NULL;
        RETURN NEW;
    END IF;
    t := sinh(atanh(sin(radians(NEW.lat)))
        - 0.081819191042815790146 * atanh(0.081819191042815790146 * sin(radians(NEW.lat))));
    dl := radians(NEW.lon) - radians(139 + 50 / 60.0);
    xi := atan(t / cos(dl));
    eta := atanh(sin(dl) / sqrt(1 + t * t));
    NEW.cell_x := floor(6366812.4008564704221 * (eta
        + 0.00083773182472855133313 * cos(2 * xi) * sinh(2 * eta)
        + 7.6085278481494744745e-7 * cos(4 * xi) * sinh(4 * eta)
        + 1.1976455209422673446e-9 * cos(6 * xi) * sinh(6 * eta)
        + 2.4291706548410129254e-12 * cos(8 * xi) * sinh(8 * eta)
        + 5.711757817902033138e-15 * cos(10 * xi) * sinh(10 * eta)
        + 1.4911177751870800004e-17 * cos(12 * xi) * sinh(12 * eta)) / 50);
    NEW.cell_y := floor((6366812.4008564704221 * (xi
        + 0.00083773182472855133313 * sin(2 * xi) * cosh(2 * eta)
        + 7.6085278481494744745e-7 * sin(4 * xi) * cosh(4 * eta)
        + 1.1976455209422673446e-9 * sin(6 * xi) * cosh(6 * eta)
        + 2.4291706548410129254e-12 * sin(8 * xi) * cosh(8 * eta)
        + 5.711757817902033138e-15 * sin(10 * xi) * cosh(10 * eta)
        + 1.4911177751870800004e-17 * sin(12 * xi) * cosh(12 * eta))
        - 3985144.1160292220759) / 50);
    RETURN NEW;
END
$$;

CREATE TRIGGER fiveg_radio_cell BEFORE INSERT OR UPDATE OF lat, lon ON fiveg_radio
FOR EACH ROW EXECUTE FUNCTION mebuku.fiveg_radio_cell();

-- Rows written before this migration.
UPDATE fiveg_radio SET lat = lat WHERE lat IS NOT NULL AND lon IS NOT NULL;

-- The per-sample view keeps its columns (the open-data cells read it) and reads the
-- stored cell.
CREATE OR REPLACE VIEW grafana.fiveg_radio_cells AS
SELECT r.site_id, r.device_id, r.ts, r.rsrp_dbm, r.dl_mbps, r.ul_mbps,
       r.cell_x::bigint AS cx, r.cell_y::bigint AS cy
FROM public.fiveg_radio r
WHERE r.cell_x IS NOT NULL;

SELECT mebuku.create_rollup(
    'fiveg_trial_cells_5m',
    $src$fiveg_radio r JOIN fiveg_trial_devices d
        ON d.device_id = r.device_id AND r.cell_x IS NOT NULL
    CROSS JOIN LATERAL (VALUES
        ('rsrp_dbm', floor(r.rsrp_dbm)::integer),
        ('ul_mbps', width_bucket(log(CASE WHEN r.ul_mbps IS NOT NULL
            THEN greatest(r.ul_mbps, 0.001) END::double precision), -2, 5, 280)),
        ('dl_mbps', width_bucket(log(CASE WHEN r.dl_mbps IS NOT NULL
            THEN greatest(r.dl_mbps, 0.001) END::double precision), -2, 5, 280))) m(metric, bin)$src$,
    'ts', interval '5 minutes', 'count(*) AS n',
    'd.trial_id, r.cell_x, r.cell_y, m.metric, m.bin');
SELECT mebuku.create_rollup(
    'fiveg_trial_cells_1h', 'fiveg_trial_cells_5m', 'bucket', interval '1 hour',
    'sum(n)::bigint AS n', 'trial_id, cell_x, cell_y, metric, bin');
SELECT mebuku.create_rollup(
    'fiveg_trial_cells_1d', 'fiveg_trial_cells_1h', 'bucket', interval '1 day',
    'sum(n)::bigint AS n', 'trial_id, cell_x, cell_y, metric, bin');

DO $$
BEGIN
    IF NOT mebuku.timescale_enabled() THEN
        CREATE INDEX fiveg_trial_cells_5m_mat_bucket ON fiveg_trial_cells_5m_mat (bucket);
        CREATE INDEX fiveg_trial_cells_5m_mat_trial ON fiveg_trial_cells_5m_mat (trial_id, bucket);
        CREATE INDEX fiveg_trial_cells_1h_mat_bucket ON fiveg_trial_cells_1h_mat (bucket);
        CREATE INDEX fiveg_trial_cells_1h_mat_trial ON fiveg_trial_cells_1h_mat (trial_id, bucket);
        CREATE INDEX fiveg_trial_cells_1d_mat_trial ON fiveg_trial_cells_1d_mat (trial_id, bucket);
    END IF;
END
$$;

-- Bin edges in double precision: power() of an integer and a numeric is numeric, about
-- 20 us a call, which was most of the time of the histogram panels (0300's views below).

-- The trial histograms with each bin's edges (as grafana.fiveg_radio_hist_1h).
CREATE VIEW grafana.fiveg_trial_hist_1h AS
SELECT h.bucket, h.trial_id, h.metric, h.width_bucket AS bin, e.lo, e.hi, h.n
FROM public.fiveg_trial_hist_1h h,
     LATERAL (SELECT CASE WHEN h.width_bucket <= 0 THEN 0
                          WHEN h.width_bucket > 280 THEN 100000
                          ELSE 10 ^ ((h.width_bucket - 81) / 40.0::double precision) END::double precision AS lo,
                     CASE WHEN h.width_bucket <= 0 THEN 0.01
                          WHEN h.width_bucket > 280 THEN 100000
                          ELSE 10 ^ ((h.width_bucket - 80) / 40.0::double precision) END::double precision AS hi) e;

-- The cells per hour and per day, each bin with its edges; no position finer than the
-- cell (cx, cy as grafana.fiveg_radio_cells).
CREATE FUNCTION grafana.fiveg_cell_bin_lo(metric text, bin integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN metric = 'rsrp_dbm' THEN bin::double precision
                WHEN bin <= 0 THEN 0
                WHEN bin > 280 THEN 100000
                ELSE 10 ^ ((bin - 81) / 40.0::double precision) END
$$;
CREATE FUNCTION grafana.fiveg_cell_bin_hi(metric text, bin integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN metric = 'rsrp_dbm' THEN bin + 1.0
                WHEN bin <= 0 THEN 0.01
                WHEN bin > 280 THEN 100000
                ELSE 10 ^ ((bin - 80) / 40.0::double precision) END
$$;
CREATE VIEW grafana.fiveg_trial_cells_1h AS
SELECT bucket, trial_id, cell_x::bigint AS cx, cell_y::bigint AS cy, metric, bin,
       grafana.fiveg_cell_bin_lo(metric, bin) AS lo, grafana.fiveg_cell_bin_hi(metric, bin) AS hi,
       n
FROM public.fiveg_trial_cells_1h WHERE cell_x IS NOT NULL;
CREATE VIEW grafana.fiveg_trial_cells_1d AS
SELECT bucket, trial_id, cell_x::bigint AS cx, cell_y::bigint AS cy, metric, bin,
       grafana.fiveg_cell_bin_lo(metric, bin) AS lo, grafana.fiveg_cell_bin_hi(metric, bin) AS hi,
       n
FROM public.fiveg_trial_cells_1d WHERE cell_x IS NOT NULL;

-- The hourly lag histogram (core/migrations/0302). Not named *_1h: the lag panels group it
-- by a fixed hour, not by $__interval, so it must not raise their minimum interval
-- (core.grafana.rollup_interval) for the short ranges that read the minute one.
CREATE VIEW grafana.bus_telemetry_lag_hourly AS
SELECT bucket, date_bin AS committed,
       CASE WHEN width_bucket = 0 THEN 0
            ELSE 10 ^ ((width_bucket - 120.5) / 40.0::double precision) END AS lag_s,
       n, sum_lag_s
FROM public.bus_telemetry_lag_1h;

-- 0300's views with the same edges in double precision (same columns).
CREATE OR REPLACE VIEW grafana.bus_telemetry_lag_1m AS
SELECT bucket, date_bin AS committed,
       CASE WHEN width_bucket = 0 THEN 0
            ELSE 10 ^ ((width_bucket - 120.5) / 40.0::double precision) END AS lag_s,
       n, sum_lag_s
FROM public.bus_telemetry_lag_1m;

CREATE OR REPLACE VIEW grafana.fiveg_radio_hist_1h AS
SELECT h.bucket, h.device_id, h.metric, h.bin, e.lo, e.hi, h.n
FROM (SELECT bucket, device_id, 'dl_mbps' AS metric, width_bucket AS bin, n
      FROM public.fiveg_dl_hist_1h
      UNION ALL
      SELECT bucket, device_id, 'ul_mbps', width_bucket, n FROM public.fiveg_ul_hist_1h
      UNION ALL
      SELECT bucket, device_id, 'rtt_ms', width_bucket, n FROM public.fiveg_rtt_hist_1h) h,
     LATERAL (SELECT CASE WHEN h.bin <= 0 THEN 0
                          WHEN h.bin > 280 THEN 100000
                          ELSE 10 ^ ((h.bin - 81) / 40.0::double precision) END AS lo,
                     CASE WHEN h.bin <= 0 THEN 0.01
                          WHEN h.bin > 280 THEN 100000
                          ELSE 10 ^ ((h.bin - 80) / 40.0::double precision) END AS hi) e;
