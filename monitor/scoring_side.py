"""The scoring side of the service: scheduler, engine, alert board and outputs, built the same in either mode.

``scheduler.scorer: process`` (the default) runs it in the scorer process (monitor/scorer.py); ``thread`` runs it
on a thread of the one process (tests, tiny installs). The backtest (monitor/backtest.py) composes the same stages
in its own one process, without a thread.

API::

    side = ScoringSide(cfg, checked, metrics, publish, jobs, marks)
    side.scheduler.run(stop); side.reload(cfg) -> bool; side.engine; side.outputs; side.board
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from monitor.alerts.board import AlertBoard
from monitor.config import PlantwatchConfig
from monitor.journal import ScoredMarks
from monitor.metrics import Metrics
from monitor.mqtt_sink import MqttSink, Publish
from monitor.outputs import OutputStage
from monitor.params import specs_from_config
from monitor.recording import results_recording
from monitor.scheduler import JobSource, Scheduler, show_models
from monitor.scoring import ScoringEngine
from monitor.scoring_records import UnitModels, required_window_rows
from monitor.sinks import Sink
from monitor.timed_models import timed

if TYPE_CHECKING:
    from models.model_api import ScoringModel
    from monitor.startup import Preflight

log = logging.getLogger(__name__)


class ScoringSide:
    """The scheduler and what it feeds: the scoring engine, the alert board and the output stage of one device."""

    def __init__(
        self,
        cfg: PlantwatchConfig,
        checked: Preflight,
        metrics: Metrics,
        publish: Publish,
        jobs: JobSource,
        marks: ScoredMarks | None,
    ) -> None:
        from monitor.startup import StartupError

        if cfg.scheduler.cpu_threads > 0 and "torch" in sys.modules:
            import torch

            # Several intra-op threads on small per-row batches spin against the service's own threads and the
            # broker: on 2 shared cores, 1 thread scored the same load with a third of the CPU and a sixth of the
            # latency (benchmarks/latency.py). Process-wide, so it also covers the CPU fallback after a CUDA OOM.
            torch.set_num_threads(cfg.scheduler.cpu_threads)
        self._metrics = metrics
        self.device = checked.device
        self.units = checked.units
        self.window_rows = {unit: spec.window_rows for unit, spec in checked.specs.items()}
        show_models(metrics, checked.models)
        try:
            self.engine = ScoringEngine(checked.units, timed(checked.models, metrics))
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        self.board = AlertBoard(checked.policies)
        self._refuse_shadows(checked.shadow_problems)
        topics = cfg.mqtt.topics
        mqtt_sink = MqttSink(
            publish,
            prefix=topics.prefix,
            publish_scores=cfg.outputs.publish_scores,
            publish_forecasts=cfg.outputs.publish_forecasts,
            sensors={u.name: tuple(u.sensors) for u in cfg.units},
        )
        # The scores and alert events recorded beside MQTT (monitor/recording), when recording.path is set.
        self.recording = results_recording(cfg, metrics)
        sinks: list[Sink] = [mqtt_sink] if self.recording is None else [mqtt_sink, self.recording]
        self.outputs = OutputStage(self.board, sinks, metrics, prefix=topics.prefix)
        self.outputs.shadows.show(self.engine.units)
        self.scheduler = Scheduler(
            self.engine,
            jobs,
            self.outputs.handle,
            metrics,
            max_batch=cfg.scheduler.max_batch,
            max_delay_s=cfg.scheduler.max_delay_ms / 1000.0,
            max_lag_s=cfg.scheduler.max_lag_s,
            marks=marks,
            probation_windows=cfg.scheduler.reload_probation_windows,
            probation_s=cfg.scheduler.reload_probation_s,
        )

    def start_recording(self) -> None:
        if self.recording is not None:
            self.recording.start()

    def stop_recording(self, timeout_s: float) -> bool:
        """After the scheduler stopped: what is queued written, the files synced; False if past the deadline."""
        return self.recording is None or self.recording.stop(timeout_s)

    def engine_device(self) -> Any:
        return "cpu" if self.scheduler.on_cpu_fallback else self.device

    def _refuse_shadows(self, problems: Iterable[str]) -> None:
        for line in problems:
            log.error("shadow model not served (the active models are): %s", line)
            self._metrics.shadow_failures.labels("load").inc()

    def reload(self, cfg: PlantwatchConfig) -> bool:
        """Reload every artifact of ``cfg`` (SIGHUP; its units' detector, forecaster and shadow sections: a
        promotion names the candidate as the active model); buffers and alert state are kept. False if the old
        models stay. A shadow candidate that does not load is left out, the reload goes on without it.

        True: the new models are scoring, on probation (a later rollback is the scheduler's)."""
        from monitor.startup import StartupError, load_models, load_shadows

        try:
            models = load_models(cfg, self.engine_device())
            shadows = load_shadows(cfg, self.engine_device(), models)
            problems = list(shadows.problems)
            models.update(shadows.models)
            _, _, units = specs_from_config(cfg, models, shadows.refused)
            for unit, spec in units.items():
                active = replace(spec, shadow_detector=None, shadow_forecaster=None)
                needed = required_window_rows(active, models)
                if needed > self.window_rows[unit]:
                    raise ValueError(
                        f"unit {unit}: new models need {needed}-row windows, the buffers hold {self.window_rows[unit]}"
                    )
                units[unit] = _shadows_that_fit(unit, spec, models, self.window_rows[unit], problems)
            self.scheduler.replace_models(timed(models, self._metrics), timeout_s=30.0, units=units)
        except Exception as exc:  # whatever an artifact does, the service keeps running on the old models
            detail = str(exc) if isinstance(exc, StartupError | ValueError | TimeoutError) else repr(exc)
            log.error("model reload refused, keeping the loaded models: %s", detail)
            self._metrics.model_reloads.labels("error").inc()
            return False
        self.units = units
        self._refuse_shadows(problems)
        show_models(self._metrics, models)
        self.outputs.shadows.show(units)
        self._metrics.model_reloads.labels("ok").inc()
        log.info("models reloaded: %s", ", ".join(sorted(models)))
        return True


def _shadows_that_fit(
    unit: str, spec: UnitModels, models: Mapping[str, ScoringModel], rows: int, problems: list[str]
) -> UnitModels:
    """``spec`` without the shadows whose window is longer than the unit's buffers hold (a problem line each)."""

    def fits(name: str | None) -> bool:
        if name is None or models[name].window <= rows:
            return True
        problems.append(
            f"unit {unit}: shadow {name} needs {models[name].window}-row windows, the buffers hold {rows} "
            "(a restart serves it)"
        )
        return False

    detector, forecaster = spec.shadow_detector, spec.shadow_forecaster
    return replace(
        spec,
        shadow_detector=detector if fits(detector) else None,
        shadow_forecaster=forecaster if fits(forecaster) else None,
    )
