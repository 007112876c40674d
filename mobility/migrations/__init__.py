"""The GTFS, vehicle and tracking tables, applied by ``mebuku db migrate``."""
