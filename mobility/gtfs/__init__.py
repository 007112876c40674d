"""Static GTFS / GTFS-JP feeds: parsing and validation (pure), versioned import (COPY),
fare lookups and the per-trip geometry the vehicle tracker needs."""
