"""The composition root: build every stage from the config, start them in order, stop them with a deadline.

API (preflight, StartupError and the artifact loaders are monitor/startup.py):
    app = App(cfg, registry=None)      # binds the metrics port, then preflight(); StartupError (exit 2) on either
    app.start()                        # http, retained alert state, the journal replayed (state.dir), scheduler,
                                       # buffers, then MQTT
    app.reload(cfg=None) -> bool       # SIGHUP: reload every artifact (of cfg: the file read again, its units' model
                                       # sections); an invalid one keeps the old models; the new ones are on
                                       # probation (rolled back if they score NaN / inf live)
    app.failed                         # threading.Event: a worker thread died (the process should exit 1)
    app.stop(deadline_s) -> int        # 0 clean, 1 if a step missed the deadline
    app.ready() -> (bool, reason)      # /readyz: broker connected, models loaded and scoring to finite numbers
    app.metrics_port                   # the bound port (config port 0 = any free port)

Reload probation (monitor/scheduler.py, monitor/probation.py): a reload that passed the probe is counted
``ok``, but the models it replaced are kept until each new model has scored ``scheduler.reload_probation_windows``
complete windows and ``scheduler.reload_probation_s`` seconds have passed. A new model whose live complete
window scores NaN / inf before then is rolled back: the scheduler swaps the previous models back between batches,
scores that batch again with them (no window lost), counts ``model_reloads{result="rolled_back"}`` and logs one
ERROR line naming the model; ``ready()`` follows the restored models' scores. A SIGHUP during a probation
starts a new one against the same fallback (the last models that passed).

Threads: paho's network thread (ingest), "buffers", "scheduler" (scoring and outputs), "http", and with
``recording.path`` set the recording's writers ("recording-rows" here; "recording-alerts" / "-scores" beside the
scheduler, in whichever process it runs; monitor/recording).
Stop order: close the MQTT intake (unacknowledged messages are redelivered to the next session),
drain the readings queue through the buffers, drain the job queue through the scheduler (alerts are
published as they happen), write and sync what the recording's writers hold, publish retained `offline` and
disconnect, stop the HTTP server.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from monitor.alerts.board import AlertBoard
from monitor.buffers.ring_buffers import RingBuffers
from monitor.buffers.unit_spec import UnitSpec
from monitor.config import PlantwatchConfig
from monitor.health import HealthServer, cannot_listen
from monitor.ingest import Parser
from monitor.journal import Journal, ScoredMarks
from monitor.merged_metrics import MergedRegistry, table_zeros
from monitor.metrics import Metrics
from monitor.mqtt import MqttLink, read_retained
from monitor.outputs import OutputStage
from monitor.recording import row_recorder
from monitor.scheduler import JobQueue, Scheduler
from monitor.scorer import ScorerGone, ScorerProcess, ScoringPlan
from monitor.scoring import ScoringEngine
from monitor.scoring_side import ScoringSide
from monitor.stages import BufferStage, Inbox, IngestStage
from monitor.startup import Preflight, StartupError, preflight
from monitor.wire.topics import ANY, alert_state_topic, topic_filter

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

RETAINED_STATE_TIMEOUT_S = 5.0
JOURNAL_ROTATE_S = 60.0  # a journal segment per minute: what is deleted at once when it ages out


class App:
    """The running service; see the module docstring."""

    def __init__(self, cfg: PlantwatchConfig, registry: CollectorRegistry | None = None) -> None:
        self.cfg = cfg
        if registry is None:
            registry = CollectorRegistry()
            # process_* (RSS, CPU, open fds), python_gc_*, python_info: what a soak test and a dashboard watch.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        # Bound first: a busy port is one line before the artifacts load, the slow part of a start.
        try:
            self.http = HealthServer(self.registry, cfg.metrics.host, cfg.metrics.port, self.ready)
        except OSError as exc:
            raise StartupError(cannot_listen(cfg.metrics.host, cfg.metrics.port, exc)) from exc
        self._side: ScoringSide | None = None
        self._scorer: ScorerProcess | None = None
        checked: Preflight | None = None
        try:
            if cfg.scheduler.scorer == "process":
                # The scorer process runs the pre-flight and loads the models: the front holds no model and no
                # inference runtime, only what the plan says of them (window rows, horizons, roles).
                self._scorer = ScorerProcess(cfg)
                plan = self._scorer.plan
            else:
                checked = preflight(cfg)
                plan = ScoringPlan.of(checked)
        except BaseException:
            self.http.stop(timeout_s=1.0)
            raise
        try:
            self._build_front(cfg, plan, checked)
        except BaseException:
            self.http.stop(timeout_s=1.0)
            if self._scorer is not None:
                self._scorer.process.kill()
                self._scorer.join(5.0)
            raise

    def _build_front(self, cfg: PlantwatchConfig, plan: ScoringPlan, checked: Preflight | None) -> None:
        self.device = plan.device
        log.info("scoring on %s", self.device)
        units = {u.name: tuple(u.sensors) for u in cfg.units}
        table = self._scorer.table if self._scorer is not None else None
        self.metrics = Metrics(
            self.registry,
            units=units,
            models=plan.roles,
            horizons=plan.horizons,
            per_unit_zeros=table_zeros(table) if table is not None else np.zeros,
        )
        specs = plan.specs
        self.journal, self.marks = self._restart_state(cfg, specs)
        self.readings = Inbox(cfg.limits.ingest_queue)
        self.jobs = JobQueue(cfg.limits.job_queue, self.metrics)
        # What /metrics serves: the registry, or in process mode the registry with the scorer's series merged in.
        self.exposition: CollectorRegistry | MergedRegistry = self.registry
        if self._scorer is not None:
            self.exposition = MergedRegistry(self.registry, self._scorer.collect)
            self.http.expose(self.exposition)
        else:
            assert checked is not None
            self._side = ScoringSide(cfg, checked, self.metrics, self._publish, self.jobs, self.marks)
        # The aligned rows recorded as the buffers close them (monitor/recording), when recording.path is set.
        self.row_recorder = row_recorder(cfg, self.metrics)
        buffers = RingBuffers(specs, keep_rows=self.row_recorder is not None)
        self.buffer_stage = BufferStage(buffers, self.readings, self.jobs, self.metrics, self.row_recorder)
        self.parser = Parser.from_config(cfg)
        self.ingest = IngestStage(self.parser, self.readings, self.metrics, self.journal)
        self.link = MqttLink(cfg.mqtt, self._subscriptions(), self.ingest.handle, self.metrics)
        self.failed = threading.Event()
        self._buffers_stop = threading.Event()
        self._scheduler_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._models_loaded = True
        # Evaluated at every scrape (on the http thread, from the same flags as /readyz): always current, and
        # nothing to keep in step with the connect, subscribe and disconnect callbacks or a reload.
        self.metrics.ready.set_function(lambda: 1.0 if self.ready()[0] else 0.0)

    # The scoring side, in single-process mode (scheduler.scorer: thread); tests reach into it.

    @property
    def side(self) -> ScoringSide:
        if self._side is None:
            raise RuntimeError("scheduler.scorer is 'process': scoring runs in the scorer process")
        return self._side

    @property
    def engine(self) -> ScoringEngine:
        return self.side.engine

    @property
    def scheduler(self) -> Scheduler:
        return self.side.scheduler

    @property
    def outputs(self) -> OutputStage:
        return self.side.outputs

    @property
    def board(self) -> AlertBoard:
        return self.side.board

    @staticmethod
    def _restart_state(
        cfg: PlantwatchConfig, specs: Mapping[str, UnitSpec]
    ) -> tuple[Journal | None, ScoredMarks | None]:
        """The journal and the scoring marks under ``state.dir`` (monitor/journal.py); (None, None) without one."""
        if cfg.state.dir is None:
            return None, None
        # Keep what refills every unit's ring buffer: its capacity in rows, its lateness, and a segment's length.
        retain_s = max(spec.capacity * spec.period_s + spec.max_lateness_s for spec in specs.values())
        try:
            journal = Journal(cfg.state.dir / "journal", retain_s + JOURNAL_ROTATE_S, rotate_s=JOURNAL_ROTATE_S)
        except OSError as exc:
            raise StartupError(f"state.dir: cannot use {cfg.state.dir}: {exc}") from exc
        return journal, ScoredMarks(cfg.state.dir / "scored.json", cfg.state.marks_every_s)

    def _recover(self) -> None:
        """The killed (or stopped) process's buffers back from the journal, before any thread runs."""
        if self.journal is None or self.marks is None:
            return
        started = time.monotonic()
        replay = self.buffer_stage.replay(self.parser, self.journal.directory, self.marks.load())
        if replay.primes and self._scorer is not None:
            self._scorer.prime(replay.primes)
        elif replay.primes:
            self.engine.run(replay.primes)  # outputs dropped: only the forecasters' state for the next row is wanted
        log.info(
            "restart state: %d journaled message(s) replayed (%d refused), %d window(s) not scored before queued, "
            "in %.2f s",
            replay.placed,
            replay.refused,
            replay.rescored,
            time.monotonic() - started,
        )

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
        else:
            ready, reason = self._scoring_ready()
        return ready, reason

    def _scoring_ready(self) -> tuple[bool, str]:
        if self._scorer is None:
            failing = tuple(sorted(self.engine.failing_models))
        else:
            status = self._scorer.status()
            if not status.alive:
                return False, f"the scorer process exited (code {status.exitcode})"
            if not status.connected:
                return False, "the scorer process is not connected to the MQTT broker"
            failing = status.failing
        if failing:
            return False, f"model(s) {', '.join(failing)} score NaN or inf"
        return True, "ready"

    def _feed(self, stop: threading.Event) -> None:
        assert self._scorer is not None
        try:
            self._scorer.feed(self.jobs, stop)
        except ScorerGone as exc:  # the service cannot score any more: `plantwatch run` exits 1 and is restarted
            log.error("%s; the service stops", exc)
            self.failed.set()

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
        if self._scorer is None:  # the scorer process restores its own
            state_filter = alert_state_topic(self.cfg.mqtt.topics.prefix, ANY)
            retained = read_retained(self.cfg.mqtt, state_filter, RETAINED_STATE_TIMEOUT_S)
            if retained:
                restored = self.outputs.restore(retained)
                log.info("restored the alert state of %d unit(s) from the broker", restored)
        self._recover()
        if self.row_recorder is not None:
            self.row_recorder.start()
        if self._scorer is not None:
            self._spawn("feeder", self._feed, self._scheduler_stop)
        else:
            self.side.start_recording()
            self._spawn("scheduler", self.scheduler.run, self._scheduler_stop)
        self._spawn("buffers", self.buffer_stage.run, self._buffers_stop)
        self.link.start()

    def reload(self, cfg: PlantwatchConfig | None = None) -> bool:
        """Reload every artifact (SIGHUP); buffers and alert state are kept. False if the old models stay.

        ``cfg``: the config read again (monitor.config.with_model_sections: the running one with the units'
        detector, forecaster and shadow sections of the file), so that a promotion takes effect; None: the
        running config's artifacts, read again from their paths.
        True: the new models are scoring, on probation (a later rollback is the scheduler's; see the module
        docstring). In process mode the scorer process reloads (ScoringSide.reload, the same code)."""
        fresh = self.cfg if cfg is None else cfg
        ok = self._scorer.reload(fresh) if self._scorer is not None else self.side.reload(fresh)
        if ok:
            self.cfg = fresh
        return ok

    def stop(self, deadline_s: float) -> int:
        deadline = time.monotonic() + deadline_s

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        ok = True
        self.link.close_intake()
        # The feeder (process mode) takes the scheduler thread's place: it drains the job queue into the scorer.
        scoring_thread = "feeder" if self._scorer is not None else "scheduler"
        for stop, name in ((self._buffers_stop, "buffers"), (self._scheduler_stop, scoring_thread)):
            stop.set()
            for thread in self._threads:
                if thread.name == name:
                    thread.join(remaining())
                    if thread.is_alive():
                        log.error("thread %s did not stop before the deadline", name)
                        ok = False
        if self._scorer is not None:  # it scores what it was sent, publishes, records, saves its marks and exits
            ok = self._scorer.join(remaining()) and ok
        else:
            ok = self.side.stop_recording(remaining()) and ok
        if self.row_recorder is not None:  # the buffers are drained: every row they closed is queued
            ok = self.row_recorder.stop(remaining()) and ok
        ok = self.link.stop(remaining()) and ok
        if self.journal is not None:
            self.journal.close()
        ok = self.http.stop(remaining()) and ok
        log.info("stopped%s", "" if ok else " (some steps missed the deadline)")
        return 0 if ok else 1
