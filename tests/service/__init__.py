"""Service tests: configuration, ingest, MQTT, metrics, scheduler, app, end to end against a real broker."""
