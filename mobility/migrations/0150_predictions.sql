-- Arrival predictions (issue 15): what the engine learns from the stored stop events.
--
-- mobility_prediction_obs: one row per observed segment run (departure from a stop to the
-- arrival at the next stop of the same trip) or dwell, derived incrementally from
-- vehicle_events by mobility.predictions.store.refresh (the watermark says how far).
-- mobility_prediction_stats: per route, direction, segment or stop, weekday/weekend and
-- Asia/Tokyo hour: count, median and 10th/90th percentiles over the last 8 weeks, and the
-- median observed / timetable ratio; the cells touched by a refresh are recomputed.

CREATE TABLE mobility_prediction_obs (
    kind         text NOT NULL CHECK (kind IN ('travel', 'dwell')),
    vehicle_id   text NOT NULL,
    ts           timestamptz NOT NULL,  -- departure (travel) or arrival (dwell)
    route_id     text NOT NULL,
    direction_id integer NOT NULL,      -- -1 when the trip has none
    stop_id      text NOT NULL,
    to_stop_id   text NOT NULL DEFAULT '',
    day_type     smallint NOT NULL,     -- 0 weekday, 1 Saturday/Sunday
    band         smallint NOT NULL,     -- Asia/Tokyo hour
    seconds      double precision NOT NULL,
    scheduled_s  double precision,
    held         boolean NOT NULL DEFAULT false,
    inserted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, vehicle_id, ts, stop_id)
);
CREATE INDEX mobility_prediction_obs_cell
    ON mobility_prediction_obs (kind, route_id, direction_id, stop_id, to_stop_id, day_type, band);
CREATE INDEX mobility_prediction_obs_ts ON mobility_prediction_obs (ts);

CREATE TABLE mobility_prediction_stats (
    kind         text NOT NULL CHECK (kind IN ('travel', 'dwell')),
    route_id     text NOT NULL,
    direction_id integer NOT NULL,
    stop_id      text NOT NULL,
    to_stop_id   text NOT NULL DEFAULT '',
    day_type     smallint NOT NULL,
    band         smallint NOT NULL,
    n            integer NOT NULL,
    median_s     double precision NOT NULL,
    p10_s        double precision NOT NULL,
    p90_s        double precision NOT NULL,
    ratio        double precision,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, route_id, direction_id, stop_id, to_stop_id, day_type, band)
);

CREATE TABLE mobility_prediction_watermark (
    name       text PRIMARY KEY,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- refresh() reads the events stored since its watermark: created_at grows with the table's
-- physical order, so a BRIN index finds them cheaply (per chunk on TimescaleDB).
CREATE INDEX vehicle_events_created_at ON vehicle_events USING brin (created_at)
    WITH (pages_per_range = 32);
