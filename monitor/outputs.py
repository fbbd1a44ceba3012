"""The output stage: scored windows -> metrics, alert state machines, and the Sinks that take the results.

API:
    outputs = OutputStage(board, [MqttSink(publish, prefix=...)], metrics, prefix="plantwatch", log_alerts=True)
    outputs.handle(scoring_output)       # on the scheduler thread, after each batch
    outputs.restore(retained)            # at start: {"<prefix>/alerts/R1/state": payload} read back from the broker

Per batch: each Score of a shadow candidate goes to the ShadowStage (monitor/shadow.py: trackers of its own,
metrics, the sinks' ``shadow_alert``; nothing published); each other Score goes to its unit's AlertTracker
(monitor.alerts) and into the per-unit metrics; an alert
event (firing, re-notified, escalated, resolved) goes to every sink with the unit's new alert state, and so does
the state alone when the adapted thresholds are due to be kept across a restart; then the batch's scored rows
(monitor.wire.payloads.ScoredRow: each detector's score with the threshold in force it was judged against) and its
forecasts go to the sinks that take them. The Sink interface and the order of its calls: monitor/sinks.py.

The three compositions differ only in their sinks: the service publishes on MQTT (monitor/mqtt_sink.py), the
backtest writes scores.csv / alerts.jsonl (monitor/result_files.py) and keeps the events in memory, the demo's view
(monitor/demo/view.py) takes the same objects back off the broker from the service's scorer process.

``prefix``: the MQTT prefix the retained states given to ``restore`` were read under (their topics name the
unit). ``log_alerts``: one WARNING line per episode that starts firing, one INFO line per resolved one (the
service's log); the backtest turns it off, its command prints every event itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from monitor.alerts.board import AlertBoard
from monitor.messages import ALERT_STATES, DETECTORS, Score
from monitor.metrics import Metrics
from monitor.scoring_records import ScoringOutput
from monitor.shadow import ShadowStage
from monitor.sinks import Sink
from monitor.wire.payloads import DetectorScore, ScoredRow
from monitor.wire.topics import OUTPUT_PREFIX, unit_of_alert_state

log = logging.getLogger(__name__)


class OutputStage:
    """Turns each batch's Scores and Forecasts into metrics and alert events, and hands them to the sinks."""

    def __init__(
        self,
        board: AlertBoard,
        sinks: Sequence[Sink],
        metrics: Metrics,
        prefix: str = OUTPUT_PREFIX,
        log_alerts: bool = True,
    ) -> None:
        self._board = board
        self._sinks = tuple(sinks)
        self._row_sinks = tuple(s for s in self._sinks if s.takes_scores)
        self._forecast_sinks = tuple(s for s in self._sinks if s.takes_forecasts)
        self._metrics = metrics
        self._prefix = prefix
        self._log_alerts = log_alerts
        self._table = metrics.per_unit
        self._fired = {state: metrics.alerts_published.labels(state) for state in ALERT_STATES}
        self._scored = {detector: metrics.windows_scored.labels(detector) for detector in DETECTORS}
        # Shadow candidates' Scores: the same policies, trackers of their own, never the MQTT sink's alerts.
        self.shadows = ShadowStage(board.policies, self._sinks, metrics)

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
        want_rows = bool(self._row_sinks)  # no row objects built when nothing takes them
        rows: dict[tuple[str, float], dict[str, DetectorScore]] = {}
        scores = [s for s in out.scores if not s.shadow]
        if len(scores) < len(out.scores) or out.shadows_stopped:
            self.shadows.handle([s for s in out.scores if s.shadow], out.shadows_stopped)
        for score in scores:
            scored[score.detector] += 1
            if score.detector == "reconstruction":  # one latency sample per scored row
                # From when the newest reading left its source (Reading.source_time: its payload's `sent`, else
                # its own event time), not the row's time: a replay faster than real time stamps event times far
                # behind the wall clock, and a source sampling off the row grid would shift every sample.
                self._metrics.publish_to_score.observe(max(0.0, now - score.source_ts))
                self._metrics.receive_to_score.observe(max(0.0, now - score.received_at))
            in_force.append(self._alert(score))
            if want_rows:
                rows.setdefault((score.unit, score.ts), {})[score.detector] = DetectorScore(
                    score.score, in_force[-1], score.threshold, score.model, dict(score.sensor_errors)
                )
        self._table.set_scores(scores, in_force)
        for detector, count in scored.items():
            if count:
                self._scored[detector].inc(count)
        if out.non_finite:
            self._metrics.stage_errors.labels("scheduler").inc(out.non_finite)
        if rows:
            batch = [ScoredRow(unit, ts, scores) for (unit, ts), scores in rows.items()]
            for sink in self._row_sinks:
                sink.scored(batch)
        self._table.set_forecasts(out.forecasts)
        if out.forecasts:
            for sink in self._forecast_sinks:
                sink.forecasts(out.forecasts)

    def _alert(self, score: Score) -> float:
        """Feed the score to its tracker, hand on what that changed; returns the threshold it was judged against."""
        tracker = self._board.tracker(score.unit, score.detector)
        was_firing = tracker.firing is not None
        event = tracker.update(score)
        if event is None:
            if self._board.persist_due(score.unit, score.ts):  # keep what the thresholds learned across restarts
                self._hand_on_state(score.unit)
            return tracker.threshold_in_force
        i = self._table.index[event.unit]
        if event.state == "firing":
            self._table.set_alert_active(i, event.detector, True)
            if not was_firing:
                self._table.count_alert_fired(i, event.detector)
                if self._log_alerts:
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
            if self._log_alerts:
                log.info("alert %s resolved: unit %s", event.alert_id, event.unit)
        for sink in self._sinks:
            sink.alert(event)
        self._fired[event.state].inc()
        self._hand_on_state(event.unit)
        return tracker.threshold_in_force

    def _hand_on_state(self, unit: str) -> None:
        payload = self._board.state_payload(unit)
        for sink in self._sinks:
            sink.alert_state(unit, payload)
