-- issue 11 (card sign-in fails closed): a session remembers which credential opened it, as
-- the same keyed hash the fares package keeps for a card certificate (issuer + serial), so
-- a certificate that appears on a newly loaded CRL ends its sessions at once.
ALTER TABLE auth_sessions ADD COLUMN cert_hash bytea;
CREATE INDEX auth_sessions_live_cert ON auth_sessions (cert_hash)
    WHERE revoked_at IS NULL AND cert_hash IS NOT NULL;
