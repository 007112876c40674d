-- Rollups behind the Grafana panels that used to scan raw rows (issue 14, item 4;
-- bench/panels_bench.py, docs/benchmarks.md "Grafana panels").
--
-- <stream table>_commits_1m: per minute of the reading (bucket) and minute of the commit
--   (date_bin of received_at), the rows: "rows stored per minute", the reject share and
--   "messages stored" stay exact counts whichever clock they group by.
-- bus_telemetry_1m: per vehicle, minute and driving mode: fixes, latest fix, speed sum,
--   commit-lag sum and the odometer span (per-vehicle and fleet panels, exact sums).
-- bus_telemetry_lag_1m: per minute of the reading, minute of the commit and commit-lag
--   bin, the fixes and their summed lag (lag percentiles; the mean stays exact). Bins are
--   40 a decade from 1 ms to 10,000 s: width_bucket(log10(lag_s), -3, 4, 280); bin 0
--   holds lags under 1 ms, including negative ones (clocks ahead of the broker).
--   grafana.bus_telemetry_lag_1m shows each bin as its geometric centre (lag_s), so a
--   percentile read from it is within 2.9 % of the exact one.
-- date_bin, not a second time_bucket: a continuous aggregate allows one time_bucket.

SELECT mebuku.create_rollup(t || '_commits_1m', t, 'ts', interval '1 minute', 'count(*) AS n',
                            $g$date_bin('1 minute', received_at, timestamptz '2000-01-03')$g$)
FROM unnest(ARRAY['bus_telemetry', 'bus_events', 'fiveg_radio', 'fiveg_sensor',
                  'fiveg_device_status']) t;

SELECT mebuku.create_rollup(
    'bus_telemetry_1m', 'bus_telemetry', 'ts', interval '1 minute',
    $agg$count(*) AS n,
    max(ts) AS last_ts,
    count(speed_mps) AS n_speed, sum(speed_mps::double precision) AS sum_speed_mps,
    sum(extract(epoch FROM received_at - ts))::double precision AS sum_lag_s,
    min(odometer_m) AS min_odometer_m, max(odometer_m) AS max_odometer_m$agg$,
    'vehicle_id, mode');

SELECT mebuku.create_rollup(
    'bus_telemetry_lag_1m', 'bus_telemetry', 'ts', interval '1 minute',
    'count(*) AS n, sum(extract(epoch FROM received_at - ts))::double precision AS sum_lag_s',
    $g$date_bin('1 minute', received_at, timestamptz '2000-01-03'),
    width_bucket(log(greatest(extract(epoch FROM received_at - ts), 0.0001)::double precision),
                 -3, 4, 280)$g$);

-- Plain PostgreSQL: index the materialized halves (REFRESH keeps indexes).
DO $$
DECLARE
    r text;
BEGIN
    IF NOT mebuku.timescale_enabled() THEN
        FOREACH r IN ARRAY ARRAY['bus_telemetry_commits_1m', 'bus_events_commits_1m',
                                 'fiveg_radio_commits_1m', 'fiveg_sensor_commits_1m',
                                 'fiveg_device_status_commits_1m', 'bus_telemetry_1m',
                                 'bus_telemetry_lag_1m'] LOOP
            EXECUTE format('CREATE INDEX %I ON %I (bucket)', r || '_mat_bucket', r || '_mat');
        END LOOP;
        CREATE INDEX bus_telemetry_1m_mat_vehicle ON bus_telemetry_1m_mat (vehicle_id, bucket);
    END IF;
END
$$;
