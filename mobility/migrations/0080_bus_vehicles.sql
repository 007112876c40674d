-- The bus vehicle registry: which vehicle ids may publish telemetry (issue 11, item 6).
-- `mebuku broker acl` gives each active vehicle exactly maebashi/bus/{vehicle_id}/telemetry
-- and /event; the id is its broker user name, so it must be safe as one topic level.

CREATE TABLE mobility_vehicles (
    vehicle_id    text PRIMARY KEY CHECK (vehicle_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    operator_id   text NOT NULL CHECK (operator_id ~ '^\S{1,64}$'),
    label         text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    registered_at timestamptz NOT NULL DEFAULT now(),
    retired_at    timestamptz
);
CREATE INDEX mobility_vehicles_operator ON mobility_vehicles (operator_id);
