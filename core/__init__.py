"""Shared plumbing for Mebuku: settings, logging, database, migrations, time series, CLI."""
