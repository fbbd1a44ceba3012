"""The scoring side of the service (scheduler, engine, alert board, outputs) and the process that runs it apart.

Why a process (DESIGN.md "Processes"): one batch makes dozens of GIL hand-offs, each up to the 5 ms switch interval
while paho's loop or the buffer thread is busy (issue 12: 7 ms alone, 290 ms beside one busy thread). So with
``scheduler.scorer: process`` (the default) the front process runs MQTT ingest, the buffers and the journal, and a
scorer process (one per device, spawned, so it shares no lock or thread state with paho) runs the same
ScoringSide that ``scheduler.scorer: thread`` runs on a thread of the one process (tests, tiny installs). The
backtest (monitor/backtest.py) composes the same stages in its own one process, without a thread.

API::

    side = ScoringSide(cfg, checked, metrics, publish, jobs, marks)   # either mode: the same stages
    side.scheduler.run(stop); side.reload(cfg) -> bool; side.engine; side.outputs; side.board

    scorer = ScorerProcess(cfg)          # front: spawns it, it runs preflight(cfg) (StartupError if it fails) and
                                         # sends scorer.plan (specs, horizons, model roles); scorer.table: the
                                         # shared per-unit metric table the front exports
    scorer.prime(jobs)                   # a restart's already-scored windows: forecaster state only
    scorer.feed(jobs, stop)              # thread body: JobQueue -> window slots until stop and empty, then end
    scorer.status() -> ScorerStatus      # alive, its broker link, the models scoring NaN / inf
    scorer.reload() -> bool              # SIGHUP, done in the scorer
    scorer.join(timeout_s) -> bool       # after feed ended: it drains, publishes, saves its marks and exits
    MergedRegistry(registry, scorer.collect)   # what /metrics exposes: both processes' series in one scrape

Data: windows travel in shared-memory slots (monitor/window_slots.py), never pickled. The per-unit metric table
(scores, thresholds, sensor errors, forecasts, alert state: most of the series) is one shared block
(monitor/shared_block.py) that the scorer writes and the front's registry exports, so a scrape copies nothing
between processes for it. The scorer's other metrics (histograms, counters) live in its own prometheus_client
registry; at each scrape the front asks for them over the control pipe and merges them into its own families
(``merge_families``: counters and histograms add up, a gauge set in one process wins over the other's 0,
``plantwatch_mqtt_connected`` is the lower of the two links, ``plantwatch_ready`` is the front's). Chosen over
prometheus_client's multiprocess mode, which does not support the service's custom collectors (the per-unit
table, ``set_function`` gauges, the process collector) and writes a file per metric and process.

Outputs leave from where they are computed: the scorer has its own broker connection (``<client_id>-scorer``,
publish only, no status topic) for alerts, scores and forecasts, and restores the retained alert state itself.
Lifecycle: a scorer that exits or crashes makes the feeder thread fail, so ``App.failed`` is set and `plantwatch
run` exits 1 (systemd / compose restart it, and the journal refills the buffers). A front killed with -9 closes
the pipes: the scorer sees the end of its input and exits.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import Metric

from monitor.alerts.board import AlertBoard
from monitor.buffers.unit_spec import UnitSpec
from monitor.config import PlantwatchConfig
from monitor.journal import ScoredMarks
from monitor.messages import WindowJob
from monitor.metrics import Metrics
from monitor.mqtt_sink import MqttSink, Publish
from monitor.outputs import OutputStage
from monitor.params import specs_from_config
from monitor.recording import results_recording
from monitor.scheduler import JobQueue, JobSource, Scheduler, show_models
from monitor.scoring import ScoringEngine, UnitModels, required_window_rows
from monitor.shared_block import SharedBlock
from monitor.sinks import Sink
from monitor.timed_models import timed
from monitor.unit_metrics import UnitTable
from monitor.window_slots import SlotReader, SlotWriter, WindowSlots
from monitor.wire.topics import ANY, alert_state_topic

if TYPE_CHECKING:
    from models.model_api import ScoringModel
    from monitor.startup import Preflight

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 300.0  # loading big artifacts on a slow disk; a scorer that fails says so at once
REQUEST_TIMEOUT_S = 10.0
RELOAD_TIMEOUT_S = 300.0


class ScorerGone(RuntimeError):
    """The scorer process exited while the front was feeding it."""


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


# --- metrics: one scrape over both processes ---

MIN_GAUGES = frozenset({"plantwatch_mqtt_connected"})  # the service is connected when both of its links are
FRONT_ONLY = frozenset({"plantwatch_ready"})  # computed from both processes by the front's ready()


def _combine(family: Metric, sample_name: str, mine: float, theirs: float) -> float:
    if sample_name.endswith("_created") or (family.type == "gauge" and family.name in MIN_GAUGES):
        return min(mine, theirs)
    if mine != mine:  # NaN: the other process's value
        return theirs
    if theirs != theirs:
        return mine
    return mine + theirs  # counters and histograms add up; a gauge is set in one process, 0 in the other


def merge_families(local: Iterable[Metric], remote: Iterable[Metric]) -> list[Metric]:
    """The front's families with the scorer's merged in (see the module docstring); order: the front's first."""
    theirs = {family.name: family for family in remote}
    merged: list[Metric] = []
    for family in local:
        other = theirs.pop(family.name, None)
        if other is None or family.name in FRONT_ONLY:
            merged.append(family)
            continue
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample
        for sample in other.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            mine = samples.get(key)
            if mine is None:
                samples[key] = sample
            else:
                samples[key] = mine._replace(value=_combine(family, sample.name, mine.value, sample.value))
        combined = Metric(family.name, family.documentation, family.type, family.unit)
        combined.samples = list(samples.values())
        merged.append(combined)
    merged.extend(theirs.values())
    return merged


class MergedRegistry:
    """What /metrics exposes in process mode: the front registry's families with the scorer's merged in."""

    def __init__(self, local: CollectorRegistry, remote: Callable[[], list[Metric]]) -> None:
        self._local = local
        self._remote = remote

    def collect(self) -> Iterable[Metric]:
        return merge_families(self._local.collect(), self._remote())

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        wanted = dict(labels or {})
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return float(sample.value)
        return None


def table_block_size(units: Mapping[str, Sequence[str]], horizons: Iterable[int]) -> int:
    """Bytes of the shared block that holds the per-unit metric table (monitor.unit_metrics.UnitTable)."""
    shapes = UnitTable.array_shapes(units, tuple(horizons))
    return SharedBlock.size_of((np.float64, shape) for shape in shapes.values())


def table_zeros(block: SharedBlock) -> Callable[[tuple[int, ...]], Any]:
    """UnitTable's allocator on ``block``: both processes carve the table's arrays in the same order."""
    carve = block.carver()
    return lambda shape: carve(np.float64, shape)


# --- the scorer process ---


@dataclass(frozen=True)
class ScorerStatus:
    alive: bool
    connected: bool = False  # the scorer's own broker link (alerts leave through it)
    failing: tuple[str, ...] = ()  # models whose latest complete windows scored NaN / inf
    exitcode: int | None = None


@dataclass(frozen=True)
class ScoringPlan:
    """What the front needs of the models, sent by the scorer after its pre-flight: the front loads none."""

    device: str
    specs: dict[str, UnitSpec]  # the buffers' parameters per unit (window rows from the models)
    horizons: tuple[int, ...]  # forecast steps exported as metrics
    roles: dict[str, str]  # model name -> "detector" | "forecaster"

    @classmethod
    def of(cls, checked: Preflight) -> ScoringPlan:
        models = checked.models
        horizons = {h for m in models.values() if m.role == "forecaster" for h in (1, m.horizon)}
        roles = {name: model.role for name, model in models.items()}
        return cls(str(checked.device), dict(checked.specs), tuple(sorted(horizons)), roles)


@dataclass(frozen=True)
class _Wiring:
    """What the spawned scorer is given (pickled once at spawn: pipe ends, no window data)."""

    ready: Connection  # window slot indices in
    free: Connection  # freed slot indices out
    control: Connection  # the start handshake, then requests from the front, one at a time, and replies
    log_level: int


@dataclass(frozen=True)
class _Blocks:
    """The front's answer to the plan: the shared blocks it made for the scorer to attach."""

    slots_name: str
    n_slots: int
    max_rows: int
    table_name: str


def _serve(control: Connection, handlers: Mapping[str, Callable[..., Any]], stopped: threading.Event) -> None:
    """The scorer's control thread: answer each request (id, verb, args) with (id, ok, value)."""
    while not stopped.is_set():
        try:
            if not control.poll(0.5):
                continue
            request_id, verb, args = control.recv()
        except (EOFError, OSError):
            return  # the front is gone: the ready pipe tells the scheduler too
        try:
            reply = (request_id, True, handlers[verb](*args))
        except Exception as exc:
            log.exception("scorer request %r failed", verb)
            reply = (request_id, False, repr(exc))
        try:
            control.send(reply)
        except (EOFError, OSError):
            return


def scorer_main(cfg: PlantwatchConfig, wiring: _Wiring) -> None:
    """The scorer process's body (spawned by ScorerProcess)."""
    logging.basicConfig(
        level=wiring.log_level, format="%(asctime)s %(levelname)s [scorer:%(threadName)s] %(name)s: %(message)s"
    )
    threading.current_thread().name = "scheduler"
    from monitor.mqtt import MqttLink, read_retained
    from monitor.startup import StartupError, preflight

    control = wiring.control
    try:
        checked = preflight(cfg)  # every check `run` makes: the front has made none of the model checks
    except StartupError as exc:
        control.send((0, False, str(exc)))
        return
    plan = ScoringPlan.of(checked)
    control.send((0, True, plan))
    try:
        blocks: _Blocks = control.recv()
    except (EOFError, OSError):
        return  # the front gave up
    registry = CollectorRegistry()
    ProcessCollector(namespace="plantwatch_scorer", registry=registry)  # its RSS, CPU and fds beside the front's
    table = SharedBlock.attach(blocks.table_name)
    metrics = Metrics(
        registry,
        units={u.name: tuple(u.sensors) for u in cfg.units},
        models=plan.roles,
        horizons=plan.horizons,
        per_unit_zeros=table_zeros(table),
        export_per_unit=False,
    )
    link = MqttLink(cfg.mqtt, [], None, metrics, publisher_only=True)
    units = {u.name: tuple(u.sensors) for u in cfg.units}
    slots = WindowSlots.attach(blocks.slots_name, blocks.n_slots, blocks.max_rows, units)
    side: ScoringSide | None = None

    def prime(jobs: list[WindowJob]) -> None:
        assert side is not None
        side.engine.run(jobs)  # outputs dropped: only the forecasters' state for the next row is wanted

    reader = SlotReader(slots, wiring.ready, wiring.free, on_primes=prime)
    marks = ScoredMarks(cfg.state.dir / "scored.json", cfg.state.marks_every_s) if cfg.state.dir else None
    try:
        side = ScoringSide(cfg, checked, metrics, link.publish, reader, marks)
    except StartupError as exc:
        control.send((0, False, str(exc)))
        return
    del checked  # the engine holds the models it serves (timed wrappers); a reload replaces them
    control.send((0, True, "up"))
    stopped = threading.Event()
    handlers: dict[str, Callable[..., Any]] = {
        "collect": lambda: list(registry.collect()),
        "status": lambda: (link.connected.is_set(), tuple(sorted(side.engine.failing_models))),
        "reload": lambda fresh=None: side.reload(fresh or cfg),
    }
    threading.Thread(target=_serve, args=(control, handlers, stopped), name="control", daemon=True).start()
    state_filter = alert_state_topic(cfg.mqtt.topics.prefix, ANY)
    retained = read_retained(cfg.mqtt, state_filter, 5.0)
    if retained:
        log.info("restored the alert state of %d unit(s) from the broker", side.outputs.restore(retained))
    link.start()
    side.start_recording()
    side.scheduler.run(reader.ended)  # until the front's end (or its death), then what is still queued
    # Orphaned (the front was killed): leave at once, the restarted service's scorer takes over from the marks.
    deadline = time.monotonic() + (1.0 if reader.orphaned else cfg.shutdown_timeout_s)
    side.stop_recording(max(0.1, min(5.0, deadline - time.monotonic())))
    if not link.connected.wait(max(0.1, min(5.0, deadline - time.monotonic()))):
        log.warning("scorer: broker not connected at stop; unsent alerts are lost with the process")
    link.stop(max(0.1, deadline - time.monotonic()))
    stopped.set()
    slots.close()
    log.info("scorer stopped")


class ScorerProcess:
    """The front's handle on its scorer process (see the module docstring)."""

    def __init__(self, cfg: PlantwatchConfig) -> None:
        """Spawn the scorer, which runs the pre-flight (StartupError with its message), then make the blocks its
        plan needs: ``self.plan``, ``self.table`` (the per-unit metric table) and the window slots."""
        from monitor.startup import StartupError

        ctx = multiprocessing.get_context("spawn")  # a fork would copy paho's threads' locks mid-state
        units = {u.name: tuple(u.sensors) for u in cfg.units}
        ready_recv, ready_send = ctx.Pipe(duplex=False)
        free_recv, free_send = ctx.Pipe(duplex=False)
        self._control, child_control = ctx.Pipe()
        self._lock = threading.Lock()
        self._next_id = 1
        wiring = _Wiring(ready_recv, free_send, child_control, logging.getLogger().getEffectiveLevel())
        self.process = ctx.Process(target=scorer_main, args=(cfg, wiring), name="plantwatch-scorer", daemon=True)
        self.process.start()
        for end in (ready_recv, free_send, child_control):
            end.close()  # the child's ends: closed here, so the child's exit is seen as EOF
        self._ready_send = ready_send
        ok, plan = self._handshake()
        if not ok:
            raise StartupError(str(plan))
        self.plan: ScoringPlan = plan
        max_rows = max(spec.window_rows for spec in plan.specs.values())
        # Room for two full batches: the scorer frees a slot as soon as it has copied the window out.
        self.slots = WindowSlots.create(max(2 * cfg.scheduler.max_batch, 64), max_rows, units)
        self.table = SharedBlock.create(table_block_size(units, plan.horizons))
        self._control.send(_Blocks(self.slots.block.name, self.slots.n_slots, max_rows, self.table.name))
        ok, message = self._handshake()
        if not ok:
            self.close()
            raise StartupError(str(message))
        self.writer = SlotWriter(self.slots, ready_send, free_recv)
        log.info("scorer process %d up, scoring on %s", self.process.pid, plan.device)

    def _handshake(self) -> tuple[bool, Any]:
        """The scorer's next start message: (True, what it sent) or (False, why it did not start)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._control.poll(0.2):
                try:
                    _, ok, value = self._control.recv()
                except (EOFError, OSError):
                    break
                if not ok:
                    self.process.join(5.0)
                return bool(ok), value
            if not self.process.is_alive():
                break
        self.process.kill()
        self.process.join(5.0)
        return False, f"scheduler.scorer: the scorer process did not start (exit code {self.process.exitcode})"

    def request(self, verb: str, *args: Any, timeout_s: float = REQUEST_TIMEOUT_S) -> Any:
        """One request to the scorer; RuntimeError if it is gone, fails or does not answer in time."""
        if not self._lock.acquire(timeout=timeout_s):
            raise RuntimeError("the scorer is busy with another request")
        try:
            request_id = self._next_id
            self._next_id += 1
            self._control.send((request_id, verb, args))
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if not self._control.poll(max(0.0, deadline - time.monotonic())):
                    break
                got_id, ok, value = self._control.recv()
                if got_id != request_id:
                    continue  # the late answer to a request that timed out
                if not ok:
                    raise RuntimeError(f"scorer: {verb} failed: {value}")
                return value
            raise RuntimeError(f"the scorer did not answer {verb!r} within {timeout_s:.0f} s")
        except (EOFError, OSError) as exc:
            raise RuntimeError(f"the scorer process is gone ({exc!r})") from exc
        finally:
            self._lock.release()

    def collect(self) -> list[Metric]:
        """The scorer's metric families (none while it cannot answer: that scrape shows the front's alone)."""
        if not self.process.is_alive():
            return []
        try:
            families: list[Metric] = self.request("collect")
        except RuntimeError as exc:
            log.warning("scrape without the scorer's metrics: %s", exc)
            return []
        return families

    def status(self) -> ScorerStatus:
        if not self.process.is_alive():
            return ScorerStatus(alive=False, exitcode=self.process.exitcode)
        try:
            connected, failing = self.request("status", timeout_s=2.0)
        except RuntimeError:
            return ScorerStatus(alive=True)
        return ScorerStatus(alive=True, connected=bool(connected), failing=tuple(failing))

    def reload(self, cfg: PlantwatchConfig | None = None) -> bool:
        """The scorer reloads ``cfg``'s artifacts (None: the config it was started with)."""
        try:
            return bool(self.request("reload", *([] if cfg is None else [cfg]), timeout_s=RELOAD_TIMEOUT_S))
        except RuntimeError as exc:
            log.error("model reload not done: %s", exc)
            return False

    def _check_alive(self) -> None:
        if self.process.exitcode is not None:
            raise ScorerGone(f"the scorer process exited with code {self.process.exitcode}")

    def prime(self, jobs: Sequence[WindowJob]) -> None:
        """Windows scored before a restart: the scorer runs them for its forecasters' state, before any other."""
        placed = 0
        while placed < len(jobs):
            placed += self.writer.send(jobs[placed:], timeout_s=1.0, prime=True)
            self._check_alive()

    def feed(self, jobs: JobQueue, stop: threading.Event) -> None:
        """Thread body: the buffers' windows into the slots, until ``stop`` and an empty queue; then the end mark.

        Raises ScorerGone when the scorer process has exited (App marks the service failed)."""
        while True:
            stopping = stop.is_set()
            taken = jobs.take(self.slots.n_slots, 0.0, 0.05 if stopping else 0.2)
            placed = 0
            while placed < len(taken):
                placed += self.writer.send(taken[placed:], timeout_s=0.5)
                self._check_alive()
            if not taken and stopping:
                self.writer.end()
                return
            self._check_alive()

    def join(self, timeout_s: float) -> bool:
        """Wait for the scorer to finish (after ``feed`` sent the end mark); kill it at the deadline."""
        self.process.join(timeout_s)
        clean = self.process.exitcode == 0
        if self.process.is_alive():
            log.error("the scorer process did not stop before the deadline; killed")
            self.process.kill()
            self.process.join(2.0)
            clean = False
        self.close()
        return clean

    def close(self) -> None:
        """The pipes and the blocks (unlinked: the scorer has them mapped as long as it runs)."""
        with contextlib.suppress(OSError):
            self._ready_send.close()
        self.slots.close()
        self.table.close()
        self.table.unlink()
