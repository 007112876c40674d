-- Local-5G trial registry: trials, their devices and their targets.
-- Sites, gNBs and radio configuration are descriptive and kept as jsonb on the trial;
-- devices and targets are rows because KPI queries join and evaluate them.

CREATE TABLE fiveg_trials (
    trial_id      text PRIMARY KEY CHECK (trial_id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    title         text NOT NULL,
    theme         text NOT NULL CHECK (theme IN ('transport', 'education', 'emergency')),
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    description   text NOT NULL DEFAULT '',
    latency_bound_ms real NOT NULL CHECK (latency_bound_ms > 0),
    radio         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- band, bandwidth_mhz, mode (SA/NSA)
    sites         jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{site_id, name, lat, lon}]
    gnbs          jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{gnb_id, site_id, lat, lon, ...}]
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end > period_start)
);

CREATE TABLE fiveg_trial_devices (
    trial_id   text NOT NULL REFERENCES fiveg_trials ON DELETE CASCADE,
    device_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('phone', 'bus_modem', 'ambulance_modem',
                                             'classroom_cpe', 'sensor', 'other')),
    label      text NOT NULL DEFAULT '',
    PRIMARY KEY (trial_id, device_id)
);
CREATE INDEX fiveg_trial_devices_device ON fiveg_trial_devices (device_id);

CREATE TABLE fiveg_trial_targets (
    trial_id   text NOT NULL REFERENCES fiveg_trials ON DELETE CASCADE,
    kpi        text NOT NULL,
    op         text NOT NULL CHECK (op IN ('>=', '<=')),
    value      double precision NOT NULL,
    unit       text NOT NULL,
    label      text NOT NULL,
    source     text NOT NULL,
    reference  boolean NOT NULL DEFAULT false,  -- shown for comparison, not part of pass/fail
    PRIMARY KEY (trial_id, kpi)
);
