"""Simulated Maebashi traffic: pure generators of (topic, payload, ground truth) items,
kept apart from the MQTT publisher so other packages' tests can reuse them."""
