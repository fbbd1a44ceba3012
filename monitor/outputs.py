"""The output stage: scored windows -> metrics, alert state machines, MQTT alerts, retained state, scores, forecasts.

API:
    outputs = OutputStage(board, publish, metrics, prefix="plantwatch", publish_scores=True, publish_forecasts=True)
    outputs.handle(scoring_output)       # on the scheduler thread, after each batch
    outputs.restore(retained)            # at start: {"<prefix>/alerts/R1/state": payload} read back from the broker

Topics and payloads (DESIGN.md wire contract, monitor.wire), ``publish(topic, payload, qos, retain) -> bool``:
    <prefix>/alerts/{unit}         QoS 1, an AlertEvent (monitor.alerts.event_to_json, "schema": PAYLOAD_SCHEMA)
    <prefix>/alerts/{unit}/state   QoS 1, retained: the unit's tracker snapshot and what is firing
    <prefix>/scores/{unit}         QoS 0, per scored row (monitor.wire.payloads.encode_scores)
    <prefix>/forecast/{unit}       QoS 0, per forecast (monitor.wire.payloads.encode_forecast)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from monitor.alerts import AlertBoard, event_to_json
from monitor.messages import ALERT_STATES, DETECTORS, Forecast, Score
from monitor.metrics import Metrics
from monitor.scoring import ScoringOutput
from monitor.wire.payloads import encode_forecast, encode_scores, score_entry
from monitor.wire.topics import (
    OUTPUT_PREFIX,
    alert_state_topic,
    alerts_topic,
    forecast_topic,
    scores_topic,
    unit_of_alert_state,
)

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, int, bool], bool]


class OutputStage:
    """Turns each batch's Scores and Forecasts into metrics, alert events and MQTT messages."""

    def __init__(
        self,
        board: AlertBoard,
        publish: Publish,
        metrics: Metrics,
        prefix: str = OUTPUT_PREFIX,
        publish_scores: bool = True,
        publish_forecasts: bool = True,
        sensors: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._board = board
        self._publish = publish
        self._metrics = metrics
        self._prefix = prefix
        self._publish_scores = publish_scores
        self._publish_forecasts = publish_forecasts
        self._sensors = dict(sensors or {})
        self._table = metrics.per_unit
        self._fired = {state: metrics.alerts_published.labels(state) for state in ALERT_STATES}
        self._scored = {detector: metrics.windows_scored.labels(detector) for detector in DETECTORS}

    def restore(self, retained: Mapping[str, bytes]) -> int:
        """Restore the trackers from retained state payloads; returns how many units were restored."""
        restored = 0
        for topic, payload in retained.items():
            unit = unit_of_alert_state(self._prefix, topic)
            if unit not in self._table.index or not payload:
                continue
            try:
                self._board.restore_payload(unit, payload)
            except (ValueError, KeyError) as exc:
                log.warning("ignoring retained alert state of unit %s: %s", unit, exc)
                continue
            restored += 1
            for event in self._board.active(unit):
                self._table.set_alert_active(self._table.index[unit], event.detector, True)
        return restored

    def handle(self, out: ScoringOutput) -> None:
        now = time.time()
        scored = dict.fromkeys(DETECTORS, 0)
        in_force: list[float] = []
        rows: dict[tuple[str, float], dict[str, Any]] = {}
        for score in out.scores:
            scored[score.detector] += 1
            if score.detector == "reconstruction":  # one latency sample per scored row
                # The newest reading's own event time, not the row's: a source sampling off the row grid (half a
                # period early or late) would otherwise shift every sample by that offset.
                self._metrics.publish_to_score.observe(max(0.0, now - score.source_ts))
                self._metrics.receive_to_score.observe(max(0.0, now - score.received_at))
            in_force.append(self._alert(score))
            if self._publish_scores:
                rows.setdefault((score.unit, score.ts), {})[score.detector] = score_entry(
                    score.score, in_force[-1], score.threshold, score.model, score.sensor_errors
                )
        self._table.set_scores(out.scores, in_force)
        for detector, count in scored.items():
            if count:
                self._scored[detector].inc(count)
        if out.non_finite:
            self._metrics.stage_errors.labels("scheduler").inc(out.non_finite)
        for (unit, ts), scores in rows.items():
            self._publish(scores_topic(self._prefix, unit), encode_scores(unit, ts, scores), 0, False)
        self._table.set_forecasts(out.forecasts)
        if self._publish_forecasts:
            for forecast in out.forecasts:
                self._publish_forecast(forecast)

    def _alert(self, score: Score) -> float:
        """Feed the score to its tracker, publish what that changed; returns the threshold it was judged against."""
        tracker = self._board.tracker(score.unit, score.detector)
        was_firing = tracker.firing is not None
        event = tracker.update(score)
        if event is None:
            if self._board.persist_due(score.unit, score.ts):  # keep what the thresholds learned across restarts
                self._publish_state(score.unit)
            return tracker.threshold_in_force
        i = self._table.index[event.unit]
        if event.state == "firing":
            self._table.set_alert_active(i, event.detector, True)
            if not was_firing:
                self._table.count_alert_fired(i, event.detector)
                log.warning(
                    "alert %s firing: unit %s, %s score %.4g > %.4g (%s)",
                    event.alert_id,
                    event.unit,
                    event.detector,
                    event.score,
                    event.threshold,
                    ", ".join(s for s, _ in event.sensors),
                )
        else:
            self._table.set_alert_active(i, event.detector, False)
            log.info("alert %s resolved: unit %s", event.alert_id, event.unit)
        self._publish(alerts_topic(self._prefix, event.unit), event_to_json(event), 1, False)
        self._fired[event.state].inc()
        self._publish_state(event.unit)
        return tracker.threshold_in_force

    def _publish_state(self, unit: str) -> None:
        self._publish(alert_state_topic(self._prefix, unit), self._board.state_payload(unit), 1, True)

    def _publish_forecast(self, forecast: Forecast) -> None:
        sensors = self._sensors.get(forecast.unit)
        if sensors is None:
            return
        payload = encode_forecast(
            forecast.unit, forecast.model, forecast.ts, forecast.period_s, sensors, forecast.values.tolist()
        )
        self._publish(forecast_topic(self._prefix, forecast.unit), payload, 0, False)
