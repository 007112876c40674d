-- Time-series support that works the same on TimescaleDB and on plain PostgreSQL.
--
-- mebuku.make_timeseries() turns a table into a hypertable with compression settings when
-- TimescaleDB is installed, else gives it a BRIN index on its time column.
-- mebuku.create_rollup() creates a continuous aggregate with real-time aggregation, else a
-- materialized view plus a view that adds the not-yet-materialized buckets live, so both
-- paths answer the same query with the same rows.
-- On plain PostgreSQL a time_bucket() with TimescaleDB's bucket origins is defined (via
-- date_bin), so dashboards and queries run unchanged on both.

CREATE SCHEMA IF NOT EXISTS mebuku;

CREATE TABLE mebuku.timeseries (
    table_name      text PRIMARY KEY,
    time_column     text NOT NULL,
    segment_by      text,
    chunk_interval  interval NOT NULL
);

CREATE TABLE mebuku.rollups (
    name            text PRIMARY KEY,
    source          text NOT NULL,
    time_column     text NOT NULL,
    bucket_width    interval NOT NULL,
    bucket_tz       text,
    group_by        text NOT NULL DEFAULT '',
    aggregates      text NOT NULL,
    start_offset    interval,
    end_offset      interval NOT NULL DEFAULT interval '0',
    schedule        interval NOT NULL DEFAULT interval '5 minutes',
    -- plain PostgreSQL only: buckets before this are served from the materialized view
    watermark       timestamptz NOT NULL DEFAULT '-infinity'
);

CREATE FUNCTION mebuku.timescale_enabled() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
$$;

DO $plain$
BEGIN
    IF mebuku.timescale_enabled() THEN
        RETURN;
    END IF;
    -- TimescaleDB's origins: 2000-01-01 for month buckets, 2000-01-03 (a Monday) otherwise.
    EXECUTE $f$
        CREATE FUNCTION public.time_bucket(bucket_width interval, ts timestamptz)
        RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $b$
            SELECT CASE
                WHEN extract(month FROM bucket_width) = 0 AND extract(year FROM bucket_width) = 0
                THEN date_bin(bucket_width, ts, timestamptz '2000-01-03 00:00:00+00')
                ELSE (timestamp '2000-01-01' + make_interval(months =>
                        (floor(((extract(year FROM ts AT TIME ZONE 'UTC') - 2000) * 12
                                + extract(month FROM ts AT TIME ZONE 'UTC') - 1)
                               / (extract(year FROM bucket_width) * 12
                                  + extract(month FROM bucket_width)))
                         * (extract(year FROM bucket_width) * 12
                            + extract(month FROM bucket_width)))::int)) AT TIME ZONE 'UTC'
            END
        $b$
    $f$;
    EXECUTE $f$
        CREATE FUNCTION public.time_bucket(bucket_width interval, ts timestamp)
        RETURNS timestamp LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $b$
            SELECT public.time_bucket(bucket_width, ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        $b$
    $f$;
    EXECUTE $f$
        CREATE FUNCTION public.time_bucket(bucket_width interval, ts timestamptz, timezone text)
        RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $b$
            SELECT public.time_bucket(bucket_width, (ts AT TIME ZONE timezone)::timestamp)
                   AT TIME ZONE timezone
        $b$
    $f$;
END
$plain$;

-- Register a time-series table: hypertable + compression settings on TimescaleDB, BRIN
-- index on plain PostgreSQL. Policies (compression, retention) come from settings and
-- are applied by `mebuku db migrate` after the SQL files (core/timeseries.py).
CREATE FUNCTION mebuku.make_timeseries(
    tbl text, time_col text, segment_by text DEFAULT NULL,
    chunk interval DEFAULT interval '1 day'
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mebuku.timeseries VALUES (tbl, time_col, segment_by, chunk)
    ON CONFLICT (table_name) DO UPDATE
        SET time_column = EXCLUDED.time_column, segment_by = EXCLUDED.segment_by,
            chunk_interval = EXCLUDED.chunk_interval;
    IF mebuku.timescale_enabled() THEN
        PERFORM create_hypertable(tbl::regclass, time_col::name,
                                  chunk_time_interval => chunk,
                                  if_not_exists => true, migrate_data => true);
        IF segment_by IS NOT NULL THEN
            EXECUTE format(
                'ALTER TABLE %s SET (timescaledb.compress, timescaledb.compress_segmentby = %L, '
                'timescaledb.compress_orderby = %L)', tbl, segment_by, time_col || ' DESC');
        END IF;
    ELSE
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING brin (%I) WITH (pages_per_range = 32)',
                       replace(tbl, '.', '_') || '_' || time_col || '_brin', tbl, time_col);
    END IF;
END
$$;

-- The rollup's SELECT, optionally limited to source rows at or after a time.
CREATE FUNCTION mebuku.rollup_select(r mebuku.rollups, since_expr text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    bucket text := CASE WHEN r.bucket_tz IS NULL
        THEN format('time_bucket(%L::interval, %I)', r.bucket_width, r.time_column)
        ELSE format('time_bucket(%L::interval, %I, %L)', r.bucket_width, r.time_column, r.bucket_tz)
    END;
    groups text := CASE WHEN r.group_by = '' THEN '' ELSE ', ' || r.group_by END;
BEGIN
    RETURN format('SELECT %s AS bucket%s, %s FROM %s %s GROUP BY %s%s',
                  bucket, groups, r.aggregates, r.source,
                  CASE WHEN since_expr IS NULL THEN ''
                       ELSE format('WHERE %I >= (%s)', r.time_column, since_expr) END,
                  bucket, groups);
END
$$;

-- Create a rollup named `name` with columns (bucket, <group_by>, <aggregates>).
-- On TimescaleDB: a continuous aggregate with materialized_only = false and a refresh
-- policy. On plain PostgreSQL: `<name>_mat` (materialized view, refreshed by
-- `mebuku db maintain`) behind a view `<name>` that adds buckets newer than the
-- watermark from the raw table, which is what real-time aggregation does.
CREATE FUNCTION mebuku.create_rollup(
    name text, source text, time_col text, bucket_width interval, aggregates text,
    group_by text DEFAULT '', bucket_tz text DEFAULT NULL,
    start_offset interval DEFAULT NULL, end_offset interval DEFAULT interval '0',
    schedule interval DEFAULT interval '5 minutes'
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r mebuku.rollups;
BEGIN
    INSERT INTO mebuku.rollups (name, source, time_column, bucket_width, bucket_tz, group_by,
                                aggregates, start_offset, end_offset, schedule)
    VALUES (name, source, time_col, bucket_width, bucket_tz, group_by, aggregates,
            start_offset, end_offset, schedule)
    RETURNING * INTO r;
    IF mebuku.timescale_enabled() THEN
        EXECUTE format('CREATE MATERIALIZED VIEW %I WITH (timescaledb.continuous, '
                       'timescaledb.materialized_only = false) AS %s WITH NO DATA',
                       name, mebuku.rollup_select(r));
        PERFORM add_continuous_aggregate_policy(name::regclass,
            start_offset => start_offset, end_offset => end_offset,
            schedule_interval => schedule, if_not_exists => true);
    ELSE
        EXECUTE format('CREATE MATERIALIZED VIEW %I AS %s WITH DATA',
                       name || '_mat', mebuku.rollup_select(r));
        EXECUTE format(
            'CREATE VIEW %I AS SELECT * FROM %I WHERE bucket < '
            '(SELECT watermark FROM mebuku.rollups WHERE name = %L) '
            'UNION ALL SELECT * FROM (%s) live',
            name, name || '_mat', name,
            mebuku.rollup_select(r, format(
                'SELECT watermark FROM mebuku.rollups WHERE name = %L', name)));
    END IF;
END
$$;

-- Plain PostgreSQL: rematerialize a rollup and move its watermark to the start of the
-- bucket holding now() - end_offset. No-op on TimescaleDB (policies refresh there).
CREATE FUNCTION mebuku.refresh_rollup(rollup_name text) RETURNS timestamptz
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
    RETURN wm;
END
$$;
