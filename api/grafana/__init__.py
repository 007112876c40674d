"""Grafana publishing: dashboard build, push and check (the macro expander the panel tests use
is test code: tests/support/grafana_macros.py)."""
