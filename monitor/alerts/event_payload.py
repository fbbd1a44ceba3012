"""The alert event's wire format: AlertEvent (monitor.messages) to and from the DESIGN.md alert payload.

API::

    event_to_json(event) -> bytes         # the plantwatch/alerts/{unit} payload (ValueError on a non-finite number)
    event_from_json(payload) -> AlertEvent   # ValueError names what is wrong
    event_to_dict(event), event_from_dict(body)   # the same as a dict: alerts.jsonl lines, the retained state

Why a module of its own: one encoder and one decoder for every place an event is written or read back (the MQTT
sink, alerts.jsonl in monitor.result_files, the demo's output feed, a tracker's retained firing episode), so
they cannot drift. Not in monitor.wire, which imports nothing of monitor: the payload is the AlertEvent record's.
Its ``"schema"`` is monitor.wire.payloads.PAYLOAD_SCHEMA.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

from monitor.alerts.json_fields import finite_or_none, number, number_or, text
from monitor.messages import ALERT_STATES, DETECTORS, SEVERITIES, AlertEvent, AlertState, Detector, Severity
from monitor.wire.payloads import PAYLOAD_SCHEMA


def event_to_dict(event: AlertEvent) -> dict[str, Any]:
    """The DESIGN.md alert payload as a dict (``"schema"``: monitor.wire.payloads.PAYLOAD_SCHEMA)."""
    return {
        "schema": PAYLOAD_SCHEMA,
        "alert_id": event.alert_id,
        "unit": event.unit,
        "state": event.state,
        "detector": event.detector,
        "ts": event.ts,
        "started_at": event.started_at,
        "score": event.score,
        "threshold": event.threshold,
        "severity": event.severity,
        "sensors": [{"sensor": s, "share": share} for s, share in event.sensors],
        "model": event.model,
        "attention_steps": list(event.attention_steps),
        "reason": event.reason,
        "normalized_score": finite_or_none(event.normalized_score),
        "calibrated_threshold": finite_or_none(event.calibrated_threshold),
        # Whether the unit was inside the model's training envelope: outside, the model has never seen this
        # operating point, and the alert may say more about the model than about the plant.
        "envelope": {"inside": not event.outside_envelope, "sensors": list(event.outside_envelope)},
    }


def event_to_json(event: AlertEvent) -> bytes:
    """The ``plantwatch/alerts/{unit}`` payload (UTF-8 JSON; ValueError on a non-finite number)."""
    return json.dumps(event_to_dict(event), allow_nan=False, separators=(",", ":")).encode()


def event_from_dict(body: Any) -> AlertEvent:
    """Parse an alert payload dict; ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("an alert event must be a JSON object")
    if body.get("schema") != PAYLOAD_SCHEMA:
        raise ValueError(f"alert schema {body.get('schema')!r}, expected {PAYLOAD_SCHEMA}")
    try:
        state = body["state"]
        detector = body["detector"]
        severity = body["severity"]
        if state not in ALERT_STATES:
            raise ValueError(f"state {state!r}")
        if detector not in DETECTORS:
            raise ValueError(f"detector {detector!r}")
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r}")
        sensors = tuple((text(s["sensor"]), number(s["share"])) for s in body["sensors"])
        return AlertEvent(
            alert_id=text(body["alert_id"]),
            unit=text(body["unit"]),
            state=cast(AlertState, state),
            detector=cast(Detector, detector),
            ts=number(body["ts"]),
            started_at=number(body["started_at"]),
            score=number(body["score"]),
            threshold=number(body["threshold"]),
            severity=cast(Severity, severity),
            sensors=sensors,
            model=text(body["model"]),
            attention_steps=tuple(int(number(x)) for x in body.get("attention_steps", ())),
            reason=text(body.get("reason", "")),
            calibrated_threshold=number_or(body.get("calibrated_threshold"), math.nan),
            outside_envelope=tuple(text(s) for s in (body.get("envelope") or {}).get("sensors", ())),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed alert event: missing or wrong {exc}") from exc


def event_from_json(payload: bytes) -> AlertEvent:
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"alert event is not JSON: {exc}") from exc
    return event_from_dict(body)
