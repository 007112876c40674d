-- 5G device heartbeats (issue 12): maebashi/5g/{site_id}/{device_id}/status, one row per
-- heartbeat, written by the ingestor like the other shared time series (ingest/streams.py).
-- The council dashboard shows device availability from it.

CREATE TABLE fiveg_device_status (
    site_id      text        NOT NULL,
    device_id    text        NOT NULL,
    ts           timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN ('ok', 'degraded', 'fault')),
    battery_pct  real        CHECK (battery_pct BETWEEN 0 AND 100),
    firmware     text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
);
SELECT mebuku.make_timeseries('fiveg_device_status', 'ts', 'device_id', interval '7 days');
