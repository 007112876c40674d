"""MQTT ingestion of bus telemetry and local-5G streams, payload parsers and simulators."""
