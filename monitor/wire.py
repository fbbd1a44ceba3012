"""The MQTT wire format shared by the service and the simulator (no torch, no service code).

Input topics (defaults; the service's templates are configurable):
  plant/{unit}/readings   {"ts": 1732590000.25, "values": {"temperature": 351.2}}
  plant/{unit}/{sensor}   {"ts": 1732590000.25, "value": 351.2}  or a bare number
``ts`` is event time in epoch seconds (or ISO 8601 with a zone).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

READINGS_TOPIC = "plant/{unit}/readings"
SENSOR_TOPIC = "plant/{unit}/{sensor}"
# Ground truth from the simulator, so tests and benchmarks can score detections.
SIM_FAULTS_TOPIC = "plantwatch-sim/faults/{unit}"


def encode_readings(ts: float, values: Mapping[str, float]) -> bytes:
    """One row of a unit: the per-unit `readings` payload."""
    return json.dumps({"ts": ts, "values": dict(values)}, allow_nan=False).encode()


def encode_sensor_value(ts: float, value: float) -> bytes:
    """One reading of one sensor: the per-sensor payload."""
    return json.dumps({"ts": ts, "value": value}, allow_nan=False).encode()
