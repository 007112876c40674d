-- The open-data 5G coverage cells are the true 50 m cells of JGD2011 / Japan Plane
-- Rectangular CS IX (EPSG:6677) that fiveg/coverage.py, the API, the report and the
-- council's map use (0400_grafana_coverage_cells.sql): column cx = floor(easting / 50),
-- row cy = floor(northing / 50), cell id "cx_cy" as the API's feature id, and the cell
-- centre in lat/lon. opendata/migrations/0001_opendata.sql had a degree grid
-- (0.00045 deg x 0.00056 deg); the projection functions live in the roles set (90_roles),
-- which runs after 50_opendata, so the open-data view is redefined here. The EBPM map's
-- view depends on it and is redefined with the true cell centres. The centre calls
-- grafana.jgd2011_ix_latlon itself: grafana.fiveg_cell_centre is a SQL function that
-- PostgreSQL inlines and resolves as the reader, and the opendata role has no use of the
-- grafana schema.
-- tests/opendata/test_coverage_cells.py checks the cells equal fiveg.coverage's.

DROP VIEW grafana.ebpm_fiveg_cells;
DROP VIEW opendata.fiveg_coverage_cells;

CREATE VIEW opendata.fiveg_coverage_cells AS
WITH c AS (
    SELECT d.trial_id, rc.cx, rc.cy,
           count(*) AS samples, count(DISTINCT rc.device_id) AS devices,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY rc.rsrp_dbm) AS rsrp_dbm_median,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY rc.dl_mbps) AS dl_mbps_median,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY rc.ul_mbps) AS ul_mbps_median
    FROM grafana.fiveg_radio_cells rc
    JOIN public.fiveg_trial_devices d ON d.device_id = rc.device_id
    JOIN public.fiveg_trials t ON t.trial_id = d.trial_id
        AND rc.ts >= t.period_start AND rc.ts < t.period_end
    GROUP BY 1, 2, 3
)
SELECT c.trial_id, c.cx || '_' || c.cy AS cell, c.cx, c.cy,
       m.centre[1] AS lat, m.centre[2] AS lon,
       c.samples, c.devices, c.rsrp_dbm_median, c.dl_mbps_median, c.ul_mbps_median
FROM c CROSS JOIN LATERAL (
    SELECT grafana.jgd2011_ix_latlon((c.cx + 0.5) * 50.0, (c.cy + 0.5) * 50.0) AS centre
) m;

-- The EBPM map (cell centres; cells with fewer than 10 samples are not shown).
CREATE VIEW grafana.ebpm_fiveg_cells AS
SELECT trial_id, cell, lat, lon, samples, devices, rsrp_dbm_median, dl_mbps_median,
       ul_mbps_median
FROM opendata.fiveg_coverage_cells
WHERE samples >= 10;
