"""The MQTT sink (monitor/mqtt_sink.py): the bytes it publishes, and the scores payload read back (monitor.wire)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.messages import Forecast
from monitor.mqtt_sink import MqttSink
from monitor.wire.payloads import DetectorScore, ScoredRow, decode_scores, encode_forecast, encode_row

ROW = ScoredRow(
    "R1",
    1732590000.25,
    {
        "reconstruction": DetectorScore(0.5, 1.25, 1.0, "det", {"a": 0.75, "b": 0.25}),
        "sensor": DetectorScore(0.0, 1.0, 1.0, "det", {}),
    },
)


def test_a_scores_payload_has_the_wire_contract_bytes_and_reads_back_as_the_same_row() -> None:
    payload = encode_row(ROW)
    # The exact bytes the service has published since the scores topic exists (json.dumps' default separators).
    assert payload == (
        b'{"schema": 1, "unit": "R1", "ts": 1732590000.25, "scores": {"reconstruction": {"score": 0.5, '
        b'"threshold": 1.25, "calibrated_threshold": 1.0, "model": "det", "sensors": {"a": 0.75, "b": 0.25}}, '
        b'"sensor": {"score": 0.0, "threshold": 1.0, "calibrated_threshold": 1.0, "model": "det", "sensors": {}}}}'
    )
    assert decode_scores(payload) == ROW
    assert ROW.top_sensor("reconstruction") == "a" and ROW.top_sensor("sensor") == ""


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff", "must be JSON"),
        (b"[1]", "JSON object"),
        (b'{"schema": 2, "unit": "R1", "ts": 1, "scores": {}}', "schema 2"),
        (b'{"schema": 1, "unit": "", "ts": 1, "scores": {}}', "unit"),
        (b'{"schema": 1, "unit": "R1", "ts": "x", "scores": {"sensor": {}}}', "model"),
        (b'{"schema": 1, "unit": "R1", "ts": 1, "scores": {}}', "non-empty object"),
        (
            b'{"schema": 1, "unit": "R1", "ts": true, "scores": {"sensor": {"score": 1, "threshold": 1, "model": ""}}}',
            "ts must be a number",
        ),
        (
            b'{"schema": 1, "unit": "R1", "ts": 1, "scores": {"sensor": {"score": "1", "threshold": 1, "model": "m"}}}',
            "scores.sensor.score",
        ),
    ],
)
def test_a_bad_scores_payload_is_a_value_error_naming_the_problem(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_scores(payload)


def test_the_mqtt_sink_publishes_topics_qos_and_retain_of_the_wire_contract() -> None:
    sent: list[tuple[str, bytes, int, bool]] = []
    sink = MqttSink(lambda *message: sent.append(message) or True, prefix="pw", sensors={"R1": ("a", "b")})
    forecast = Forecast("R1", "fc", 10.0, 1.0, np.array([[1.5, 2.5]], dtype=np.float32), 10.0)
    sink.scored([ROW])
    sink.alert_state("R1", b"{}")
    sink.forecasts([forecast, Forecast("R9", "fc", 10.0, 1.0, np.zeros((1, 1), np.float32), 10.0)])
    assert [(topic, qos, retain) for topic, _, qos, retain in sent] == [
        ("pw/scores/R1", 0, False),
        ("pw/alerts/R1/state", 1, True),
        ("pw/forecast/R1", 0, False),  # R9's sensors are unknown to the sink: its forecast has no column names
    ]
    assert json.loads(sent[2][1]) == {
        "schema": 1,
        "unit": "R1",
        "model": "fc",
        "ts": 10.0,
        "period_s": 1.0,
        "sensors": ["a", "b"],
        "values": [[1.5, 2.5]],
    }
    assert sent[2][1] == encode_forecast("R1", "fc", 10.0, 1.0, ("a", "b"), [[1.5, 2.5]])
