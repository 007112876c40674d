"""Grafana publishing: macro expansion, dashboard build, push and check."""
