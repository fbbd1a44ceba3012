"""MQTT payloads: what a gateway (or the simulator) sends, and the scores, forecast and status payloads the service
publishes. UTF-8 JSON.

Input (monitor.ingest parses and validates them; its checks are the contract's fine print)::

    readings    {"ts": 1732590000.25, "values": {"temperature": 351.2, "pressure": 5.1}}
    per sensor  {"ts": 1732590000.25, "value": 351.2}, or a bare number
    ``ts``: event time, epoch seconds or ISO 8601 with a zone (monitor.wire.timestamps); missing: the receive time.

Output (``"schema": PAYLOAD_SCHEMA`` in each; alert events and alert state: monitor.alerts)::

    scores      {"schema", "unit", "ts", "scores": {detector: {"score", "threshold" (in force),
                 "calibrated_threshold", "model", "sensors": {sensor: error}}}}
    forecast    {"schema", "unit", "model", "ts", "period_s", "sensors", "values": [H][S] in sensor units}
    status      b"online" / b"offline" (retained; offline is also the will)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

# The version of every JSON payload the service publishes (alerts, alert state, scores, forecasts): a reader
# refuses another version rather than misreading it.
PAYLOAD_SCHEMA = 1
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"


def encode_readings(ts: float, values: Mapping[str, float]) -> bytes:
    """One row of a unit: the per-unit ``readings`` payload (ValueError on a non-finite value)."""
    return json.dumps({"ts": ts, "values": dict(values)}, allow_nan=False).encode()


def encode_sensor_value(ts: float, value: float) -> bytes:
    """One reading of one sensor: the per-sensor payload (ValueError on a non-finite value)."""
    return json.dumps({"ts": ts, "value": value}, allow_nan=False).encode()


def score_entry(
    score: float, threshold: float, calibrated_threshold: float, model: str, sensors: Mapping[str, float]
) -> dict[str, Any]:
    """One detector's part of a scores payload: ``threshold`` is the one in force, ``calibrated_threshold`` the
    artifact's, ``sensors`` each sensor's error."""
    return {
        "score": score,
        "threshold": threshold,
        "calibrated_threshold": calibrated_threshold,
        "model": model,
        "sensors": dict(sensors),
    }


def encode_scores(unit: str, ts: float, scores: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The ``<prefix>/scores/{unit}`` payload of one scored row: {detector: score_entry(...)}."""
    return json.dumps({"schema": PAYLOAD_SCHEMA, "unit": unit, "ts": ts, "scores": dict(scores)}).encode()


def encode_forecast(
    unit: str, model: str, ts: float, period_s: float, sensors: Sequence[str], values: Sequence[Sequence[float]]
) -> bytes:
    """The ``<prefix>/forecast/{unit}`` payload: ``values`` [H][S], step h targets ts + h * period_s."""
    body = {
        "schema": PAYLOAD_SCHEMA,
        "unit": unit,
        "model": model,
        "ts": ts,
        "period_s": period_s,
        "sensors": list(sensors),
        "values": [list(row) for row in values],
    }
    return json.dumps(body).encode()
