"""plantwatch service: MQTT ingest, ring buffers, batched scoring, alerts and metrics."""
