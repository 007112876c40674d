-- The shared time-series tables. Ingest writes them; mobility and fiveg read them.
-- received_at is the commit-side clock, used for publish-to-queryable lag and for
-- spotting devices whose clocks are wrong.

CREATE TABLE bus_telemetry (
    vehicle_id   text        NOT NULL,
    ts           timestamptz NOT NULL,
    seq          bigint,
    lat          double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon          double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    speed_mps    real        CHECK (speed_mps >= 0),
    heading_deg  real        CHECK (heading_deg >= 0 AND heading_deg < 360),
    odometer_m   double precision CHECK (odometer_m >= 0),
    mode         text        CHECK (mode IN ('autonomous', 'manual', 'remote')),
    door_open    boolean,
    passengers   smallint    CHECK (passengers >= 0),
    trip_id      text,
    route_id     text,
    soc_pct      real        CHECK (soc_pct BETWEEN 0 AND 100),
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, ts)
);
SELECT mebuku.make_timeseries('bus_telemetry', 'ts', 'vehicle_id', interval '1 day');

CREATE TABLE bus_events (
    vehicle_id   text        NOT NULL,
    ts           timestamptz NOT NULL,
    type         text        NOT NULL,
    cause        text,
    detail       jsonb,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vehicle_id, ts, type)
);
SELECT mebuku.make_timeseries('bus_events', 'ts', 'vehicle_id', interval '7 days');

CREATE TABLE fiveg_radio (
    site_id      text        NOT NULL,
    device_id    text        NOT NULL,
    ts           timestamptz NOT NULL,
    rsrp_dbm     real CHECK (rsrp_dbm BETWEEN -156 AND -31),
    rsrq_db      real CHECK (rsrq_db BETWEEN -43 AND 20),
    sinr_db      real CHECK (sinr_db BETWEEN -23 AND 40),
    dl_mbps      real CHECK (dl_mbps >= 0),
    ul_mbps      real CHECK (ul_mbps >= 0),
    rtt_ms       real CHECK (rtt_ms >= 0),
    jitter_ms    real CHECK (jitter_ms >= 0),
    loss_pct     real CHECK (loss_pct BETWEEN 0 AND 100),
    cell_id      text,
    pci          integer CHECK (pci BETWEEN 0 AND 1007),
    band         text,
    lat          double precision CHECK (lat BETWEEN -90 AND 90),
    lon          double precision CHECK (lon BETWEEN -180 AND 180),
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
);
SELECT mebuku.make_timeseries('fiveg_radio', 'ts', 'device_id', interval '1 day');

-- One row per resolved SenML record (RFC 8428 section 4.6): exactly one of the value
-- columns is set; `sum` may come with or without a value.
CREATE TABLE fiveg_sensor (
    site_id      text        NOT NULL,
    device_id    text        NOT NULL,
    name         text        NOT NULL,
    ts           timestamptz NOT NULL,
    unit         text,
    value        double precision,
    value_string text,
    value_bool   boolean,
    value_data   text,
    sum          double precision,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, name, ts)
);
SELECT mebuku.make_timeseries('fiveg_sensor', 'ts', 'device_id', interval '7 days');

-- Dead letter: every message that could not be stored, with the reason. A plain table
-- (low volume; its dedup key is the payload digest, which a hypertable could not enforce).
CREATE TABLE ingest_rejects (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    topic          text        NOT NULL,
    payload        bytea       NOT NULL,
    payload_sha256 bytea       NOT NULL,
    reason         text        NOT NULL,
    UNIQUE (topic, payload_sha256)
);
CREATE INDEX ingest_rejects_received_at ON ingest_rejects (received_at);
