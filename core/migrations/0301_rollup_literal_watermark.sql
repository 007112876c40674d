-- Plain PostgreSQL: the rollup view's live tail names its watermark as a literal.
--
-- With `ts >= (SELECT watermark FROM mebuku.rollups ...)` the planner cannot know how few
-- raw rows are past the watermark, guesses a third of the table and scans all of it in
-- parallel (7 s for a one-hour ingest panel over 5 million fixes, bench/panels_bench.py).
-- With the literal it uses the time column's statistics and BRIN index, reading only the
-- tail. mebuku.set_rollup_view() rewrites the view (same columns, so the grafana.* views
-- on it stay); refresh_rollup() calls it after moving the watermark. No-op on TimescaleDB,
-- whose real-time aggregation does this itself.

CREATE FUNCTION mebuku.set_rollup_view(rollup_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r mebuku.rollups;
    nsp name;
BEGIN
    SELECT * INTO STRICT r FROM mebuku.rollups WHERE name = rollup_name;
    IF mebuku.timescale_enabled() THEN
        RETURN;
    END IF;
    -- The view's own schema (refresh_rollup runs with search_path pg_catalog first).
    SELECT c.relnamespace::regnamespace::name INTO STRICT nsp
    FROM pg_class c WHERE c.oid = to_regclass(quote_ident(r.name));
    EXECUTE format(
        'CREATE OR REPLACE VIEW %I.%I AS SELECT * FROM %I.%I WHERE bucket < %L::timestamptz '
        'UNION ALL SELECT * FROM (%s) live',
        nsp, r.name, nsp, r.name || '_mat', r.watermark,
        mebuku.rollup_select(r, format('%L::timestamptz', r.watermark)));
END
$$;

CREATE OR REPLACE FUNCTION mebuku.refresh_rollup(rollup_name text) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    r mebuku.rollups;
    wm timestamptz;
BEGIN
    SELECT * INTO STRICT r FROM mebuku.rollups WHERE name = rollup_name FOR UPDATE;
    IF mebuku.timescale_enabled() THEN
        RETURN NULL;
    END IF;
    wm := CASE WHEN r.bucket_tz IS NULL THEN time_bucket(r.bucket_width, now() - r.end_offset)
               ELSE time_bucket(r.bucket_width, now() - r.end_offset, r.bucket_tz) END;
    EXECUTE format('REFRESH MATERIALIZED VIEW %I', rollup_name || '_mat');
    UPDATE mebuku.rollups SET watermark = wm WHERE name = rollup_name;
    PERFORM mebuku.set_rollup_view(rollup_name);
    RETURN wm;
END
$$;

SELECT mebuku.set_rollup_view(name) FROM mebuku.rollups;
