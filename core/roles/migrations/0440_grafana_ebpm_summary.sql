-- Per-trial summaries behind the EBPM dashboard's local-5G panels, kept incrementally
-- (issue 14, item 4; docs/benchmarks.md "Grafana panels against a fleet").
--
-- 0430's views re-aggregated each trial's whole period from the trial rollups on every
-- panel query: the coverage map ~275,000 hourly and 5-minute cell rows at 2.4 hours of
-- 200 devices (about 3 s), growing with the trial. Here each trial's period is summed
-- once, as it passes, into
--   fiveg_trial_summary       per trial: the stretch summarized, [period_start, upto),
--                             and its sample count and sums (the KPI means);
--   fiveg_trial_hist_summary  per trial, metric (dl_mbps, ul_mbps, rtt_ms) and log bin
--                             (fiveg/migrations/0003): the samples;
--   fiveg_trial_cell_summary  per trial, 50 m cell, metric (rsrp_dbm, ul_mbps, dl_mbps)
--                             and bin (0420; bin NULL: no value): the samples.
-- The panels read the summary and only what is past `upto` from the rollups, tier by tier
-- as 0430 did (whole days, hours, 5-minute buckets, raw samples of partial 5-minute
-- buckets), so what they read no longer grows with the trial's length.
--
-- mebuku.ebpm_fiveg_summarize() moves every trial's `upto` on to `settle` (2 minutes)
-- before now, or to the period's end, adding what it reads for the stretch it passes (the
-- same tiers, from one SQL template: the samples of the partial 5-minute buckets at its
-- ends are read raw once, not on every panel query). It runs
--   - from `mebuku db maintain`, after the rollups are refreshed (core/timeseries.py; the
--     demo runs it every minute), on both paths;
--   - on TimescaleDB also as a job every minute (mebuku.ebpm_fiveg_summary_job, added
--     below), which first refreshes the trial continuous aggregates: a deployment that
--     never runs maintain (docker-compose.yml) keeps its summaries moving.
-- A summary is rebuilt from the period's start when
--   - the trial's period_start changed (a view ignores a summary whose period_start is not
--     the trial's, or whose upto is past its period_end, until then);
--   - the trial's devices changed (mebuku.trial_device_changes, 0003/0420);
--   - samples arrived late in the stretch already summarized: each run recounts the
--     summarized stretch from the hourly and 5-minute trial sums (fiveg/migrations/0004;
--     one row per trial-hour) and the raw start edge, against the summary's count.
-- Rows in the rollups that are re-materialized later (a late sample before the rollup's
-- next refresh) are caught by the same recount once they are.
--
-- The migration builds every trial's summary (the backfill: each trial's period read
-- once by tiers, days from the daily cell rollup).

DROP VIEW grafana.ebpm_fiveg_targets;
DROP VIEW grafana.ebpm_fiveg_cells;
DROP VIEW grafana.ebpm_fiveg_edge_samples;
DROP VIEW grafana.ebpm_fiveg_periods;

CREATE TABLE fiveg_trial_summary (
    trial_id     text PRIMARY KEY REFERENCES fiveg_trials ON DELETE CASCADE,
    period_start timestamptz NOT NULL,   -- the trial's period_start it was built for
    upto         timestamptz NOT NULL,   -- summarized: [period_start, upto)
    built_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    n            bigint NOT NULL DEFAULT 0,
    n_dl         bigint NOT NULL DEFAULT 0,
    sum_dl       double precision NOT NULL DEFAULT 0,
    n_ul         bigint NOT NULL DEFAULT 0,
    sum_ul       double precision NOT NULL DEFAULT 0,
    n_rtt        bigint NOT NULL DEFAULT 0,
    sum_rtt      double precision NOT NULL DEFAULT 0,
    n_jitter     bigint NOT NULL DEFAULT 0,
    sum_jitter   double precision NOT NULL DEFAULT 0,
    n_loss       bigint NOT NULL DEFAULT 0,
    sum_loss     double precision NOT NULL DEFAULT 0
);

CREATE TABLE fiveg_trial_hist_summary (
    trial_id text NOT NULL REFERENCES fiveg_trial_summary ON DELETE CASCADE,
    metric   text NOT NULL,
    bin      integer NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (trial_id, metric, bin)
) WITH (fillfactor = 70);

CREATE TABLE fiveg_trial_cell_summary (
    trial_id text NOT NULL REFERENCES fiveg_trial_summary ON DELETE CASCADE,
    cell_x   integer NOT NULL,
    cell_y   integer NOT NULL,
    metric   text NOT NULL,
    bin      integer,
    n        bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (trial_id, cell_x, cell_y, metric, bin)
) WITH (fillfactor = 70);

-- Per trial, cell and metric, from fiveg_trial_cell_summary: the samples (bin NULL
-- included), those with a value (n_val), and the bin holding the median's lower order
-- statistic (floor((n_val - 1) / 2), bin NULL: none) with the values below it and in it.
-- Recomputed for a trial whenever its summary moves. The map adds the tail past `upto`
-- to these few rows: while the median's order statistics stay in that bin the result is
-- the one the whole histogram gives (the same bin, the same rank inside it); the cells
-- where the tail moves them out (and new cells) are merged bin by bin.
CREATE TABLE fiveg_trial_cell_medians (
    trial_id text NOT NULL REFERENCES fiveg_trial_summary ON DELETE CASCADE,
    cell_x   integer NOT NULL,
    cell_y   integer NOT NULL,
    metric   text NOT NULL,
    samples  bigint NOT NULL,
    n_val    bigint NOT NULL,
    bin      integer,
    below    bigint,
    in_bin   bigint,
    PRIMARY KEY (trial_id, cell_x, cell_y, metric)
);

-- The parts of the SQL shared by the panels' views and the summarizing function. `tiers`
-- takes a query of windows (trial_id, s, e) and cuts each into whole days [d0, d1), hours
-- [h0, h1), 5-minute buckets [m0, m1), as 0430 did; the other parts read the query `t`
-- (the tiers) and `edge` (the raw samples of the partial 5-minute buckets at either end,
-- read once) and return their rows unaggregated: 'hist' (trial_id, metric, bin, n),
-- 'sums' (trial_id, n, n_dl, sum_dl, ... , n_loss, sum_loss), 'cells' (trial_id, cell_x,
-- cell_y, metric, bin, n). A tier's part outside the coarser one is the two ranges
-- [x0, least(y0, x1)) and [greatest(y1, y0, x0), x1); days and hours stop at the one now()
-- is in (the daily and hourly rollups' live tails are not read); each tier is read per
-- window (LATERAL ... OFFSET 0) so its bounds reach the rollups' live tails as conditions,
-- and each range first tests that it is not empty (a condition on the window alone, which
-- PostgreSQL checks before running the branch: the live tail of the daily rollup took
-- 50 ms per trial to find no row in an empty range of days).
CREATE FUNCTION mebuku.ebpm_fiveg_sql(part text, windows text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    CASE part
    WHEN 'tiers' THEN RETURN format($q$
SELECT w.trial_id, w.s, w.e,
       public.time_bucket('5 minutes', w.s - interval '1 microsecond') + interval '5 minutes' AS m0,
       public.time_bucket('5 minutes', w.e) AS m1,
       public.time_bucket('1 hour', w.s - interval '1 microsecond') + interval '1 hour' AS h0,
       least(public.time_bucket('1 hour', w.e), public.time_bucket('1 hour', now())) AS h1,
       public.time_bucket('1 day', w.s - interval '1 microsecond') + interval '1 day' AS d0,
       least(public.time_bucket('1 day', w.e), public.time_bucket('1 day', now())) AS d1
FROM (%s) w$q$, windows);
    -- Per device, two range scans of the primary key (device_id, ts) (a join with the two
    -- ranges OR-ed was planned as a scan of every raw row).
    WHEN 'edge' THEN RETURN $q$
SELECT t.trial_id, r.ts, r.dl_mbps, r.ul_mbps, r.rtt_ms, r.jitter_ms, r.loss_pct, r.rsrp_dbm,
       r.cell_x, r.cell_y
FROM t
JOIN public.fiveg_trial_devices d ON d.trial_id = t.trial_id
CROSS JOIN LATERAL (
    SELECT * FROM public.fiveg_radio x
    WHERE t.s < least(t.m0, t.e) AND x.device_id = d.device_id AND x.ts >= t.s
        AND x.ts < least(t.m0, t.e)
    UNION ALL
    SELECT * FROM public.fiveg_radio x
    WHERE greatest(t.m1, t.m0, t.s) < t.e AND x.device_id = d.device_id
        AND x.ts >= greatest(t.m1, t.m0, t.s) AND x.ts < t.e
) r$q$;
    WHEN 'hist' THEN RETURN $q$
SELECT h.trial_id, h.metric, h.width_bucket AS bin, h.n
FROM t CROSS JOIN LATERAL (
    SELECT h.trial_id, h.metric, h.width_bucket, h.n FROM public.fiveg_trial_hist_1h h
    WHERE t.h0 < t.h1 AND h.trial_id = t.trial_id AND h.bucket >= t.h0 AND h.bucket < t.h1
    OFFSET 0
) h
UNION ALL
SELECT h.trial_id, h.metric, h.width_bucket, h.n
FROM t CROSS JOIN LATERAL (
    SELECT h.trial_id, h.metric, h.width_bucket, h.n FROM public.fiveg_trial_hist_5m h
    WHERE t.m0 < least(t.h0, t.m1) AND h.trial_id = t.trial_id AND h.bucket >= t.m0
        AND h.bucket < least(t.h0, t.m1)
    UNION ALL
    SELECT h.trial_id, h.metric, h.width_bucket, h.n FROM public.fiveg_trial_hist_5m h
    WHERE greatest(t.h1, t.h0, t.m0) < t.m1 AND h.trial_id = t.trial_id
        AND h.bucket >= greatest(t.h1, t.h0, t.m0) AND h.bucket < t.m1
    OFFSET 0
) h
UNION ALL
SELECT r.trial_id, m.metric, width_bucket(log(CASE WHEN m.x IS NOT NULL
           THEN greatest(m.x, 0.001) END::double precision), -2, 5, 280), count(*)
FROM edge r
CROSS JOIN LATERAL (VALUES ('dl_mbps', r.dl_mbps), ('ul_mbps', r.ul_mbps),
                           ('rtt_ms', r.rtt_ms)) m(metric, x)
GROUP BY 1, 2, 3$q$;
    WHEN 'sums' THEN RETURN $q$
SELECT h.*
FROM t CROSS JOIN LATERAL (
    SELECT h.trial_id, h.n, h.n_dl, h.sum_dl, h.n_ul, h.sum_ul, h.n_rtt, h.sum_rtt,
           h.n_jitter, h.sum_jitter, h.n_loss, h.sum_loss FROM public.fiveg_trial_sums_1h h
    WHERE t.h0 < t.h1 AND h.trial_id = t.trial_id AND h.bucket >= t.h0 AND h.bucket < t.h1
    OFFSET 0
) h
UNION ALL
SELECT h.*
FROM t CROSS JOIN LATERAL (
    SELECT h.trial_id, h.n, h.n_dl, h.sum_dl, h.n_ul, h.sum_ul, h.n_rtt, h.sum_rtt,
           h.n_jitter, h.sum_jitter, h.n_loss, h.sum_loss FROM public.fiveg_trial_sums_5m h
    WHERE t.m0 < least(t.h0, t.m1) AND h.trial_id = t.trial_id AND h.bucket >= t.m0
        AND h.bucket < least(t.h0, t.m1)
    UNION ALL
    SELECT h.trial_id, h.n, h.n_dl, h.sum_dl, h.n_ul, h.sum_ul, h.n_rtt, h.sum_rtt,
           h.n_jitter, h.sum_jitter, h.n_loss, h.sum_loss FROM public.fiveg_trial_sums_5m h
    WHERE greatest(t.h1, t.h0, t.m0) < t.m1 AND h.trial_id = t.trial_id
        AND h.bucket >= greatest(t.h1, t.h0, t.m0) AND h.bucket < t.m1
    OFFSET 0
) h
UNION ALL
SELECT trial_id, count(*), count(dl_mbps), sum(dl_mbps::double precision),
       count(ul_mbps), sum(ul_mbps::double precision), count(rtt_ms),
       sum(rtt_ms::double precision), count(jitter_ms), sum(jitter_ms::double precision),
       count(loss_pct), sum(loss_pct::double precision)
FROM edge GROUP BY 1$q$;
    WHEN 'cells' THEN RETURN $q$
SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n
FROM t CROSS JOIN LATERAL (
    SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_1d h
    WHERE t.d0 < t.d1 AND h.trial_id = t.trial_id AND h.bucket >= t.d0 AND h.bucket < t.d1
    OFFSET 0
) h
UNION ALL
SELECT h.*
FROM t CROSS JOIN LATERAL (
    SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_1h h
    WHERE t.h0 < least(t.d0, t.h1) AND h.trial_id = t.trial_id AND h.bucket >= t.h0
        AND h.bucket < least(t.d0, t.h1)
    UNION ALL
    SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_1h h
    WHERE greatest(t.d1, t.d0, t.h0) < t.h1 AND h.trial_id = t.trial_id
        AND h.bucket >= greatest(t.d1, t.d0, t.h0) AND h.bucket < t.h1
    OFFSET 0
) h
UNION ALL
SELECT h.*
FROM t CROSS JOIN LATERAL (
    SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_5m h
    WHERE t.m0 < least(t.h0, t.m1) AND h.trial_id = t.trial_id AND h.bucket >= t.m0
        AND h.bucket < least(t.h0, t.m1)
    UNION ALL
    SELECT h.trial_id, h.cell_x, h.cell_y, h.metric, h.bin, h.n FROM public.fiveg_trial_cells_5m h
    WHERE greatest(t.h1, t.h0, t.m0) < t.m1 AND h.trial_id = t.trial_id
        AND h.bucket >= greatest(t.h1, t.h0, t.m0) AND h.bucket < t.m1
    OFFSET 0
) h
UNION ALL
SELECT r.trial_id, r.cell_x, r.cell_y, m.metric, m.bin, count(*)
FROM edge r
CROSS JOIN LATERAL (VALUES
    ('rsrp_dbm', floor(r.rsrp_dbm)::integer),
    ('ul_mbps', width_bucket(log(CASE WHEN r.ul_mbps IS NOT NULL
        THEN greatest(r.ul_mbps, 0.001) END::double precision), -2, 5, 280)),
    ('dl_mbps', width_bucket(log(CASE WHEN r.dl_mbps IS NOT NULL
        THEN greatest(r.dl_mbps, 0.001) END::double precision), -2, 5, 280))) m(metric, bin)
WHERE r.cell_x IS NOT NULL
GROUP BY 1, 2, 3, 4, 5$q$;
    END CASE;
END
$fn$;

-- The trials' summaries brought up to date (see the top); returns the trials whose summary
-- moved. rebuild: start every summary again from its period's start. Runs as its owner
-- (the maintain role calls it, with no right on the tables).
CREATE FUNCTION mebuku.ebpm_fiveg_summarize(
    rebuild boolean DEFAULT false, settle interval DEFAULT interval '2 minutes'
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    windows text;
    moved integer;
    bound timestamptz := now() - settle;
BEGIN
    -- One at a time (maintain and the TimescaleDB job); the panels read on meanwhile.
    LOCK TABLE public.fiveg_trial_summary IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM public.fiveg_trial_summary m
    WHERE rebuild
       OR m.built_at < (SELECT max(c.changed_at) FROM mebuku.trial_device_changes c)
       OR NOT EXISTS (SELECT 1 FROM public.fiveg_trials p
                      WHERE p.trial_id = m.trial_id AND p.period_start = m.period_start
                        AND m.upto <= p.period_end);
    -- Late samples: the summarized stretch recounted from the sums rollups.
    SELECT string_agg(format('(%L, %L::timestamptz, %L::timestamptz)', trial_id, period_start,
                             upto), ', ')
    INTO windows FROM public.fiveg_trial_summary WHERE upto > period_start;
    IF windows IS NOT NULL THEN
        EXECUTE format($q$
            WITH t AS (%s), edge AS MATERIALIZED (%s),
            c AS (SELECT trial_id, sum(n) AS n FROM (%s) u GROUP BY 1)
            DELETE FROM public.fiveg_trial_summary m
            WHERE m.upto > m.period_start
              AND m.n <> coalesce((SELECT c.n FROM c WHERE c.trial_id = m.trial_id), 0)$q$,
            mebuku.ebpm_fiveg_sql('tiers', format('SELECT * FROM (VALUES %s) w(trial_id, s, e)', windows)), mebuku.ebpm_fiveg_sql('edge'),
            mebuku.ebpm_fiveg_sql('sums'));
    END IF;
    INSERT INTO public.fiveg_trial_summary (trial_id, period_start, upto)
    SELECT trial_id, period_start, period_start FROM public.fiveg_trials
    ON CONFLICT (trial_id) DO NOTHING;
    -- The stretch each summary moves on by: to the period's end or the bound.
    SELECT string_agg(format('(%L, %L::timestamptz, %L::timestamptz)', m.trial_id, m.upto,
                             least(p.period_end, bound)), ', '), count(*)
    INTO windows, moved
    FROM public.fiveg_trial_summary m JOIN public.fiveg_trials p USING (trial_id)
    WHERE least(p.period_end, bound) > m.upto;
    IF windows IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format($q$
        WITH w(trial_id, s, e) AS (VALUES %s), t AS (%s), edge AS MATERIALIZED (%s),
        cells AS (
            INSERT INTO public.fiveg_trial_cell_summary AS c
                (trial_id, cell_x, cell_y, metric, bin, n)
            SELECT trial_id, cell_x, cell_y, metric, bin, sum(n)
            FROM (%s) u WHERE cell_x IS NOT NULL GROUP BY 1, 2, 3, 4, 5
            ON CONFLICT (trial_id, cell_x, cell_y, metric, bin) DO UPDATE SET n = c.n + EXCLUDED.n
        ), hist AS (
            INSERT INTO public.fiveg_trial_hist_summary AS h (trial_id, metric, bin, n)
            SELECT trial_id, metric, bin, sum(n)
            FROM (%s) u WHERE bin IS NOT NULL GROUP BY 1, 2, 3
            ON CONFLICT (trial_id, metric, bin) DO UPDATE SET n = h.n + EXCLUDED.n
        ), s AS (
            SELECT trial_id, sum(n) AS n, sum(n_dl) AS n_dl, sum(sum_dl) AS sum_dl,
                   sum(n_ul) AS n_ul, sum(sum_ul) AS sum_ul, sum(n_rtt) AS n_rtt,
                   sum(sum_rtt) AS sum_rtt, sum(n_jitter) AS n_jitter,
                   sum(sum_jitter) AS sum_jitter, sum(n_loss) AS n_loss, sum(sum_loss) AS sum_loss
            FROM (%s) u GROUP BY 1
        )
        UPDATE public.fiveg_trial_summary m
        SET upto = w.e, n = m.n + coalesce(s.n, 0), n_dl = m.n_dl + coalesce(s.n_dl, 0),
            sum_dl = m.sum_dl + coalesce(s.sum_dl, 0), n_ul = m.n_ul + coalesce(s.n_ul, 0),
            sum_ul = m.sum_ul + coalesce(s.sum_ul, 0), n_rtt = m.n_rtt + coalesce(s.n_rtt, 0),
            sum_rtt = m.sum_rtt + coalesce(s.sum_rtt, 0),
            n_jitter = m.n_jitter + coalesce(s.n_jitter, 0),
            sum_jitter = m.sum_jitter + coalesce(s.sum_jitter, 0),
            n_loss = m.n_loss + coalesce(s.n_loss, 0), sum_loss = m.sum_loss + coalesce(s.sum_loss, 0)
        FROM w LEFT JOIN s ON s.trial_id = w.trial_id
        WHERE m.trial_id = w.trial_id$q$,
        windows, mebuku.ebpm_fiveg_sql('tiers', 'SELECT * FROM w'), mebuku.ebpm_fiveg_sql('edge'),
        mebuku.ebpm_fiveg_sql('cells'), mebuku.ebpm_fiveg_sql('hist'),
        mebuku.ebpm_fiveg_sql('sums'));
    -- Its own statement: an INSERT does not see a DELETE of the same statement.
    EXECUTE format($q$
        DELETE FROM public.fiveg_trial_cell_medians m USING (VALUES %s) w(trial_id, s, e)
        WHERE m.trial_id = w.trial_id$q$, windows);
    EXECUTE format($q$
        WITH w(trial_id) AS (SELECT DISTINCT trial_id FROM (VALUES %s) w(trial_id, s, e)),
        c AS (
            SELECT c.trial_id, c.cell_x, c.cell_y, c.metric, c.bin, c.n,
                   sum(c.n) OVER o AS cum, sum(c.n) OVER p AS samples,
                   sum(c.n) FILTER (WHERE c.bin IS NOT NULL) OVER p AS n_val
            FROM public.fiveg_trial_cell_summary c JOIN w ON w.trial_id = c.trial_id
            WINDOW p AS (PARTITION BY c.trial_id, c.cell_x, c.cell_y, c.metric),
                   o AS (p ORDER BY c.bin)
        ), f AS (SELECT *, floor(0.5 * (n_val - 1)) AS r FROM c)
        INSERT INTO public.fiveg_trial_cell_medians
            (trial_id, cell_x, cell_y, metric, samples, n_val, bin, below, in_bin)
        SELECT trial_id, cell_x, cell_y, metric, max(samples), coalesce(max(n_val), 0),
               min(bin) FILTER (WHERE bin IS NOT NULL AND cum > r AND cum - n <= r),
               min(cum - n) FILTER (WHERE bin IS NOT NULL AND cum > r AND cum - n <= r),
               min(n) FILTER (WHERE bin IS NOT NULL AND cum > r AND cum - n <= r)
        FROM f GROUP BY 1, 2, 3, 4$q$, windows);
    RETURN moved;
END
$fn$;
REVOKE EXECUTE ON FUNCTION mebuku.ebpm_fiveg_summarize(boolean, interval) FROM PUBLIC;

-- TimescaleDB's job: refresh the trial continuous aggregates (finest first; the refresh
-- policies would on their own schedule), so the recount and the summaries read the same
-- materialization, then summarize. No SET clause: a procedure with one cannot COMMIT.
CREATE PROCEDURE mebuku.ebpm_fiveg_summary_job(job_id integer, config jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE
    aggs text[];
    agg text;
BEGIN
    SELECT array_agg(r.name ORDER BY r.bucket_width, r.name) INTO aggs
    FROM mebuku.rollups r WHERE r.name LIKE 'fiveg\_trial\_%';
    FOREACH agg IN ARRAY coalesce(aggs, '{}') LOOP
        CALL public.refresh_continuous_aggregate(agg::regclass, NULL, now());
        COMMIT;
    END LOOP;
    PERFORM mebuku.ebpm_fiveg_summarize();
END
$fn$;
REVOKE EXECUTE ON PROCEDURE mebuku.ebpm_fiveg_summary_job(integer, jsonb) FROM PUBLIC;

DO $$
BEGIN
    IF mebuku.timescale_enabled() THEN
        PERFORM public.add_job('mebuku.ebpm_fiveg_summary_job'::regproc, interval '1 minute');
    END IF;
END
$$;

-- The panels' views. Windows: each trial's period from its summary's upto (a summary built
-- for another period_start, or past the period's end, is ignored until it is rebuilt).
DO $do$
DECLARE
    valid text := $q$
SELECT m.* FROM public.fiveg_trial_summary m
JOIN public.fiveg_trials p ON p.trial_id = m.trial_id AND p.period_start = m.period_start
    AND m.upto <= p.period_end$q$;
    windows text := $q$
SELECT p.trial_id, coalesce(v.upto, p.period_start) AS s, p.period_end AS e
FROM public.fiveg_trials p LEFT JOIN v ON v.trial_id = p.trial_id$q$;
BEGIN
    EXECUTE format($v$
CREATE VIEW grafana.ebpm_fiveg_targets AS
WITH v AS (%s), t AS (%s), edge AS MATERIALIZED (%s),
hist AS (
    SELECT trial_id, metric, bin, sum(n)::double precision AS n FROM (
        SELECT h.trial_id, h.metric, h.bin, h.n
        FROM public.fiveg_trial_hist_summary h JOIN v ON v.trial_id = h.trial_id
        UNION ALL
        SELECT * FROM (%s) x
    ) u
    WHERE bin IS NOT NULL
    GROUP BY 1, 2, 3
), sums AS (
    SELECT trial_id, sum(n) AS n, sum(n_dl) AS n_dl, sum(sum_dl) AS sum_dl,
           sum(n_ul) AS n_ul, sum(sum_ul) AS sum_ul, sum(n_rtt) AS n_rtt,
           sum(sum_rtt) AS sum_rtt, sum(n_jitter) AS n_jitter, sum(sum_jitter) AS sum_jitter,
           sum(n_loss) AS n_loss, sum(sum_loss) AS sum_loss
    FROM (
        SELECT trial_id, n, n_dl, sum_dl, n_ul, sum_ul, n_rtt, sum_rtt, n_jitter, sum_jitter,
               n_loss, sum_loss FROM v
        UNION ALL
        SELECT * FROM (%s) x
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
           100.0 * sum(CASE WHEN c.hi <= p.latency_bound_ms THEN c.n
                            WHEN c.lo < p.latency_bound_ms
                            THEN c.n * (p.latency_bound_ms - c.lo) / (c.hi - c.lo)
                            ELSE 0 END) / nullif(sum(c.n), 0)
    FROM c JOIN public.fiveg_trials p ON p.trial_id = c.trial_id
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
    ON m.trial_id = g.trial_id AND m.kpi = g.kpi$v$,
        valid, mebuku.ebpm_fiveg_sql('tiers', windows), mebuku.ebpm_fiveg_sql('edge'),
        mebuku.ebpm_fiveg_sql('hist'), mebuku.ebpm_fiveg_sql('sums'));

    -- The coverage cells of each trial's period (cells with fewer than 10 samples not
    -- shown): samples equal opendata.fiveg_coverage_cells', medians within one bin (RSRP
    -- 1 dB, UL/DL 40 a decade). q: every cell and metric, the summary's median bin with
    -- the tail past `upto` added (k); where the median's order statistics stay in that bin
    -- (ok) its value is placed by rank inside it, as from the whole histogram; the others
    -- (the tail moved them out of it, a cell new in the tail, no summary) are merged bin by
    -- bin (b, c, m: the summary's rows of those cells only, and the tail's).
    EXECUTE format($v$
CREATE VIEW grafana.ebpm_fiveg_cells AS
WITH v AS (%s), t AS (%s), edge AS MATERIALIZED (%s),
tail AS (
    SELECT trial_id, cell_x, cell_y, metric, bin, sum(n)::double precision AS n
    FROM (%s) u
    WHERE cell_x IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
), md AS (
    SELECT d.* FROM public.fiveg_trial_cell_medians d JOIN v ON v.trial_id = d.trial_id
), k AS (
    SELECT x.trial_id, x.cell_x, x.cell_y, x.metric, sum(x.n) AS k_all,
           coalesce(sum(x.n) FILTER (WHERE x.bin IS NOT NULL), 0) AS k_val,
           coalesce(sum(x.n) FILTER (WHERE x.bin < md.bin), 0) AS k_below,
           coalesce(sum(x.n) FILTER (WHERE x.bin = md.bin), 0) AS k_in
    FROM tail x
    LEFT JOIN md ON md.trial_id = x.trial_id AND md.cell_x = x.cell_x AND md.cell_y = x.cell_y
        AND md.metric = x.metric
    GROUP BY 1, 2, 3, 4
), q0 AS (
    SELECT trial_id, cell_x, cell_y, metric, md.trial_id IS NOT NULL AS summarized,
           coalesce(md.samples, 0) + coalesce(k.k_all, 0) AS samples,
           coalesce(md.n_val, 0) + coalesce(k.k_val, 0) AS n_val, md.bin,
           coalesce(md.below, 0) + coalesce(k.k_below, 0) AS below,
           coalesce(md.in_bin, 0) + coalesce(k.k_in, 0) AS in_bin
    FROM md FULL JOIN k USING (trial_id, cell_x, cell_y, metric)
), q AS (
    SELECT *, 0.5 * (n_val - 1) AS r,
           n_val = 0 OR (summarized AND bin IS NOT NULL
                         AND below <= floor(0.5 * (n_val - 1))
                         AND ceil(0.5 * (n_val - 1)) < below + in_bin) AS ok
    FROM q0
), b AS (
    SELECT trial_id, cell_x, cell_y, metric, bin, sum(n) AS n FROM (
        SELECT c.trial_id, c.cell_x, c.cell_y, c.metric, c.bin, c.n::double precision AS n
        FROM q JOIN public.fiveg_trial_cell_summary c ON c.trial_id = q.trial_id
            AND c.cell_x = q.cell_x AND c.cell_y = q.cell_y AND c.metric = q.metric
        WHERE NOT q.ok AND q.summarized
        UNION ALL
        SELECT x.* FROM q JOIN tail x ON x.trial_id = q.trial_id AND x.cell_x = q.cell_x
            AND x.cell_y = q.cell_y AND x.metric = q.metric
        WHERE NOT q.ok
    ) u
    GROUP BY 1, 2, 3, 4, 5
), c AS (
    SELECT trial_id, cell_x, cell_y, metric, bin, n, grafana.fiveg_cell_bin_lo(metric, bin) AS lo,
           grafana.fiveg_cell_bin_hi(metric, bin) AS hi, sum(n) OVER w AS cum,
           0.5 * (sum(n) FILTER (WHERE bin IS NOT NULL) OVER p - 1) AS r
    FROM b
    WINDOW p AS (PARTITION BY trial_id, cell_x, cell_y, metric), w AS (p ORDER BY bin)
), m AS (
    SELECT trial_id, cell_x, cell_y, metric, max(r) AS r,
           min(lo + (hi - lo) * (floor(r) - (cum - n) + 0.5) / n)
               FILTER (WHERE bin IS NOT NULL AND cum > floor(r) AND cum - n <= floor(r)) AS a,
           min(lo + (hi - lo) * (ceil(r) - (cum - n) + 0.5) / n)
               FILTER (WHERE bin IS NOT NULL AND cum > ceil(r) AND cum - n <= ceil(r)) AS z
    FROM c GROUP BY 1, 2, 3, 4
), val AS (
    SELECT q.trial_id, q.cell_x, q.cell_y, q.metric, q.samples,
           CASE WHEN q.n_val = 0 THEN NULL
                WHEN q.ok THEN e.lo + (e.hi - e.lo)
                    * (q.r - q.below + 0.5) / q.in_bin
                ELSE m.a + (m.r - floor(m.r)) * (m.z - m.a) END AS median
    FROM q
    CROSS JOIN LATERAL (SELECT grafana.fiveg_cell_bin_lo(q.metric, q.bin) AS lo,
                               grafana.fiveg_cell_bin_hi(q.metric, q.bin) AS hi) e
    LEFT JOIN m ON NOT q.ok AND m.trial_id = q.trial_id AND m.cell_x = q.cell_x
        AND m.cell_y = q.cell_y AND m.metric = q.metric
), cells AS (
    SELECT trial_id, cell_x::bigint AS cx, cell_y::bigint AS cy,
           max(samples) FILTER (WHERE metric = 'rsrp_dbm') AS samples,
           max(median) FILTER (WHERE metric = 'rsrp_dbm') AS rsrp,
           max(median) FILTER (WHERE metric = 'dl_mbps') AS dl,
           max(median) FILTER (WHERE metric = 'ul_mbps') AS ul
    FROM val GROUP BY 1, 2, 3
)
SELECT c.trial_id, c.cx || '_' || c.cy AS cell, c.cx, c.cy, ll[1] AS lat, ll[2] AS lon,
       c.samples::bigint AS samples, c.rsrp AS rsrp_dbm_median, c.dl AS dl_mbps_median,
       c.ul AS ul_mbps_median
FROM cells c
CROSS JOIN LATERAL grafana.fiveg_cell_centre(c.cx, c.cy) ll
WHERE c.samples >= 10$v$,
        valid, mebuku.ebpm_fiveg_sql('tiers', windows), mebuku.ebpm_fiveg_sql('edge'),
        mebuku.ebpm_fiveg_sql('cells'));
END
$do$;

-- The backfill: every trial's summary built now.
SELECT mebuku.ebpm_fiveg_summarize();
