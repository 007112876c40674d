-- The resident portal (issue 17): notice opt-ins per type and the stops a resident saved.
-- Delivery (Web Push subscriptions and the queue) comes in a later migration.

CREATE TABLE portal_notice_prefs (
    resident_id    bigint      NOT NULL REFERENCES fare_residents,
    kind           text        NOT NULL
        CHECK (kind IN ('rides-nearly-used', 'ride-receipt', 'lost-card-presented', 'bus-late')),
    enabled        boolean     NOT NULL DEFAULT false,
    -- rides-nearly-used: notify when this many yearly rides or fewer are left;
    -- bus-late: notify when the saved stop's bus is this many minutes late.
    threshold      integer     CHECK (threshold IS NULL OR threshold BETWEEN 0 AND 120),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resident_id, kind)
);

CREATE TABLE portal_saved_stops (
    resident_id  bigint      NOT NULL REFERENCES fare_residents,
    stop_id      text        NOT NULL CHECK (length(stop_id) BETWEEN 1 AND 200),
    saved_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resident_id, stop_id)
);
