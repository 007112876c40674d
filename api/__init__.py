"""The serving layer: the FastAPI app, credentials and roles, Grafana publishing."""
