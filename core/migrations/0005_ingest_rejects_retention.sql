-- Retention of the dead-letter table (MEBUKU_REJECT_RETENTION_DAYS, default 30 days).
-- ingest_rejects is a plain table on both paths (its dedup key is the payload digest,
-- which a hypertable could not enforce), so no TimescaleDB retention policy applies to
-- it: `mebuku db maintain` calls mebuku.expire_ingest_rejects(), and on TimescaleDB
-- `mebuku db migrate` also schedules mebuku.expire_ingest_rejects_job hourly
-- (core/timeseries.py), so a deployment that never runs maintain stays bounded too.

CREATE FUNCTION mebuku.expire_ingest_rejects(keep_days integer) RETURNS bigint
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
    WITH gone AS (
        DELETE FROM ingest_rejects
        WHERE keep_days > 0 AND received_at < now() - make_interval(days => keep_days)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

-- The signature TimescaleDB's job scheduler calls (add_job); config {"keep_days": N}.
CREATE PROCEDURE mebuku.expire_ingest_rejects_job(job_id integer, config jsonb)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM mebuku.expire_ingest_rejects(coalesce((config->>'keep_days')::integer, 0));
END
$$;
