"""Local-5G field trials: registry, KPI engine, coverage maps, council dashboard and report."""
