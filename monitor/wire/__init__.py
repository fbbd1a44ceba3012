"""The formats that cross a boundary between plantwatch's parts, each written once: MQTT topics and payloads,
event time as text, sensor data CSVs and ground-truth label CSVs.

Modules::

    monitor.wire.topics      input topic templates (defaults, matching, subscription filters), the output topics
    monitor.wire.payloads    input payloads (what a gateway or the simulator sends), the scores / forecast /
                             status payloads the service publishes (the scores one read back too), PAYLOAD_SCHEMA
    monitor.wire.timestamps  event time from text: epoch seconds or ISO 8601 (one rule for MQTT and CSV)
    monitor.wire.csvfile     the one reader of sensor CSVs (training, backtest, report, replay)
    monitor.wire.labels      the one ground-truth record (Label) and its CSV (simulator, backtest, report)

Why here: the package imports the standard library and numpy only, nothing else of ``monitor`` and no torch. So
the service, the backtest, ``plantwatch train`` (models) and the simulators (which run on a machine without
torch and import nothing of the service: DESIGN.md's "at most the wire-format module" is this package) all read
and write the same formats from one place. The alert event and alert state payloads are encoded in
monitor.alerts (event_payload, board), as they are the AlertEvent record and the trackers' state; their schema
is PAYLOAD_SCHEMA here.
"""
