"""The 5G trial tables, views and rollups, applied by ``mebuku db migrate``."""
