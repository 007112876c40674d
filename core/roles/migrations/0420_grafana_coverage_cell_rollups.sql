-- Issue 14, item 4: the council's coverage map from rollups keyed by 50 m cell.
--
-- grafana.fiveg_radio_cells (0400) projects every raw sample when the panel runs (about
-- 7 us a row: 3.3 s for the default six hours at 200 devices, bench/panels_bench.py). Here
-- the cell is computed once, when a sample is materialised into an hourly rollup per device,
-- cell and histogram bin; the panel adds up the bins of the trial's devices.
--
-- Bins: RSRP in half decibels (bin b covers [b / 2, (b + 1) / 2) dBm); UL and DL on the log
-- bins of fiveg/migrations/0002 (40 per decade, 5.9 %). A median read from them is within
-- one bin of the exact value (the panel's description says so). Samples without the metric
-- land in bin NULL; samples without a position in cell NULL.
--
-- The rollups live here, not in fiveg/migrations, because they use the projection of 0400
-- (this package's migrations run after every other package's).

-- (lat, lon) -> ARRAY[cx, cy], the API's cell (fiveg/coverage.py cell_of).
CREATE FUNCTION grafana.fiveg_cell(lat double precision, lon double precision)
RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    xy double precision[] := grafana.jgd2011_ix_xy(lat, lon);
BEGIN
    RETURN ARRAY[floor(xy[1] / 50), floor(xy[2] / 50)]::bigint[];
END
$$;

SELECT mebuku.create_rollup('fiveg_cell_rsrp_1h', 'fiveg_radio', 'ts', interval '1 hour',
    'count(*) AS n',
    'device_id, grafana.fiveg_cell(lat, lon), floor(rsrp_dbm * 2)::integer');
SELECT mebuku.create_rollup('fiveg_cell_ul_1h', 'fiveg_radio', 'ts', interval '1 hour',
    'count(*) AS n',
    'device_id, grafana.fiveg_cell(lat, lon), width_bucket(log(CASE WHEN ul_mbps IS NOT NULL
        THEN greatest(ul_mbps, 0.001) END::double precision), -2, 5, 280)');
SELECT mebuku.create_rollup('fiveg_cell_dl_1h', 'fiveg_radio', 'ts', interval '1 hour',
    'count(*) AS n',
    'device_id, grafana.fiveg_cell(lat, lon), width_bucket(log(CASE WHEN dl_mbps IS NOT NULL
        THEN greatest(dl_mbps, 0.001) END::double precision), -2, 5, 280)');

-- Plain PostgreSQL: index the materialized halves (REFRESH keeps indexes).
DO $$
BEGIN
    IF NOT mebuku.timescale_enabled() THEN
        CREATE INDEX fiveg_cell_rsrp_1h_mat_dev ON fiveg_cell_rsrp_1h_mat (device_id, bucket);
        CREATE INDEX fiveg_cell_ul_1h_mat_dev ON fiveg_cell_ul_1h_mat (device_id, bucket);
        CREATE INDEX fiveg_cell_dl_1h_mat_dev ON fiveg_cell_dl_1h_mat (device_id, bucket);
    END IF;
END
$$;

-- Per hour, device, cell (cx, cy), metric ('rsrp_dbm', 'ul_mbps', 'dl_mbps') and bin: the
-- sample count and the bin's edges. Every positioned sample is counted once per metric
-- (bin NULL: no value), so a cell's samples are the sum over one metric's bins.
CREATE VIEW grafana.fiveg_cells_1h AS
SELECT h.bucket, h.device_id, h.cell[1] AS cx, h.cell[2] AS cy, h.metric, h.bin, e.lo, e.hi, h.n
FROM (SELECT bucket, device_id, fiveg_cell AS cell, 'rsrp_dbm' AS metric, floor AS bin, n
      FROM public.fiveg_cell_rsrp_1h
      UNION ALL
      SELECT bucket, device_id, fiveg_cell, 'ul_mbps', width_bucket, n
      FROM public.fiveg_cell_ul_1h
      UNION ALL
      SELECT bucket, device_id, fiveg_cell, 'dl_mbps', width_bucket, n
      FROM public.fiveg_cell_dl_1h) h,
     LATERAL (SELECT CASE WHEN h.metric = 'rsrp_dbm' THEN h.bin / 2.0
                          WHEN h.bin <= 0 THEN 0
                          WHEN h.bin > 280 THEN 100000
                          ELSE power(10, -2 + (h.bin - 1) / 40.0) END::double precision AS lo,
                     CASE WHEN h.metric = 'rsrp_dbm' THEN (h.bin + 1) / 2.0
                          WHEN h.bin <= 0 THEN 0.01
                          WHEN h.bin > 280 THEN 100000
                          ELSE power(10, -2 + h.bin / 40.0) END::double precision AS hi) e
WHERE h.cell IS NOT NULL;
