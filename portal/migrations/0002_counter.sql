-- Counter assistance (issue 17): city staff open a resident's portal view at the counter
-- with the resident's card present. A counter session is time-limited; every step is
-- written to an append-only audit table.

CREATE TABLE portal_counter_sessions (
    token_hash   bytea       PRIMARY KEY,
    staff        text        NOT NULL,          -- "admin:<key id>" of the staff member's key
    resident_id  bigint      REFERENCES fare_residents,  -- set once the card has signed
    started_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz
);
CREATE INDEX portal_counter_sessions_expiry ON portal_counter_sessions (expires_at);

CREATE TABLE portal_counter_audit (
    audit_id     bigserial   PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    staff        text        NOT NULL,
    resident_id  bigint,
    action       text        NOT NULL,
    detail       text        NOT NULL DEFAULT ''
);
CREATE INDEX portal_counter_audit_resident ON portal_counter_audit (resident_id, audit_id);

CREATE FUNCTION portal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER portal_counter_audit_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON portal_counter_audit
    FOR EACH STATEMENT EXECUTE FUNCTION portal_append_only();
