"""SQL migrations of the open-data package (set 50_opendata)."""
