-- Issue 10 (ingest worker): bounded dead letters and a heartbeat the API can read.
--
-- A payload larger than MEBUKU_INGEST_MAX_PAYLOAD_BYTES is refused before parsing; its
-- reject row keeps the first 4 KiB in `payload`, the SHA-256 of the whole payload in
-- `payload_sha256` and the whole size here. NULL only on rows written before this
-- migration, whose `payload` is whole (backfilled below).
ALTER TABLE ingest_rejects ADD COLUMN payload_size bigint;
UPDATE ingest_rejects SET payload_size = octet_length(payload);

-- One row per running ingest worker, written every few seconds on its own connection
-- (so a stuck batch does not stop it). The API's /readyz fails when a row says stalled
-- or has not been updated for longer than its stall window; a worker that stops
-- cleanly deletes its row.
CREATE TABLE ingest_heartbeat (
    worker_id         text PRIMARY KEY,
    updated_at        timestamptz      NOT NULL DEFAULT now(),
    started_at        timestamptz      NOT NULL,
    last_commit_at    timestamptz,
    oldest_unacked_s  double precision NOT NULL DEFAULT 0,
    waiting           integer          NOT NULL DEFAULT 0,
    stalled           boolean          NOT NULL DEFAULT false,
    stall_seconds     double precision NOT NULL,
    reason            text
);
