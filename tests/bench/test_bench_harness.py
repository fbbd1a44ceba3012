"""The benchmarks' shared pieces: payloads the service accepts, the publisher process, ring-buffer jobs, padding.

The benchmark scripts themselves are run by hand (their figures go to the README); these tests check that the
pieces they are built from do what the scripts assume, with real values and a real broker, and no timings.
"""

from __future__ import annotations

import json

import numpy as np

from benchmarks._harness import SENSORS, _payload, normal_signal, publisher_result, start_publisher, unit_names
from monitor.ingest import Parser
from monitor.messages import Reading
from tests.kit import Broker


def test_payload_is_a_valid_readings_message_for_the_service() -> None:
    row = [350.25, 300.5, 0.51234, 6.125, 295.0, 12.5, 2.00001, 1.5]
    parser = Parser({"u0000": SENSORS}, readings_template="plant/{unit}/readings", sensor_template=None)
    reading = parser.parse("plant/u0000/readings", _payload(1_700_000_000.5, row), received_at=1_700_000_001.0)
    assert isinstance(reading, Reading)
    assert reading.ts == 1_700_000_000.5
    assert list(reading.values) == list(SENSORS)
    assert list(reading.values.values()) == row


def test_normal_signal_shape_and_unit_phases_differ() -> None:
    values = normal_signal(np.arange(120, dtype=np.float64), np.array([0.0, 7.31]))
    assert values.shape == (120, 2, len(SENSORS))
    assert np.isfinite(values).all()
    assert not np.allclose(values[:, 0], values[:, 1])
    # the same seed gives the same noise: the publisher and the training data agree run to run
    assert np.array_equal(values, normal_signal(np.arange(120, dtype=np.float64), np.array([0.0, 7.31])))


def test_flood_publisher_delivers_every_row_in_order(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/plant/+/readings")
    proc = start_publisher(
        {
            "mode": "flood",
            "port": mosquitto.port,
            "units": 3,
            "rows": 4,
            "qos": 1,
            "topic": f"{unique_prefix}/plant/{{unit}}/readings",
            "t0": 1_700_000_000.0,
        }
    )
    result = publisher_result(proc, timeout_s=60)
    assert result["published"] == 12
    messages = recorder.wait_for(count=12, timeout_s=20)
    for unit in unit_names(3):
        stamps = [m.json()["ts"] for m in messages if m.topic == f"{unique_prefix}/plant/{unit}/readings"]
        assert stamps == [1_700_000_000.0 + r for r in range(4)]
    body = json.loads(messages[0].payload)
    assert sorted(body["values"]) == sorted(SENSORS)
