-- mobility.fares (issue 11, items 3 and 4): closed settlement periods with their statements
-- stored byte for byte, a ledger that refuses entries into a closed period, card disputes
-- resolved by city staff with an append-only audit trail.

-- A closed month. Append-only: no service role can reopen it (UPDATE/DELETE/TRUNCATE raise).
CREATE TABLE fare_closed_periods (
    period      date        PRIMARY KEY CHECK (extract(day FROM period) = 1),
    closed_at   timestamptz NOT NULL DEFAULT now(),
    closed_by   text        NOT NULL,
    statements  integer     NOT NULL,
    lines       integer     NOT NULL,
    total_yen   bigint      NOT NULL
);

-- The statements of a closed month exactly as issued (CSV and JSON per operator) and the
-- SHA-256 of each; re-issuing a closed month serves these bytes and checks the digest.
CREATE TABLE fare_closed_statements (
    period       date    NOT NULL REFERENCES fare_closed_periods,
    operator_id  text    NOT NULL,
    format       text    NOT NULL CHECK (format IN ('csv', 'json')),
    body         bytea   NOT NULL,
    sha256       bytea   NOT NULL CHECK (length(sha256) = 32),
    lines        integer NOT NULL,
    total_yen    bigint  NOT NULL,
    PRIMARY KEY (period, operator_id, format),
    CHECK (sha256 = sha256(body))
);

CREATE TRIGGER fare_closed_periods_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON fare_closed_periods
    FOR EACH STATEMENT EXECUTE FUNCTION fare_append_only();
CREATE TRIGGER fare_closed_statements_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON fare_closed_statements
    FOR EACH STATEMENT EXECUTE FUNCTION fare_append_only();

-- Backstop for the ledger code (which places late entries in the next open period): no
-- entry can ever land in a closed period. Every writer also holds the period lock (advisory
-- key 1835360885 = mobility.fares.ledger.PERIOD_LOCK) shared until it commits, so closing a
-- month (which takes it exclusively) waits for entries in flight.
CREATE FUNCTION fare_ledger_open_period() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1835360885);
    IF EXISTS (SELECT 1 FROM fare_closed_periods WHERE period = NEW.period) THEN
        RAISE EXCEPTION 'settlement period % is closed: post to the next open period',
            to_char(NEW.period, 'YYYY-MM') USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER fare_ledger_open_period BEFORE INSERT ON fare_ledger
    FOR EACH ROW EXECUTE FUNCTION fare_ledger_open_period();

-- Cards: staff can end a disputed link ('reassigned'), which frees the card for its holder.
ALTER TABLE fare_ic_cards DROP CONSTRAINT fare_ic_cards_status_check;
ALTER TABLE fare_ic_cards ADD CONSTRAINT fare_ic_cards_status_check
    CHECK (status IN ('active', 'unlinked', 'lost', 'reassigned'));

-- Every staff action on a card link, with who, when and why. Append-only.
CREATE TABLE fare_card_audit (
    audit_id       bigserial   PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    staff          text        NOT NULL,
    action         text        NOT NULL CHECK (action IN ('reassign', 'unlink')),
    idm_hash       bytea       NOT NULL,
    ended_card_id  bigint      REFERENCES fare_ic_cards,
    from_resident  bigint      REFERENCES fare_residents,
    to_resident    bigint      REFERENCES fare_residents,
    new_card_id    bigint      REFERENCES fare_ic_cards,
    reason         text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500)
);
CREATE INDEX fare_card_audit_card ON fare_card_audit (idm_hash, audit_id);
CREATE TRIGGER fare_card_audit_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON fare_card_audit
    FOR EACH STATEMENT EXECUTE FUNCTION fare_append_only();

-- Plausibility: taps and rides of one resident close in time.
CREATE INDEX fare_bus_taps_resident ON fare_bus_taps (resident_id, tap_on_at)
    WHERE resident_id IS NOT NULL;
