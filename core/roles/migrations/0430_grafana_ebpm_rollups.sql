-- The EBPM dashboard's local-5G panels read the trial rollups, not the open-data views
-- (issue 14, item 4; docs/benchmarks.md "Grafana panels against a fleet").
--
-- grafana.ebpm_fiveg_targets / ebpm_fiveg_cells (0160, 0410) were views over
-- opendata.fiveg_trial_kpis / fiveg_coverage_cells, which compute exact values over every
-- raw sample of each trial's period: over 30 s at a day of 200 devices. The open-data
-- release keeps those exact views; the dashboard now reads, clipped to each trial's
-- period [period_start, period_end):
--   - the whole days inside it from the daily cell rollup (map only),
--   - the other whole hours from the hourly rollups,
--   - the other whole 5-minute buckets from the 5-minute rollups,
--   - the samples of the partial 5-minute buckets at either end raw,
-- so every count equals the open-data one; means come from the trial sums
-- (fiveg/migrations/0004, exact up to floating-point summation order), percentiles,
-- medians and the share within the latency bound from the histograms (fiveg/migrations/
-- 0003, 0420: the order statistics placed by rank inside their bins; within one bin).
-- A cell's device count is not kept by the rollups and is not shown by the panel.
-- tests/grafana/test_panel_rollups.py compares both views with the open-data ones.

DROP VIEW grafana.ebpm_fiveg_targets;
DROP VIEW grafana.ebpm_fiveg_cells;

-- Each trial's period cut into the tiers above: whole days [d0, d1), hours [h0, h1),
-- 5-minute buckets [m0, m1); a tier's part outside the coarser one is the two ranges
-- [x0, least(y0, x1)) and [greatest(y1, y0, x0), x1) (also right when no coarser bucket
-- fits: then y0 >= y1 and the ranges are [x0, x1) and nothing). Days and hours stop at the
-- one now() is in: the day or hour still filling up is read from the finer rollup, so
-- the daily and hourly rollups' live tails (a whole day of hourly cells re-aggregated) are
-- not read. Each tier is read per trial (LATERAL) with its bounds as parameters: a bound
-- that leaves a tier empty stops it before it reads anything, and the bounds reach the
-- rollups' live tails as conditions (as join conditions they cut nothing there; OFFSET 0
-- keeps the planner from turning a one-range LATERAL back into a join).
CREATE VIEW grafana.ebpm_fiveg_periods AS
SELECT p.trial_id, p.period_start AS s, p.period_end AS e,
       p.latency_bound_ms::double precision AS latency_bound_ms,
       time_bucket('5 minutes', p.period_start - interval '1 microsecond')
           + interval '5 minutes' AS m0,
       time_bucket('5 minutes', p.period_end) AS m1,
       time_bucket('1 hour', p.period_start - interval '1 microsecond')
           + interval '1 hour' AS h0,
       least(time_bucket('1 hour', p.period_end), time_bucket('1 hour', now())) AS h1,
       time_bucket('1 day', p.period_start - interval '1 microsecond') + interval '1 day' AS d0,
       least(time_bucket('1 day', p.period_end), time_bucket('1 day', now())) AS d1
FROM public.fiveg_trials p;

-- The raw samples of the partial 5-minute buckets at either end of each trial's period:
-- per device, two range scans of the primary key (device_id, ts) (a join with the two
-- ranges OR-ed was planned as a scan of every raw row).
CREATE VIEW grafana.ebpm_fiveg_edge_samples AS
SELECT t.trial_id, r.device_id, r.ts, r.dl_mbps, r.ul_mbps, r.rtt_ms, r.jitter_ms,
       r.loss_pct, r.rsrp_dbm, r.cell_x, r.cell_y
FROM grafana.ebpm_fiveg_periods t
JOIN public.fiveg_trial_devices d ON d.trial_id = t.trial_id
CROSS JOIN LATERAL (
    SELECT * FROM public.fiveg_radio x
    WHERE x.device_id = d.device_id AND x.ts >= t.s AND x.ts < least(t.m0, t.e)
    UNION ALL
    SELECT * FROM public.fiveg_radio x
    WHERE x.device_id = d.device_id AND x.ts >= greatest(t.m1, t.m0, t.s) AND x.ts < t.e
) r;

CREATE VIEW grafana.ebpm_fiveg_targets AS
WITH t AS (SELECT * FROM grafana.ebpm_fiveg_periods),
-- Read once for the histograms and the sums.
edge AS MATERIALIZED (SELECT * FROM grafana.ebpm_fiveg_edge_samples),
hist AS (
    SELECT trial_id, metric, bin, sum(n) AS n FROM (
        SELECT h.trial_id, h.metric, h.width_bucket AS bin, h.n
        FROM t CROSS JOIN LATERAL (
            SELECT h.trial_id, h.metric, h.width_bucket, h.n FROM public.fiveg_trial_hist_1h h
            WHERE h.trial_id = t.trial_id AND h.bucket >= t.h0 AND h.bucket < t.h1
            OFFSET 0
        ) h
        UNION ALL
        SELECT h.trial_id, h.metric, h.width_bucket, h.n
        FROM t CROSS JOIN LATERAL (
            SELECT h.trial_id, h.metric, h.width_bucket, h.n FROM public.fiveg_trial_hist_5m h
            WHERE h.trial_id = t.trial_id AND h.bucket >= t.m0 AND h.bucket < least(t.h0, t.m1)
            UNION ALL
            SELECT h.trial_id, h.metric, h.width_bucket, h.n FROM public.fiveg_trial_hist_5m h
            WHERE h.trial_id = t.trial_id AND h.bucket >= greatest(t.h1, t.h0, t.m0) AND h.bucket < t.m1
            OFFSET 0
        ) h
        UNION ALL
        SELECT r.trial_id, m.metric, width_bucket(log(CASE WHEN m.x IS NOT NULL
                   THEN greatest(m.x, 0.001) END::double precision), -2, 5, 280), count(*)
        FROM edge r
        CROSS JOIN LATERAL (VALUES ('dl_mbps', r.dl_mbps), ('ul_mbps', r.ul_mbps),
                                   ('rtt_ms', r.rtt_ms)) m(metric, x)
        GROUP BY 1, 2, 3
    ) u
    WHERE bin IS NOT NULL
    GROUP BY 1, 2, 3
), sums AS (
    SELECT trial_id, sum(n) AS n, sum(n_dl) AS n_dl, sum(sum_dl) AS sum_dl,
           sum(n_ul) AS n_ul, sum(sum_ul) AS sum_ul, sum(n_rtt) AS n_rtt,
           sum(sum_rtt) AS sum_rtt, sum(n_jitter) AS n_jitter, sum(sum_jitter) AS sum_jitter,
           sum(n_loss) AS n_loss, sum(sum_loss) AS sum_loss
    FROM (
        SELECT h.*
        FROM t CROSS JOIN LATERAL (
            SELECT h.trial_id, h.n, h.n_dl, h.sum_dl, h.n_ul, h.sum_ul, h.n_rtt, h.sum_rtt, h.n_jitter, h.sum_jitter, h.n_loss, h.sum_loss FROM public.fiveg_trial_sums_1h h
            WHERE h.trial_id = t.trial_id AND h.bucket >= t.h0 AND h.bucket < t.h1
            OFFSET 0
        ) h
        UNION ALL
        SELECT h.*
        FROM t CROSS JOIN LATERAL (
            SELECT h.trial_id, h.n, h.n_dl, h.sum_dl, h.n_ul, h.sum_ul, h.n_rtt, h.sum_rtt, h.n_jitter, h.sum_jitter, h.n_loss, h.sum_loss FROM public.fiveg_trial_sums_5m h
            WHERE h.trial_id = t.trial_id AND h.bucket >= t.m0 AND h.bucket < least(t.h0, t.m1)
            UNION ALL
            SELECT h.trial_id, h.n, h.n_dl, h.sum_dl, h.n_ul, h.sum_ul, h.n_rtt, h.sum_rtt, h.n_jitter, h.sum_jitter, h.n_loss, h.sum_loss FROM public.fiveg_trial_sums_5m h
            WHERE h.trial_id = t.trial_id AND h.bucket >= greatest(t.h1, t.h0, t.m0) AND h.bucket < t.m1
            OFFSET 0
        ) h
        UNION ALL
        SELECT trial_id, count(*), count(dl_mbps), sum(dl_mbps::double precision),
               count(ul_mbps), sum(ul_mbps::double precision), count(rtt_ms),
               sum(rtt_ms::double precision), count(jitter_ms),
               sum(jitter_ms::double precision), count(loss_pct),
               sum(loss_pct::double precision)
        FROM edge GROUP BY 1
    ) u
    GROUP BY 1
), c AS (
    SELECT h.trial_id, h.metric, h.bin, h.n,
           grafana.fiveg_cell_bin_lo(h.metric, h.bin) AS lo,
           grafana.fiveg_cell_bin_hi(h.metric, h.bin) AS hi,
           sum(h.n) OVER (PARTITION BY h.trial_id, h.metric ORDER BY h.bin) AS cum,
           sum(h.n) OVER (PARTITION BY h.trial_id, h.metric) AS total
    FROM hist h
), pk(kpi, metric, q) AS (
    VALUES ('dl_mbps_p5', 'dl_mbps', 0.05), ('dl_mbps_p50', 'dl_mbps', 0.5),
           ('dl_mbps_p95', 'dl_mbps', 0.95), ('ul_mbps_p5', 'ul_mbps', 0.05),
           ('ul_mbps_p50', 'ul_mbps', 0.5), ('ul_mbps_p95', 'ul_mbps', 0.95),
           ('rtt_ms_p50', 'rtt_ms', 0.5), ('rtt_ms_p95', 'rtt_ms', 0.95),
           ('rtt_ms_p99', 'rtt_ms', 0.99)
), ranked AS (
    SELECT c.*, pk.kpi, pk.q * (c.total - 1) AS r FROM c JOIN pk ON pk.metric = c.metric
), pv AS (
    -- percentile_cont's rank r lies between the order statistics floor(r) and ceil(r),
    -- each placed by rank inside its bin (as the council's panels and fiveg/histogram.py).
    SELECT trial_id, kpi, max(r) AS r,
           min(lo + (hi - lo) * (floor(r) - (cum - n) + 0.5) / n)
               FILTER (WHERE cum > floor(r) AND cum - n <= floor(r)) AS a,
           min(lo + (hi - lo) * (ceil(r) - (cum - n) + 0.5) / n)
               FILTER (WHERE cum > ceil(r) AND cum - n <= ceil(r)) AS z
    FROM ranked GROUP BY 1, 2
), k AS (
    SELECT s.trial_id, s.n AS samples, kv.kpi, kv.value
    FROM sums s
    CROSS JOIN LATERAL (VALUES
        ('dl_mbps_mean', s.sum_dl / nullif(s.n_dl, 0)),
        ('ul_mbps_mean', s.sum_ul / nullif(s.n_ul, 0)),
        ('rtt_ms_mean', s.sum_rtt / nullif(s.n_rtt, 0)),
        ('jitter_ms_mean', s.sum_jitter / nullif(s.n_jitter, 0)),
        ('loss_pct_mean', s.sum_loss / nullif(s.n_loss, 0))) kv(kpi, value)
    UNION ALL
    SELECT trial_id, NULL, kpi, a + (r - floor(r)) * (z - a) FROM pv
    UNION ALL
    -- The share of RTT samples within the trial's latency bound; the bin holding the bound
    -- counts in proportion to the part of it below the bound.
    SELECT c.trial_id, NULL, 'reliability_pct',
           100.0 * sum(CASE WHEN c.hi <= t.latency_bound_ms THEN c.n
                            WHEN c.lo < t.latency_bound_ms
                            THEN c.n * (t.latency_bound_ms - c.lo) / (c.hi - c.lo)
                            ELSE 0 END) / nullif(sum(c.n), 0)
    FROM c JOIN t ON t.trial_id = c.trial_id
    WHERE c.metric = 'rtt_ms'
    GROUP BY 1
)
SELECT g.trial_id, p.title, p.theme, g.kpi, g.label, g.unit, g.op, g.target, m.measured,
       coalesce(s.n, 0) AS samples, g.reference,
       CASE WHEN m.measured IS NULL THEN NULL
            WHEN g.op = '>=' THEN m.measured >= g.target
            ELSE m.measured <= g.target END AS met
FROM (SELECT trial_id, kpi, op, value AS target, unit, label, reference
      FROM public.fiveg_trial_targets) g
JOIN public.fiveg_trials p ON p.trial_id = g.trial_id
LEFT JOIN sums s ON s.trial_id = g.trial_id
LEFT JOIN (SELECT trial_id, kpi, max(value) AS measured FROM k GROUP BY 1, 2) m
    ON m.trial_id = g.trial_id AND m.kpi = g.kpi;

-- The coverage cells of each trial's period (cells with fewer than 10 samples not shown):
-- samples equal opendata.fiveg_coverage_cells', medians within one bin (RSRP 1 dB, UL/DL
-- 40 a decade).
CREATE VIEW grafana.ebpm_fiveg_cells AS
WITH t AS (SELECT * FROM grafana.ebpm_fiveg_periods),
b AS (
    SELECT trial_id, cx, cy, metric, bin, sum(n) AS n FROM (
        SELECT h.trial_id, h.cell_x::bigint AS cx, h.cell_y::bigint AS cy, h.metric, h.bin, h.n
        FROM t CROSS JOIN LATERAL (
            SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_1d h
            WHERE h.trial_id = t.trial_id AND h.bucket >= t.d0 AND h.bucket < t.d1
            OFFSET 0
        ) h
        UNION ALL
        SELECT h.*
        FROM t CROSS JOIN LATERAL (
            SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_1h h
            WHERE h.trial_id = t.trial_id AND h.bucket >= t.h0 AND h.bucket < least(t.d0, t.h1)
            UNION ALL
            SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_1h h
            WHERE h.trial_id = t.trial_id AND h.bucket >= greatest(t.d1, t.d0, t.h0) AND h.bucket < t.h1
            OFFSET 0
        ) h
        UNION ALL
        SELECT h.*
        FROM t CROSS JOIN LATERAL (
            SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_5m h
            WHERE h.trial_id = t.trial_id AND h.bucket >= t.m0 AND h.bucket < least(t.h0, t.m1)
            UNION ALL
            SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_5m h
            WHERE h.trial_id = t.trial_id AND h.bucket >= greatest(t.h1, t.h0, t.m0) AND h.bucket < t.m1
            OFFSET 0
        ) h
        UNION ALL
        SELECT r.trial_id, r.cell_x, r.cell_y, m.metric, m.bin, count(*)
        FROM grafana.ebpm_fiveg_edge_samples r
        CROSS JOIN LATERAL (VALUES
            ('rsrp_dbm', floor(r.rsrp_dbm)::integer),
            ('ul_mbps', width_bucket(log(CASE WHEN r.ul_mbps IS NOT NULL
                THEN greatest(r.ul_mbps, 0.001) END::double precision), -2, 5, 280)),
            ('dl_mbps', width_bucket(log(CASE WHEN r.dl_mbps IS NOT NULL
                THEN greatest(r.dl_mbps, 0.001) END::double precision), -2, 5, 280))) m(metric, bin)
        WHERE r.cell_x IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
    ) u
    WHERE cx IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
), c AS (
    SELECT trial_id, cx, cy, metric, bin, n, grafana.fiveg_cell_bin_lo(metric, bin) AS lo,
           grafana.fiveg_cell_bin_hi(metric, bin) AS hi, sum(n) OVER w AS cum,
           sum(n) OVER p AS samples,
           0.5 * (sum(n) FILTER (WHERE bin IS NOT NULL) OVER p - 1) AS r
    FROM b
    WINDOW p AS (PARTITION BY trial_id, cx, cy, metric), w AS (p ORDER BY bin)
), m AS (
    SELECT trial_id, cx, cy, metric, max(samples) AS samples, max(r) AS r,
           min(lo + (hi - lo) * (floor(r) - (cum - n) + 0.5) / n)
               FILTER (WHERE bin IS NOT NULL AND cum > floor(r) AND cum - n <= floor(r)) AS a,
           min(lo + (hi - lo) * (ceil(r) - (cum - n) + 0.5) / n)
               FILTER (WHERE bin IS NOT NULL AND cum > ceil(r) AND cum - n <= ceil(r)) AS z
    FROM c GROUP BY 1, 2, 3, 4
), cells AS (
    SELECT trial_id, cx, cy, max(samples) FILTER (WHERE metric = 'rsrp_dbm') AS samples,
           max(a + (r - floor(r)) * (z - a)) FILTER (WHERE metric = 'rsrp_dbm') AS rsrp,
           max(a + (r - floor(r)) * (z - a)) FILTER (WHERE metric = 'dl_mbps') AS dl,
           max(a + (r - floor(r)) * (z - a)) FILTER (WHERE metric = 'ul_mbps') AS ul
    FROM m GROUP BY 1, 2, 3
)
SELECT c.trial_id, c.cx || '_' || c.cy AS cell, c.cx, c.cy, ll[1] AS lat, ll[2] AS lon,
       c.samples, c.rsrp AS rsrp_dbm_median, c.dl AS dl_mbps_median, c.ul AS ul_mbps_median
FROM cells c
CROSS JOIN LATERAL grafana.fiveg_cell_centre(c.cx, c.cy) ll
WHERE c.samples >= 10;
