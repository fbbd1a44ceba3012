"""Every alert tracker of every configured unit, and the unit's retained alert state payload.

API (the alert stage and the backtest own one board)::

    board = AlertBoard({"R1": policy})     # every tracker of every unit, routed by (score.unit, score.detector)
    board.update(score) -> AlertEvent | None
    board.active("R1") -> [AlertEvent]     # the unit's episodes now firing, one per detector at most
    board.persist_due("R1", ts) -> bool    # time to republish the state (thresholds adapt)
    board.state_payload("R1") -> bytes     # the retained plantwatch/alerts/{unit}/state payload
    board.restore_payload("R1", payload)   # read back at start (ValueError if it is not ours)

Why a module of its own: the per-unit registry (which trackers exist, for which policy) and the unit-level payload
a restart restores are the stages' view of alerts; the state machine of one tracker is monitor.alerts.tracker's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from monitor.alerts.event_payload import event_to_dict
from monitor.alerts.policy import AlertPolicy
from monitor.alerts.tracker import AlertTracker
from monitor.messages import DETECTORS, AlertEvent, Detector, Score
from monitor.wire.payloads import PAYLOAD_SCHEMA


class AlertBoard:
    """One AlertTracker per (unit, detector) of the configured units, created on first use."""

    def __init__(self, policies: Mapping[str, AlertPolicy]) -> None:
        self._policies = dict(policies)
        self._trackers: dict[tuple[str, Detector], AlertTracker] = {}
        self._persisted_at: dict[str, float] = {}  # unit -> event time its state was last handed out

    @property
    def policies(self) -> Mapping[str, AlertPolicy]:
        return self._policies

    def tracker(self, unit: str, detector: Detector) -> AlertTracker:
        key = (unit, detector)
        tracker = self._trackers.get(key)
        if tracker is None:
            policy = self._policies.get(unit)
            if policy is None:
                raise ValueError(f"unknown unit {unit!r}")
            tracker = self._trackers[key] = AlertTracker(unit, detector, policy)
        return tracker

    def update(self, score: Score) -> AlertEvent | None:
        return self.tracker(score.unit, score.detector).update(score)

    def active(self, unit: str) -> list[AlertEvent]:
        """The unit's episodes now firing, one per detector at most."""
        out = []
        for detector in DETECTORS:
            tracker = self._trackers.get((unit, detector))
            if tracker is not None and tracker.firing is not None:
                out.append(tracker.firing)
        return out

    def persist_due(self, unit: str, ts: float) -> bool:
        """Whether the unit's retained state should be republished at event time ``ts`` (adapted thresholds)."""
        last = self._persisted_at.get(unit)
        if last is None:
            self._persisted_at[unit] = ts  # the first score: nothing learned yet worth keeping
            return False
        policy = self._policies.get(unit)
        return policy is not None and policy.adapt.enabled and ts - last >= policy.persist_s

    def state_payload(self, unit: str) -> bytes:
        """The retained ``plantwatch/alerts/{unit}/state`` payload: the unit's active alerts and tracker states."""
        trackers = {d: self.tracker(unit, d).snapshot() for d in DETECTORS}
        self._persisted_at[unit] = max(
            (t["last_ts"] for t in trackers.values() if t["last_ts"] is not None), default=-math.inf
        )
        body = {
            "schema": PAYLOAD_SCHEMA,
            "unit": unit,
            "state": "firing" if self.active(unit) else "ok",
            "active": [event_to_dict(e) for e in self.active(unit)],
            "trackers": trackers,
        }
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()

    def restore_payload(self, unit: str, payload: bytes) -> None:
        """Restore the unit's trackers from its retained state; ValueError if the payload is not a valid state."""
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"alert state of {unit} is not JSON: {exc}") from exc
        if not isinstance(body, dict) or body.get("schema") != PAYLOAD_SCHEMA or body.get("unit") != unit:
            raise ValueError(f"not an alert state of unit {unit}")
        trackers = body.get("trackers")
        if not isinstance(trackers, dict):
            raise ValueError(f"alert state of {unit} has no trackers")
        for detector in DETECTORS:
            state = trackers.get(detector)
            if state is not None:
                if not isinstance(state, dict):
                    raise ValueError(f"alert state of {unit}.{detector} is not an object")
                self.tracker(unit, detector).restore(state)
