-- Prediction accuracy as a product feature (issue 15): the predictions the platform
-- issued, sampled once per vehicle, stop and minute (at most 30 minutes ahead), and later
-- scored against the arrival the tracker detected (actual_at, error_s = actual - predicted;
-- negative = the bus came early). Kept as a time series like vehicle_events.

CREATE TABLE mobility_prediction_samples (
    vehicle_id    text        NOT NULL,
    issued_at     timestamptz NOT NULL,  -- the minute the prediction was sampled
    trip_id       text        NOT NULL,
    service_date  date        NOT NULL,
    stop_sequence integer     NOT NULL,
    stop_id       text        NOT NULL,
    route_id      text        NOT NULL,
    predicted_at  timestamptz NOT NULL,
    horizon_s     double precision NOT NULL,
    uncertainty_s integer,
    actual_at     timestamptz,
    error_s       double precision,
    PRIMARY KEY (vehicle_id, issued_at, trip_id, stop_sequence)
);
SELECT mebuku.make_timeseries('mobility_prediction_samples', 'issued_at', 'vehicle_id',
                              interval '7 days');
CREATE INDEX mobility_prediction_samples_open
    ON mobility_prediction_samples (issued_at) WHERE actual_at IS NULL;
CREATE INDEX mobility_prediction_samples_route ON mobility_prediction_samples (route_id, issued_at);
