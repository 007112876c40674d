"""Core's own SQL migrations (time-series support and the shared time-series tables)."""
