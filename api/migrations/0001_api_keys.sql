-- API keys for operators, council and city staff (api/keys.py). The secret is 256 random
-- bits, so a plain SHA-256 digest is a safe lookup key; the secret itself is never stored.
CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    secret_sha256 bytea       NOT NULL UNIQUE,
    role          text        NOT NULL CHECK (role IN ('operator', 'council', 'admin')),
    operator_id   text,
    label         text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CONSTRAINT api_keys_operator_scope CHECK ((role = 'operator') = (operator_id IS NOT NULL))
);
CREATE INDEX api_keys_operator ON api_keys (operator_id) WHERE operator_id IS NOT NULL;
