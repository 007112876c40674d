"""Per-route, per-day adherence figures and autonomy KPIs (SQL over vehicle_events,
bus_telemetry and bus_events; days are Asia/Tokyo days)."""
