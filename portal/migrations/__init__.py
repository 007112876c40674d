"""SQL migrations of the resident portal (set 60_portal)."""
