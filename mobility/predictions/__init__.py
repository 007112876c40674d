"""Arrival predictions: learned travel and dwell times, a pure engine, its evaluation."""
