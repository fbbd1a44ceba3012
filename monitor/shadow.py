"""Shadow candidates' outputs: their own alert trackers, metrics and records, and nothing on the alert topics.

API (the output stage owns one; monitor/outputs.py hands it every Score with ``shadow=True``)::

    shadows = ShadowStage(policies, sinks, metrics)      # policies: the units' AlertPolicy (the active ones' too)
    shadows.handle(scores, stopped)                      # a batch's shadow Scores; ScoringOutput.shadows_stopped
    shadows.show(units)                                  # the shadows served (start, reload): their metric series
    shadows.events                                       # the trackers' board, for tests: shadows.board.active(unit)

A unit's shadow (UnitConfig.shadow; the engine scores it beside the active models, monitor/scoring.py) is judged by
the same alert policy and adaptive thresholds as the active model, in an AlertBoard of its own: its state is never
mixed into the active trackers, nor into the unit's retained ``<prefix>/alerts/{unit}/state`` (a restart starts
the shadow's trackers afresh: a candidate's would-be episodes are evidence for a promotion, not alarms to keep).
Its events go to the sinks' ``shadow_alert`` (monitor/sinks.py): the backtest's ``shadow-alerts.jsonl``, the
recording's ``shadow-alerts-<stamp>.jsonl``; the MQTT sink does not take them. Metrics, per (unit, detector,
model) of each served shadow: ``plantwatch_shadow_alerts_fired_total``, ``plantwatch_shadow_alerts_active``,
``plantwatch_shadow_anomaly_score_normalized`` (beside the active ``plantwatch_anomaly_score_normalized``).

A shadow-only model whose complete window scores NaN / inf is stopped by the engine (not rolled back: nothing
active depends on it); here that is one ERROR line and ``plantwatch_shadow_failures_total{reason="non_finite"}``.
A candidate refused at load is counted there too (``reason="load"``, monitor/scoring_side.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from monitor.alerts.board import AlertBoard
from monitor.alerts.policy import AlertPolicy
from monitor.messages import Score
from monitor.metrics import Metrics
from monitor.scoring_records import ModelVerdict, UnitModels
from monitor.sinks import Sink

log = logging.getLogger(__name__)

ROLE_DETECTOR = {"detector": "reconstruction", "forecaster": "forecast"}


def shadow_series(units: Mapping[str, UnitModels]) -> list[tuple[str, str, str]]:
    """(unit, detector, model) of every shadow the units name: the shadow metrics' label sets."""
    return [
        (unit, ROLE_DETECTOR[role], name)
        for unit, spec in units.items()
        for role, name, shadow in spec.roles()
        if shadow
    ]


class ShadowStage:
    """The shadow Scores' alert trackers, metrics and sinks; see the module docstring."""

    def __init__(self, policies: Mapping[str, AlertPolicy], sinks: Sequence[Sink], metrics: Metrics) -> None:
        self.board = AlertBoard(policies)
        self._sinks = tuple(sinks)
        self._metrics = metrics

    def show(self, units: Mapping[str, UnitModels]) -> None:
        self._metrics.show_shadows(shadow_series(units))

    def handle(self, scores: Sequence[Score], stopped: Mapping[str, ModelVerdict]) -> None:
        metrics = self._metrics
        for name, verdict in stopped.items():
            log.error(
                "shadow model %s scored %s on %d of %d complete windows: its shadow scoring is stopped until a "
                "reload; the active models are not affected",
                name,
                verdict.example,
                verdict.non_finite,
                verdict.windows,
            )
            metrics.shadow_failures.labels("non_finite").inc()
        for score in scores:
            labels = (score.unit, score.detector, score.model)
            if labels not in metrics.shadow_series:
                continue  # a batch scored before a reload removed this shadow
            tracker = self.board.tracker(score.unit, score.detector)
            was_firing = tracker.firing is not None
            event = tracker.update(score)
            in_force = tracker.threshold_in_force
            if in_force > 0:
                metrics.shadow_score_normalized.labels(*labels).set(score.score / in_force)
            if event is None:
                continue
            firing = event.state == "firing"
            metrics.shadow_alerts_active.labels(*labels).set(1.0 if firing else 0.0)
            if firing and not was_firing:
                metrics.shadow_alerts_fired.labels(*labels).inc()
                log.info(
                    "shadow %s would fire: unit %s, %s score %.4g > %.4g (not published)",
                    event.model,
                    event.unit,
                    event.detector,
                    event.score,
                    event.threshold,
                )
            for sink in self._sinks:
                sink.shadow_alert(event)
