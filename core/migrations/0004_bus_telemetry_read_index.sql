-- Readers that follow new telemetry in commit-clock order (the mobility worker pages by
-- (received_at, vehicle_id, ts) and sweeps a short window behind its cursor) need this
-- index, or every poll sorts or scans the table. Ingest writes by primary key only.
CREATE INDEX IF NOT EXISTS bus_telemetry_received_at_key
    ON bus_telemetry (received_at, vehicle_id, ts);
