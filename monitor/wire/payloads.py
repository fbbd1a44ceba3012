"""MQTT payloads: what a gateway (or the simulator) sends, and the scores, forecast and status payloads the service
publishes. UTF-8 JSON.

Input (monitor.ingest parses and validates them; its checks are the contract's fine print)::

    readings    {"ts": 1732590000.25, "values": {"temperature": 351.2, "pressure": 5.1}}
    per sensor  {"ts": 1732590000.25, "value": 351.2}, or a bare number
    ``ts``: event time, epoch seconds or ISO 8601 with a zone (monitor.wire.timestamps); missing: the receive time.
    ``sent`` (optional, epoch seconds): the publisher's wall clock when it sent the message. Only the latency
    metric reads it (plantwatch_publish_to_score_seconds is measured from it, else from ``ts``): a replay or a
    simulator faster than real time stamps event times that are not when it published. The simulator and
    ``plantwatch replay`` set it; a gateway that stamps ``ts`` as it sends need not.

Output (``"schema": PAYLOAD_SCHEMA`` in each; alert events and alert state: monitor.alerts)::

    scores      {"schema", "unit", "ts", "scores": {detector: {"score", "threshold" (in force),
                 "calibrated_threshold", "model", "sensors": {sensor: error}}}}
    forecast    {"schema", "unit", "model", "ts", "period_s", "sensors", "values": [H][S] in sensor units}
    status      b"online" / b"offline" (retained; offline is also the will)

A scored row as a record: ``ScoredRow`` (per detector a ``DetectorScore``), what the output stage hands its sinks
(monitor/sinks.py); ``encode_row`` writes it as the scores payload and ``decode_scores`` reads one back into it
(ValueError naming the field), for a sink in another process than the outputs (monitor/output_feed.py). The
detector names are the service's vocabulary (monitor.messages.DETECTORS), checked by that reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The version of every JSON payload the service publishes (alerts, alert state, scores, forecasts): a reader
# refuses another version rather than misreading it.
PAYLOAD_SCHEMA = 1
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"


def encode_readings(ts: float, values: Mapping[str, float], sent: float | None = None) -> bytes:
    """One row of a unit: the per-unit ``readings`` payload (ValueError on a non-finite value); ``sent``: the
    wall clock at publication, when it is not ``ts``."""
    body: dict[str, Any] = {"ts": ts, "values": dict(values)}
    if sent is not None:
        body["sent"] = round(sent, 6)
    return json.dumps(body, allow_nan=False).encode()


def encode_sensor_value(ts: float, value: float, sent: float | None = None) -> bytes:
    """One reading of one sensor: the per-sensor payload (ValueError on a non-finite value); ``sent`` as above."""
    body: dict[str, Any] = {"ts": ts, "value": value}
    if sent is not None:
        body["sent"] = round(sent, 6)
    return json.dumps(body, allow_nan=False).encode()


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


@dataclass(frozen=True, slots=True)
class DetectorScore:
    """One detector's score of a row, with the thresholds it was judged against (a score_entry as a record)."""

    score: float
    threshold: float  # the threshold in force (adapted online) that the alert tracker compared the score with
    calibrated_threshold: float  # the artifact's calibrated threshold
    model: str
    sensors: Mapping[str, float]  # sensor -> its error, its contribution to the score


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """A unit's row at event time ``ts`` as scored by each of its detectors: one scores payload."""

    unit: str
    ts: float
    scores: Mapping[str, DetectorScore]  # detector -> its score

    def top_sensor(self, detector: str) -> str:
        """The sensor that contributed most to the detector's score ("" when it names none)."""
        sensors = self.scores[detector].sensors
        return max(sensors.items(), key=lambda kv: kv[1])[0] if sensors else ""


def encode_row(row: ScoredRow) -> bytes:
    """The ``<prefix>/scores/{unit}`` payload of a ScoredRow (encode_scores of its score_entry per detector)."""
    entries = {
        detector: score_entry(s.score, s.threshold, s.calibrated_threshold, s.model, s.sensors)
        for detector, s in row.scores.items()
    }
    return encode_scores(row.unit, row.ts, entries)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _detector_score(detector: str, body: Any) -> DetectorScore:
    where = f"scores.{detector}"
    if not isinstance(body, dict):
        raise ValueError(f"{where} must be an object")
    model = body.get("model")
    if not isinstance(model, str):
        raise ValueError(f"{where}.model must be a string")
    sensors = body.get("sensors", {})
    if not isinstance(sensors, dict):
        raise ValueError(f"{where}.sensors must be an object")
    return DetectorScore(
        score=_number(body.get("score"), f"{where}.score"),
        threshold=_number(body.get("threshold"), f"{where}.threshold"),
        # NaN when a writer left it out (encode_row always writes it)
        calibrated_threshold=_number(body.get("calibrated_threshold", math.nan), f"{where}.calibrated_threshold"),
        model=model,
        sensors={str(k): _number(v, f"{where}.sensors.{k}") for k, v in sensors.items()},
    )


def decode_scores(payload: bytes) -> ScoredRow:
    """Read a ``<prefix>/scores/{unit}`` payload back into a ScoredRow; ValueError names what is wrong."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"a scores payload must be JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValueError("a scores payload must be a JSON object")
    if body.get("schema") != PAYLOAD_SCHEMA:
        raise ValueError(f"scores schema {body.get('schema')!r}, expected {PAYLOAD_SCHEMA}")
    unit = body.get("unit")
    if not isinstance(unit, str) or not unit:
        raise ValueError("unit must be a non-empty string")
    scores = body.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise ValueError("scores must be a non-empty object")
    parsed = {str(detector): _detector_score(str(detector), entry) for detector, entry in scores.items()}
    return ScoredRow(unit, _number(body.get("ts"), "ts"), parsed)


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
