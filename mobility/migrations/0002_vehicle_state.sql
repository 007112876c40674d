-- Live vehicle state (one row per vehicle, upserted by the mobility worker) and the
-- events it detects (a time series). operator_id is the agency_id of the matched route,
-- which is how operator API keys are scoped.

CREATE TABLE vehicle_state (
    vehicle_id         text PRIMARY KEY,
    ts                 timestamptz NOT NULL,
    lat                double precision NOT NULL,
    lon                double precision NOT NULL,
    speed_mps          real,
    heading_deg        real,
    mode               text,
    status             text NOT NULL
        CHECK (status IN ('in_transit', 'stopped_at', 'off_route', 'layover', 'offline')),
    trip_id            text,
    route_id           text,
    direction_id       integer,
    service_date       date,
    operator_id        text,
    dist_along_m       double precision,
    offset_m           double precision,
    next_stop_id       text,
    next_stop_sequence integer,
    delay_s            double precision,
    telemetry_received_at timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicle_state_operator ON vehicle_state (operator_id);

CREATE TABLE vehicle_events (
    vehicle_id     text        NOT NULL,
    ts             timestamptz NOT NULL,
    type           text        NOT NULL CHECK (type IN ('arrival', 'departure', 'off_route',
                        'on_route', 'overspeed', 'offline', 'online', 'bunching')),
    stop_id        text        NOT NULL DEFAULT '',
    trip_id        text,
    route_id       text,
    direction_id   integer,
    operator_id    text,
    stop_sequence  integer,
    service_date   date,
    scheduled_ts   timestamptz,
    delay_s        double precision,
    dwell_s        double precision,
    detail         jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, ts, type, stop_id)
);
SELECT mebuku.make_timeseries('vehicle_events', 'ts', 'vehicle_id', interval '7 days');
CREATE INDEX vehicle_events_route_ts ON vehicle_events (route_id, ts);
CREATE INDEX vehicle_events_operator_ts ON vehicle_events (operator_id, ts);

-- Where the worker has read bus_telemetry up to (received_at), so a restart resumes.
CREATE TABLE mobility_worker_cursor (
    name        text PRIMARY KEY,
    received_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Daily (Asia/Tokyo) figures per route from departures: continuous aggregate on
-- TimescaleDB, materialized view + live tail on plain PostgreSQL. The on-time window
-- here is the default -1/+5 minutes; other windows are computed from vehicle_events by
-- mobility.analytics.
SELECT mebuku.create_rollup(
    'mobility_route_daily', 'vehicle_events', 'ts', interval '1 day',
    $agg$count(*) FILTER (WHERE type = 'departure') AS departures,
         count(*) FILTER (WHERE type = 'departure' AND delay_s >= -60 AND delay_s <= 300)
             AS on_time,
         avg(delay_s) FILTER (WHERE type = 'departure') AS mean_delay_s,
         max(delay_s) FILTER (WHERE type = 'departure') AS max_delay_s,
         avg(dwell_s) FILTER (WHERE type = 'departure') AS mean_dwell_s,
         count(*) FILTER (WHERE type = 'bunching') AS bunching,
         count(*) FILTER (WHERE type = 'off_route') AS off_route$agg$,
    'route_id, operator_id', 'Asia/Tokyo', NULL, interval '1 hour', interval '15 minutes'
);
