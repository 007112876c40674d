-- The ingest stall panel (issue 10) reads each worker's heartbeat through the grafana
-- schema like every other panel: worker ids and timings only, nothing personal.
CREATE VIEW grafana.ingest_heartbeat AS
SELECT worker_id, updated_at, started_at, last_commit_at, oldest_unacked_s, waiting, stalled,
       stall_seconds, reason
FROM public.ingest_heartbeat;
