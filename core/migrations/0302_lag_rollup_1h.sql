-- The commit-lag histogram per hour, for long ranges (issue 14, item 4).
--
-- bus_telemetry_lag_1m keeps ~45 bins a minute: a week is ~450,000 rows, 1-2 s to read.
-- bus_telemetry_lag_1h: per hour of the reading (bucket), hour of the commit (date_bin)
-- and lag bin (the same bins), the fixes and their summed lag, rolled up from the minute
-- rollup (a hierarchical continuous aggregate on TimescaleDB; a rollup of the minute view
-- on plain PostgreSQL). The lag panels read it when the range is longer than 6 hours.

SELECT mebuku.create_rollup(
    'bus_telemetry_lag_1h', 'bus_telemetry_lag_1m', 'bucket', interval '1 hour',
    'sum(n)::bigint AS n, sum(sum_lag_s) AS sum_lag_s',
    $g$date_bin('1 hour', date_bin, timestamptz '2000-01-03'), width_bucket$g$);

DO $$
BEGIN
    IF NOT mebuku.timescale_enabled() THEN
        CREATE INDEX bus_telemetry_lag_1h_mat_bucket ON bus_telemetry_lag_1h_mat (bucket);
    END IF;
END
$$;
