"""The grafana.* views and grants, run after every domain's tables exist."""
