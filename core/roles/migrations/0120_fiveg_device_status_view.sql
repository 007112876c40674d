-- The Grafana role's view of the 5G device heartbeats (issue 12): device data only.
CREATE VIEW grafana.fiveg_device_status AS
SELECT site_id, device_id, ts, status, battery_pct, firmware, received_at
FROM public.fiveg_device_status;
