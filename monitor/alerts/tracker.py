"""The alert state machine of one (unit, detector): levels, hits, evidence, episodes, and its retained state.

API (pure, single-threaded; monitor.alerts.board holds one tracker per unit and detector)::

    tracker = AlertTracker("R1", "reconstruction", policy)   # policy: monitor.alerts.policy.AlertPolicy
    event = tracker.update(score)          # -> AlertEvent | None (firing, re-notify, escalation, resolved)
    state = tracker.snapshot()             # JSON-able dict; published retained inside the board's state payload
    tracker.restore(state)                 # at start: an episode already firing is not fired again
    make_alert_id(unit, detector, started_at), top_contributors(sensor_errors, n)   # what an event carries

Why the retained state lives here and not with the board: snapshot and restore are the tracker's own fields, and
restoring them is what makes an episode survive a restart without firing twice.

Levels, all in the score's own terms. A Score carries its model's calibrated threshold and, from the same
calibration, a resolve level (a high quantile of normal scores) and a critical level (the fitted tail at a far
rarer rate). The threshold in force is the calibrated one adapted online (monitor.thresholds: SPOT over the
scores judged normal, with guards); the resolve and critical levels move with it by the same factor. A Score
without calibrated levels (an old artifact) falls back to ``resolve_ratio`` and ``critical_ratio`` x threshold.

States. ``idle``: each score is a hit when it is above the threshold in force; the alert fires when at least
``fire_hits`` of the last ``fire_window`` scores are hits. The episode starts at the first hit of those
(``started_at``); reconstruction and forecast scores must also bring evidence: a CUSUM of (score / threshold - 1),
drained by at most ``evidence_drain`` per score under the threshold, must reach ``fire_evidence`` (a large
exceedance brings it with the k-of-n hits; a minute a few per cent over does not), and the episode then starts
where that evidence began. Its ``alert_id`` is ``"{unit}:{detector}:{started_at in ms}"``: stable through the
episode and the same after a restart. ``firing``: it resolves after ``resolve_hits`` consecutive scores under the
resolve level (hysteresis: a score between the two levels neither resolves nor counts as quiet) and only once the
episode is ``min_duration_s`` old; normal data is under the resolve level most of the time by construction, so
it resolves an episode. While firing, a ``firing`` event is repeated every ``renotify_s`` of event time, and once
when the severity rises from warning to critical (score above the critical level). A resolved event carries the
severity the episode ended with. All times are event times, so a backtest gives the same events as the live
service.

Learning. A score teaches the adaptive threshold only when the tracker is idle, the last episode resolved at
least ``adapt.guard_s`` ago and the unit is inside its model's envelope. While a hit is in the fire window (or
the evidence has not drained) the scores are held: learned once the hits leave the window without an alert,
dropped if it fires.

Envelope. A Score whose unit lies outside the model's training envelope (``Score.outside_envelope``) is handled
by ``outside_envelope``: ``"alert"`` as any other, ``"warn"`` (default) fires but never above warning severity
(for the rest of an episode once one of its scores was outside; a critical episode that leaves the envelope is
re-announced once as a warning),
and the event says which sensors are outside; ``"suppress"`` does not count it as a hit.

Scores that are not finite, or whose threshold is not a positive finite number, are ignored (never an alert with
a NaN score); so are scores not newer than the last one seen (a replay after a restart).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.alerts.event_payload import event_from_dict, event_to_dict
from monitor.alerts.json_fields import finite_or_none, number, number_or, strict_bool
from monitor.alerts.policy import AlertPolicy
from monitor.messages import MODEL_DETECTORS, AlertEvent, AlertState, Detector, Score, Severity
from monitor.thresholds import AdaptiveThreshold, AdaptPolicy
from monitor.wire.payloads import PAYLOAD_SCHEMA


@dataclass(frozen=True, slots=True)
class Levels:
    """The levels in force for one score: fire above ``threshold``, quiet under ``resolve``, critical above."""

    threshold: float
    resolve: float
    critical: float


def make_alert_id(unit: str, detector: str, started_at: float) -> str:
    """Deterministic episode id: the same unit, detector and start give the same id (after a restart too)."""
    return f"{unit}:{detector}:{round(started_at * 1000)}"


def top_contributors(sensor_errors: Mapping[str, float], n: int) -> tuple[tuple[str, float], ...]:
    """The n largest contributors and their share of the total, largest first (shares of the finite, >= 0 ones)."""
    items = [(s, float(e)) for s, e in sensor_errors.items() if math.isfinite(e) and e >= 0]
    total = sum(e for _, e in items)
    if total <= 0:
        return ()
    items.sort(key=lambda p: (-p[1], p[0]))
    return tuple((s, round(e / total, 4)) for s, e in items[:n])


class AlertTracker:
    """The alert state of one (unit, detector); see the module docstring."""

    def __init__(self, unit: str, detector: Detector, policy: AlertPolicy) -> None:
        self.unit = unit
        self.detector = detector
        self.policy = policy
        self._hits: deque[tuple[bool, float]] = deque(maxlen=policy.fire_window)  # (over threshold, ts)
        self._firing: AlertEvent | None = None  # the episode's latest firing event
        self._quiet_run = 0  # consecutive scores under the resolve level while firing
        self._last_notified_ts = -math.inf
        self._last_ts = -math.inf
        self._last_resolved_ts = -math.inf
        # Scores around hits, held until the fire rule decides (learned if no alert fires, else dropped).
        # (bounded: hits that linger without firing cannot grow it; the oldest held scores are then not learned)
        self._held: deque[tuple[float, float]] = deque(maxlen=8 * policy.fire_window)
        self._episode_outside = False  # a score of the firing episode lay outside the model's envelope
        # CUSUM of (score / threshold - 1) while idle, and the ts of the first hit since it last left 0
        self._evidence = 0.0
        self._evidence_since: float | None = None
        # A model detector's threshold adapts online; the sensor detector's is a fixed rule (1.0 = unhealthy).
        self._adaptive = AdaptiveThreshold(policy.adapt if detector in MODEL_DETECTORS else AdaptPolicy(False))
        self.threshold_in_force = math.nan  # of the latest score, for the metrics

    @property
    def adaptive(self) -> AdaptiveThreshold:
        return self._adaptive

    @property
    def firing(self) -> AlertEvent | None:
        """The active episode's latest firing event, or None when idle."""
        return self._firing

    def update(self, score: Score) -> AlertEvent | None:
        """Feed one score (in event-time order); returns the event to publish, if any."""
        if score.unit != self.unit or score.detector != self.detector:
            raise ValueError(
                f"score for ({score.unit}, {score.detector}) fed to the tracker of ({self.unit}, {self.detector})"
            )
        if not (math.isfinite(score.score) and math.isfinite(score.threshold) and score.threshold > 0):
            return None
        if score.ts <= self._last_ts:
            return None
        self._last_ts = score.ts
        levels = self.levels(score)
        self.threshold_in_force = levels.threshold
        if self._firing is None:
            self._episode_outside = False
        self._episode_outside = self._episode_outside or bool(score.outside_envelope)
        if self._firing is None:
            event = self._update_idle(score, levels)
        else:
            event = self._update_firing(score, levels, self._firing)
        self._learn(score, event)
        return event

    def levels(self, score: Score) -> Levels:
        """The score's calibrated levels, moved by the adaptive threshold's factor."""
        p = self.policy
        calibrated = score.threshold
        resolve = score.resolve_level if _positive(score.resolve_level) else p.resolve_ratio * calibrated
        critical = score.critical_level if _positive(score.critical_level) else p.critical_ratio * calibrated
        threshold = self._adaptive.level(calibrated, resolve)
        factor = threshold / calibrated
        return Levels(threshold, min(resolve, calibrated) * factor, max(critical, calibrated) * factor)

    def _learn(self, score: Score, event: AlertEvent | None) -> None:
        """Teach the adaptive threshold what passed as normal (see the module docstring's Learning)."""
        if self._firing is not None or event is not None:
            self._held.clear()  # an alert fired: the held scores were its onset, not normal evidence
            return
        eligible = score.ts - self._last_resolved_ts >= self.policy.adapt.guard_s and not score.outside_envelope
        # Undecided while a hit is in the fire window or the evidence has not drained: a run of hits that has not
        # (yet) brought enough evidence to fire is not normal evidence either.
        if any(over for over, _ in self._hits) or (self._needs_evidence() and self._evidence > 0):
            if eligible:
                self._held.append((score.score, score.ts))
            return
        while self._held:  # the hits left the fire window without an alert: they were normal after all
            value, ts = self._held.popleft()
            self._adaptive.learn(value, ts, confirmed=True)
        if eligible:
            self._adaptive.learn(score.score, score.ts)

    def _is_hit(self, score: Score, levels: Levels) -> bool:
        if score.outside_envelope and self.policy.outside_envelope == "suppress":
            return False
        return score.score > levels.threshold

    def _severity(self, score: Score, levels: Levels) -> Severity:
        if self.policy.outside_envelope == "warn" and (score.outside_envelope or self._episode_outside):
            # The model has never seen this operating point (now, or earlier in this episode: a unit that moves
            # in and out of its envelope is still off it): not a critical verdict on the plant.
            return "warning"
        return "critical" if score.score > levels.critical else "warning"

    def _event(
        self,
        score: Score,
        levels: Levels,
        state: AlertState,
        alert_id: str,
        started_at: float,
        severity: Severity,
        sensors: tuple[tuple[str, float], ...],
    ) -> AlertEvent:
        return AlertEvent(
            alert_id=alert_id,
            unit=self.unit,
            state=state,
            detector=self.detector,
            ts=score.ts,
            started_at=started_at,
            score=float(score.score),
            threshold=float(levels.threshold),
            severity=severity,
            sensors=sensors,
            model=score.model,
            attention_steps=tuple(score.attention_steps),
            reason=score.reason,
            calibrated_threshold=float(score.threshold),
            outside_envelope=tuple(score.outside_envelope),
        )

    def _needs_evidence(self) -> bool:
        return self.policy.fire_evidence > 0 and self.detector in MODEL_DETECTORS

    def _accumulate(self, score: Score, levels: Levels, hit: bool) -> None:
        """Update the evidence CUSUM: over the threshold it grows by the excess, under it drains by the gap."""
        if not hit:
            z = 0.0 if score.outside_envelope and self.policy.outside_envelope == "suppress" else score.score
            gap = 1.0 - min(z / levels.threshold, 1.0)
            self._evidence = max(0.0, self._evidence - min(gap, self.policy.evidence_drain))
        else:
            if self._evidence <= 0.0 or self._evidence_since is None:
                self._evidence_since = score.ts
            self._evidence += score.score / levels.threshold - 1.0
        if self._evidence <= 0.0:
            self._evidence = 0.0
            self._evidence_since = None

    def _update_idle(self, score: Score, levels: Levels) -> AlertEvent | None:
        hit = self._is_hit(score, levels)
        self._hits.append((hit, score.ts))
        self._accumulate(score, levels, hit)
        if sum(1 for over, _ in self._hits if over) < self.policy.fire_hits:
            return None
        first_hit = next(ts for over, ts in self._hits if over)
        if self._needs_evidence():
            if self._evidence < self.policy.fire_evidence:
                return None
            # the episode began where the evidence began (stable id: the same run gives the same start)
            started_at = min(first_hit, self._evidence_since if self._evidence_since is not None else first_hit)
        else:
            started_at = first_hit
        event = self._event(
            score,
            levels,
            "firing",
            make_alert_id(self.unit, self.detector, started_at),
            started_at,
            self._severity(score, levels),
            top_contributors(score.sensor_errors, self.policy.top_sensors),
        )
        self._firing = event
        self._quiet_run = 0
        self._last_notified_ts = score.ts
        self._hits.clear()
        self._evidence = 0.0
        self._evidence_since = None
        return event

    def _update_firing(self, score: Score, levels: Levels, firing: AlertEvent) -> AlertEvent | None:
        p = self.policy
        if score.score < levels.resolve:
            self._quiet_run += 1
        else:
            self._quiet_run = 0
        if self._quiet_run >= p.resolve_hits and score.ts - firing.started_at >= p.min_duration_s:
            self._firing = None
            self._quiet_run = 0
            self._last_resolved_ts = score.ts
            # The resolved event names the sensors and severity of the episode, not of the quiet score that ended
            # it (and keeps the episode's reason: the sensor detector's quiet score has none).
            resolved = self._event(
                score, levels, "resolved", firing.alert_id, firing.started_at, firing.severity, firing.sensors
            )
            return dataclasses.replace(resolved, reason=firing.reason)
        escalated = firing.severity == "warning" and self._severity(score, levels) == "critical"
        # A critical episode whose unit then leaves the model's envelope is re-announced as a warning, once (the
        # sticky rule in _severity keeps it there): hours of "critical" on an operating point the model never saw
        # would cry wolf.
        relaxed = p.outside_envelope == "warn" and firing.severity == "critical" and bool(score.outside_envelope)
        renotify = p.renotify_s > 0 and score.ts - self._last_notified_ts >= p.renotify_s
        if not (escalated or relaxed or renotify):
            return None
        sensors = top_contributors(score.sensor_errors, p.top_sensors) or firing.sensors
        severity: Severity = "critical" if escalated else "warning" if relaxed else firing.severity
        event = self._event(score, levels, "firing", firing.alert_id, firing.started_at, severity, sensors)
        self._firing = event
        self._last_notified_ts = score.ts
        return event

    # --- retained state ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-able state; ``restore`` of it continues the same episode without firing it again."""
        return {
            "schema": PAYLOAD_SCHEMA,
            "unit": self.unit,
            "detector": self.detector,
            "state": "firing" if self._firing is not None else "idle",
            "alert": event_to_dict(self._firing) if self._firing is not None else None,
            "hits": [[over, ts] for over, ts in self._hits],
            "quiet_run": self._quiet_run,
            "last_notified_ts": finite_or_none(self._last_notified_ts),
            "last_ts": finite_or_none(self._last_ts),
            "last_resolved_ts": finite_or_none(self._last_resolved_ts),
            "evidence": self._evidence,
            "evidence_since": self._evidence_since,
            "threshold": self._adaptive.snapshot(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a ``snapshot``; raises ValueError (state unchanged) if it is malformed or another tracker's."""
        try:
            if state.get("schema") != PAYLOAD_SCHEMA:
                raise ValueError(f"schema {state.get('schema')!r}, expected {PAYLOAD_SCHEMA}")
            if state["unit"] != self.unit or state["detector"] != self.detector:
                raise ValueError(
                    f"state of ({state['unit']}, {state['detector']}), not of ({self.unit}, {self.detector})"
                )
            alert = state["alert"]
            firing = event_from_dict(alert) if alert is not None else None
            if (state["state"] == "firing") != (firing is not None):
                raise ValueError(f"state {state['state']!r} does not match the alert {alert!r}")
            if firing is not None and firing.state != "firing":
                raise ValueError("the active alert of a firing state must be a firing event")
            hits = [(bool(strict_bool(o)), number(ts)) for o, ts in state["hits"]]
            quiet_run = int(state["quiet_run"])
            last_notified = number_or(state["last_notified_ts"], -math.inf)
            last_ts = number_or(state["last_ts"], -math.inf)
            last_resolved = number_or(state.get("last_resolved_ts"), -math.inf)
            evidence = max(0.0, number_or(state.get("evidence"), 0.0))  # absent in states written before it
            evidence_since = state.get("evidence_since")
            evidence_since = None if evidence_since is None or evidence <= 0 else number(evidence_since)
            threshold = state.get("threshold")  # absent in states written before thresholds adapted
            adaptive = AdaptiveThreshold(self._adaptive.policy)
            if threshold is not None:
                if not isinstance(threshold, dict):
                    raise ValueError("the threshold state must be an object")
                adaptive.restore(threshold)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed alert state: {exc!r}") from exc
        self._firing = firing
        self._hits = deque(hits[-self.policy.fire_window :], maxlen=self.policy.fire_window)
        self._quiet_run = max(0, quiet_run)
        self._last_notified_ts = last_notified
        self._last_ts = last_ts
        self._last_resolved_ts = last_resolved
        self._evidence = evidence
        self._evidence_since = evidence_since
        self._adaptive = adaptive


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0
