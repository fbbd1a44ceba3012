"""The composition root: build every stage from the config, start them in order, stop them with a deadline.

API:
    app = App(cfg, registry=None)      # loads the models; StartupError (exit 2) if the device or an artifact is bad
    app.start()                        # http, retained alert state, scheduler, buffers, then MQTT
    app.reload() -> bool               # SIGHUP: reload every artifact; an invalid one keeps the old models
    app.failed                         # threading.Event: a worker thread died (the process should exit 1)
    app.stop(deadline_s) -> int        # 0 clean, 1 if a step missed the deadline
    app.ready() -> (bool, reason)      # /readyz: broker connected, models loaded and scoring to finite numbers
    app.metrics_port                   # the bound port (config port 0 = any free port)

Artifacts: ``load_artifact`` (models/artifacts.py) refuses anything hostile with an ArtifactError, including a
model whose probe batch (windows at its training mean) scores NaN / inf; at start that is a StartupError (one
line, exit 2), on SIGHUP one ERROR line, ``model_reloads{result="error"}`` and the old models keep scoring.
A model that later scores live complete windows as NaN / inf makes ``ready()`` false, naming it
(ScoringEngine.failing_models), until its windows score finite again.

Threads: paho's network thread (ingest), "buffers", "scheduler" (scoring and outputs), "http".
Stop order: close the MQTT intake (unacknowledged messages are redelivered to the next session),
drain the readings queue through the buffers, drain the job queue through the scheduler (alerts are
published as they happen), publish retained `offline` and disconnect, stop the HTTP server.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from monitor.alerts import AlertBoard
from monitor.buffers import RingBuffers
from monitor.config import PlantwatchConfig
from monitor.health import HealthServer
from monitor.ingest import Parser, topic_filter
from monitor.metrics import Metrics
from monitor.mqtt import MqttLink, read_retained
from monitor.outputs import OutputStage
from monitor.params import specs_from_config
from monitor.scheduler import JobQueue, Scheduler, timed
from monitor.scoring import ScoringEngine, required_window_rows
from monitor.stages import BufferStage, Inbox, IngestStage

if TYPE_CHECKING:
    import torch

    from models.inference import LoadedModel

log = logging.getLogger(__name__)

RETAINED_STATE_TIMEOUT_S = 5.0


class StartupError(Exception):
    """The service cannot start with this configuration (bad device, missing or invalid artifact)."""


def load_models(cfg: PlantwatchConfig, device: torch.device) -> dict[str, LoadedModel]:
    """Every configured artifact, loaded once per model name; StartupError names the unit and path."""
    from models.artifacts import ArtifactError, load_artifact

    paths: dict[str, str] = {}
    models: dict[str, LoadedModel] = {}
    for i, unit in enumerate(cfg.units):
        for role in ("detector", "forecaster"):
            ref = getattr(unit, role)
            if ref is None:
                continue
            path = str(ref.artifact)
            if ref.name in paths:
                if paths[ref.name] != path:
                    raise StartupError(
                        f"units.{i}.{role}: model {ref.name!r} is configured with two artifacts: {paths[ref.name]} "
                        f"and {path}"
                    )
                continue
            try:
                models[ref.name] = load_artifact(path, device=device)  # ArtifactError for anything an artifact holds
            except ArtifactError as exc:  # its message names the artifact's path
                raise StartupError(f"units.{i}.{role}.artifact: {exc}") from exc
            except OSError as exc:
                raise StartupError(f"units.{i}.{role}.artifact: cannot load {path}: {exc}") from exc
            paths[ref.name] = path
            if abs(models[ref.name].period_s - unit.period_s) > 1e-9:
                log.warning(
                    "model %s was trained at period %.3g s, unit %s samples every %.3g s",
                    ref.name,
                    models[ref.name].period_s,
                    unit.name,
                    unit.period_s,
                )
    return models


class App:
    """The running service; see the module docstring."""

    def __init__(self, cfg: PlantwatchConfig, registry: CollectorRegistry | None = None) -> None:
        from models.device import resolve_device

        self.cfg = cfg
        try:
            self.device = resolve_device(cfg.scheduler.device)
        except ValueError as exc:
            raise StartupError(f"scheduler.device: {exc}") from exc
        log.info("scoring on %s", self.device)
        if cfg.scheduler.cpu_threads > 0:
            import torch

            # Several intra-op threads on small per-row batches spin against the service's own threads and the
            # broker: on 2 shared cores, 1 thread scored the same load with a third of the CPU and a sixth of the
            # latency (benchmarks/latency.py). Process-wide, so it also covers the CPU fallback after a CUDA OOM.
            torch.set_num_threads(cfg.scheduler.cpu_threads)
        if cfg.scheduler.precision != "fp32":
            # LoadedModel.infer has no reduced-precision path yet (models/inference.py); say so instead of pretending.
            log.warning("scheduler.precision %s is not applied yet: scoring runs in fp32", cfg.scheduler.precision)
        models = load_models(cfg, self.device)
        if registry is None:
            registry = CollectorRegistry()
            # process_* (RSS, CPU, open fds), python_gc_*, python_info: what a soak test and a dashboard watch.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        horizons = {h for m in models.values() if m.role == "forecaster" for h in (1, m.horizon)}
        self.metrics = Metrics(
            self.registry,
            units={u.name: tuple(u.sensors) for u in cfg.units},
            models={name: m.role for name, m in models.items()},
            horizons=horizons,
        )
        for name, m in models.items():
            self.metrics.model_info.labels(name, m.kind, m.role, str(m.device)).set(1)
        try:
            specs, policies, self._units = specs_from_config(cfg, models)
            self.engine = ScoringEngine(self._units, timed(models, self.metrics))
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        self._window_rows = {unit: spec.window_rows for unit, spec in specs.items()}

        self.readings = Inbox(cfg.limits.ingest_queue)
        self.jobs = JobQueue(cfg.limits.job_queue, self.metrics)
        self.board = AlertBoard(policies)
        topics = cfg.mqtt.topics
        self.outputs = OutputStage(
            self.board,
            self._publish,
            self.metrics,
            prefix=topics.prefix,
            publish_scores=cfg.outputs.publish_scores,
            publish_forecasts=cfg.outputs.publish_forecasts,
            sensors={u.name: tuple(u.sensors) for u in cfg.units},
        )
        self.scheduler = Scheduler(
            self.engine,
            self.jobs,
            self.outputs.handle,
            self.metrics,
            max_batch=cfg.scheduler.max_batch,
            max_delay_s=cfg.scheduler.max_delay_ms / 1000.0,
            max_lag_s=cfg.scheduler.max_lag_s,
        )
        self.buffer_stage = BufferStage(RingBuffers(specs), self.readings, self.jobs, self.metrics)
        self.ingest = IngestStage(Parser.from_config(cfg), self.readings, self.metrics)
        self.link = MqttLink(cfg.mqtt, self._subscriptions(), self.ingest.handle, self.metrics)
        self.http = HealthServer(self.registry, cfg.metrics.host, cfg.metrics.port, self.ready)
        self.failed = threading.Event()
        self._buffers_stop = threading.Event()
        self._scheduler_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._models_loaded = True

    def _subscriptions(self) -> list[str]:
        import paho.mqtt.client as mqtt

        topics = self.cfg.mqtt.topics
        filters = [topic_filter(topics.readings)]
        if topics.sensor is not None:
            sensor_filter = topic_filter(topics.sensor)
            # Overlapping subscriptions would deliver a message twice (counted as a duplicate): keep the wider one.
            if mqtt.topic_matches_sub(sensor_filter, filters[0]):
                filters = [sensor_filter]
            elif not mqtt.topic_matches_sub(filters[0], sensor_filter):
                filters.append(sensor_filter)
        return filters

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return self.link.publish(topic, payload, qos=qos, retain=retain)

    @property
    def metrics_port(self) -> int:
        return self.http.port

    def ready(self) -> tuple[bool, str]:
        if not self._models_loaded:
            ready, reason = False, "models not loaded"
        elif not self.link.connected.is_set():
            ready, reason = False, "not connected to the MQTT broker"
        elif not self.link.subscribed.is_set():
            ready, reason = False, "waiting for the broker to acknowledge the subscriptions"
        elif self.failed.is_set():
            ready, reason = False, "a worker thread failed"
        elif failing := self.engine.failing_models:
            ready, reason = False, f"model(s) {', '.join(sorted(failing))} score NaN or inf"
        else:
            ready, reason = True, "ready"
        self.metrics.ready.set(1 if ready else 0)
        return ready, reason

    def _spawn(self, name: str, target: Callable[[threading.Event], None], stop: threading.Event) -> None:
        def body() -> None:
            try:
                target(stop)
            except BaseException:
                log.exception("thread %s died", name)
                self.failed.set()
                raise

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def start(self) -> None:
        # Everything built so far (torch, the models, the per-unit state) lives as long as the process: move it out
        # of the collector's reach. A full collection walked ~180,000 such objects, about 110 ms with the GIL held,
        # every time enough readings had survived a young collection; ingest and scoring stalled meanwhile.
        gc.freeze()
        self.http.start()
        log.info("metrics on http://%s:%d/metrics", self.cfg.metrics.host, self.http.port)
        state_filter = f"{self.cfg.mqtt.topics.prefix}/alerts/+/state"
        retained = read_retained(self.cfg.mqtt, state_filter, RETAINED_STATE_TIMEOUT_S)
        if retained:
            restored = self.outputs.restore(retained)
            log.info("restored the alert state of %d unit(s) from the broker", restored)
        self._spawn("scheduler", self.scheduler.run, self._scheduler_stop)
        self._spawn("buffers", self.buffer_stage.run, self._buffers_stop)
        self.link.start()

    def reload(self) -> bool:
        """Reload every artifact (SIGHUP); buffers and alert state are kept. False if the old models stay."""
        try:
            device = self.engine_device()
            models = load_models(self.cfg, device)
            for unit, spec in self._units.items():
                needed = required_window_rows(spec, models)
                if needed > self._window_rows[unit]:
                    raise ValueError(
                        f"unit {unit}: new models need {needed}-row windows, the buffers hold {self._window_rows[unit]}"
                    )
            self.scheduler.replace_models(timed(models, self.metrics), timeout_s=30.0)
        except Exception as exc:  # whatever an artifact does, the service keeps running on the old models
            detail = str(exc) if isinstance(exc, StartupError | ValueError | TimeoutError) else repr(exc)
            log.error("model reload refused, keeping the loaded models: %s", detail)
            self.metrics.model_reloads.labels("error").inc()
            return False
        self.metrics.model_info.clear()
        for name, m in models.items():
            self.metrics.model_info.labels(name, m.kind, m.role, str(m.device)).set(1)
        self.metrics.model_reloads.labels("ok").inc()
        log.info("models reloaded: %s", ", ".join(sorted(models)))
        return True

    def engine_device(self) -> torch.device:
        import torch

        return torch.device("cpu") if self.scheduler.on_cpu_fallback else self.device

    def stop(self, deadline_s: float) -> int:
        deadline = time.monotonic() + deadline_s

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        ok = True
        self.link.close_intake()
        for stop, name in ((self._buffers_stop, "buffers"), (self._scheduler_stop, "scheduler")):
            stop.set()
            for thread in self._threads:
                if thread.name == name:
                    thread.join(remaining())
                    if thread.is_alive():
                        log.error("thread %s did not stop before the deadline", name)
                        ok = False
        ok = self.link.stop(remaining()) and ok
        ok = self.http.stop(remaining()) and ok
        log.info("stopped%s", "" if ok else " (some steps missed the deadline)")
        return 0 if ok else 1
