-- Resident session tokens (core/sessions.py): opaque random tokens, stored as SHA-256
-- digests only, with expiry and revocation. resident_id refers to the fares package's
-- residents; no foreign key, so core does not depend on a domain's tables.
CREATE TABLE auth_sessions (
    token_hash   bytea PRIMARY KEY,
    resident_id  bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX auth_sessions_resident ON auth_sessions (resident_id);
