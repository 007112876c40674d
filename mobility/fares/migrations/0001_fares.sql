-- mobility.fares: residents (pseudonymous), certificates, sign-in challenges, eligibility
-- facts, IC cards, ride and tap records, and the append-only subsidy ledger.
-- No personal identifier is stored in the clear: certificate issuer+serial and card IDm are
-- keyed hashes (core.pseudonym); cards keep only their last 4 hex digits for display.

CREATE TABLE fare_residents (
    resident_id  bigserial PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fare_resident_certs (
    cert_hash    bytea PRIMARY KEY,
    resident_id  bigint      NOT NULL REFERENCES fare_residents,
    not_after    timestamptz NOT NULL,
    linked_at    timestamptz NOT NULL DEFAULT now(),
    linked_by    text        NOT NULL
);
CREATE INDEX fare_resident_certs_resident ON fare_resident_certs (resident_id);

CREATE TABLE fare_auth_challenges (
    nonce       bytea PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX fare_auth_challenges_expiry ON fare_auth_challenges (expires_at);

-- Append-only: corrections are new rows (the latest fact of a kind wins).
CREATE TABLE fare_eligibility_facts (
    fact_id      bigserial PRIMARY KEY,
    resident_id  bigint      NOT NULL REFERENCES fare_residents,
    kind         text        NOT NULL,
    value        text        NOT NULL,
    valid_from   date,
    valid_to     date,
    recorded_by  text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    note         text        NOT NULL DEFAULT ''
);
CREATE INDEX fare_eligibility_facts_resident ON fare_eligibility_facts (resident_id, fact_id);

CREATE TABLE fare_ic_cards (
    card_id      bigserial PRIMARY KEY,
    idm_hash     bytea       NOT NULL,
    last4        text        NOT NULL CHECK (last4 ~ '^[0-9A-F]{4}$'),
    resident_id  bigint      NOT NULL REFERENCES fare_residents,
    status       text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unlinked', 'lost')),
    linked_at    timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
-- A card belongs to at most one resident; a card reported lost stays blocked.
CREATE UNIQUE INDEX fare_ic_cards_one_owner ON fare_ic_cards (idm_hash)
    WHERE status IN ('active', 'lost');
CREATE INDEX fare_ic_cards_resident ON fare_ic_cards (resident_id);

CREATE TABLE fare_taxi_rides (
    operator_id     text        NOT NULL,
    record_id       text        NOT NULL,
    vehicle_id      text        NOT NULL,
    pickup_at       timestamptz NOT NULL,
    dropoff_at      timestamptz NOT NULL,
    pickup_lon      double precision NOT NULL,
    pickup_lat      double precision NOT NULL,
    dropoff_lon     double precision NOT NULL,
    dropoff_lat     double precision NOT NULL,
    meter_fare_yen  integer     NOT NULL CHECK (meter_fare_yen >= 0),
    riders          integer     NOT NULL,
    flags           text[]      NOT NULL DEFAULT '{}',
    policy_version  text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator_id, record_id)
);
CREATE INDEX fare_taxi_rides_pickup ON fare_taxi_rides (operator_id, pickup_at);

CREATE TABLE fare_taxi_riders (
    operator_id  text        NOT NULL,
    record_id    text        NOT NULL,
    position     integer     NOT NULL,
    idm_hash     bytea       NOT NULL,
    resident_id  bigint,
    pickup_at    timestamptz NOT NULL,
    dropoff_at   timestamptz NOT NULL,
    subsidy_yen  integer     NOT NULL,
    reason       text        NOT NULL,
    PRIMARY KEY (operator_id, record_id, position),
    FOREIGN KEY (operator_id, record_id) REFERENCES fare_taxi_rides
);
CREATE INDEX fare_taxi_riders_card ON fare_taxi_riders (idm_hash, pickup_at);

CREATE TABLE fare_bus_taps (
    operator_id     text        NOT NULL,
    record_id       text        NOT NULL,
    route_id        text        NOT NULL,
    origin_stop_id  text        NOT NULL,
    dest_stop_id    text        NOT NULL,
    tap_on_at       timestamptz NOT NULL,
    tap_off_at      timestamptz NOT NULL,
    idm_hash        bytea       NOT NULL,
    resident_id     bigint,
    fare_yen        integer     NOT NULL,
    discount_yen    integer     NOT NULL,
    discount        text,
    flags           text[]      NOT NULL DEFAULT '{}',
    policy_version  text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator_id, record_id)
);

-- The ledger: what the city owes each operator. Append-only; a correction is a reversal
-- row (negative amount, reverses = the entry it cancels). period = the month the entry is
-- settled in (Japan time): the ride's month for subsidies, the posting month for reversals.
CREATE TABLE fare_ledger (
    entry_id        bigserial PRIMARY KEY,
    posted_at       timestamptz NOT NULL DEFAULT now(),
    period          date        NOT NULL,
    operator_id     text        NOT NULL,
    source          text        NOT NULL CHECK (source IN ('taxi', 'bus')),
    record_id       text        NOT NULL,
    resident_id     bigint      NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('mytaku', 'bus_discount', 'reversal')),
    amount_yen      integer     NOT NULL,
    ride_at         timestamptz NOT NULL,
    service_day     date        NOT NULL,
    fiscal_year     integer     NOT NULL,
    policy_version  text        NOT NULL,
    reverses        bigint      UNIQUE REFERENCES fare_ledger,
    note            text        NOT NULL DEFAULT '',
    CHECK ((kind = 'reversal') = (reverses IS NOT NULL)),
    CHECK ((kind = 'reversal' AND amount_yen <= 0) OR (kind <> 'reversal' AND amount_yen >= 0))
);
CREATE INDEX fare_ledger_resident_fy ON fare_ledger (resident_id, fiscal_year, kind);
CREATE INDEX fare_ledger_settlement ON fare_ledger (period, operator_id);
CREATE INDEX fare_ledger_record ON fare_ledger (operator_id, source, record_id);
CREATE INDEX fare_ledger_posted ON fare_ledger (posted_at);

CREATE FUNCTION fare_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: add a correcting row instead', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER fare_ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON fare_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION fare_append_only();
CREATE TRIGGER fare_eligibility_facts_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON fare_eligibility_facts
    FOR EACH STATEMENT EXECUTE FUNCTION fare_append_only();
