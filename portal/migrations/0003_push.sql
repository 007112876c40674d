-- Push notices (issue 17): Web Push subscriptions per resident device, quiet hours, the
-- delivery queue (at-least-once, retried with backoff) and the scanner's cursor.

CREATE TABLE portal_push_subscriptions (
    subscription_id  bigserial   PRIMARY KEY,
    resident_id      bigint      NOT NULL REFERENCES fare_residents,
    endpoint         text        NOT NULL UNIQUE CHECK (endpoint ~ '^https?://' AND length(endpoint) <= 2000),
    p256dh           text        NOT NULL CHECK (length(p256dh) BETWEEN 80 AND 100),
    auth             text        NOT NULL CHECK (length(auth) BETWEEN 16 AND 30),
    lang             text        NOT NULL DEFAULT 'ja' CHECK (lang IN ('ja', 'en')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_ok_at       timestamptz
);
CREATE INDEX portal_push_subscriptions_resident ON portal_push_subscriptions (resident_id);

CREATE TABLE portal_quiet_hours (
    resident_id  bigint PRIMARY KEY REFERENCES fare_residents,
    quiet_from   time   NOT NULL,
    quiet_to     time   NOT NULL
);

-- One row per notice for a resident; dedupe_key makes producing a notice idempotent.
CREATE TABLE portal_push_queue (
    notice_id        bigserial   PRIMARY KEY,
    resident_id      bigint      NOT NULL REFERENCES fare_residents,
    kind             text        NOT NULL,
    dedupe_key       text        NOT NULL UNIQUE,
    params           jsonb       NOT NULL DEFAULT '{}',  -- the notice text is made per device language
    created_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    delivered_at     timestamptz,
    given_up_at      timestamptz,
    last_error       text
);
CREATE INDEX portal_push_queue_due ON portal_push_queue (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;

CREATE TABLE portal_push_cursor (
    name   text        PRIMARY KEY,
    seen   timestamptz NOT NULL
);
