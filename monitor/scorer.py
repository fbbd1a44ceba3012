"""The scorer process: the scoring side (monitor/scoring_side.py) run apart from ingest, fed through shared memory.

Why a process (DESIGN.md "Processes"): one batch makes dozens of GIL hand-offs, each up to the 5 ms switch interval
while paho's loop or the buffer thread is busy (issue 12: 7 ms alone, 290 ms beside one busy thread). So with
``scheduler.scorer: process`` (the default) the front process runs MQTT ingest, the buffers and the journal, and a
scorer process (one per device, spawned, so it shares no lock or thread state with paho) runs the same
ScoringSide that ``scheduler.scorer: thread`` runs on a thread of the one process (tests, tiny installs). The
backtest (monitor/backtest.py) composes the same stages in its own one process, without a thread.

API::

    scorer = ScorerProcess(cfg)          # front: spawns it, it runs preflight(cfg) (StartupError if it fails) and
                                         # sends scorer.plan (specs, horizons, model roles); scorer.table: the
                                         # shared per-unit metric table the front exports
    scorer.prime(jobs)                   # a restart's already-scored windows: forecaster state only
    scorer.feed(jobs, stop)              # thread body: JobQueue -> window slots until stop and empty, then end
    scorer.status() -> ScorerStatus      # alive, its broker link, the models scoring NaN / inf
    scorer.reload() -> bool              # SIGHUP, done in the scorer
    scorer.join(timeout_s) -> bool       # after feed ended: it drains, publishes, saves its marks and exits
    MergedRegistry(registry, scorer.collect)   # what /metrics exposes: both processes' series (merged_metrics.py)

Data: windows travel in shared-memory slots (monitor/window_slots.py), never pickled. The per-unit metric table
(scores, thresholds, sensor errors, forecasts, alert state: most of the series) is one shared block
(monitor/shared_block.py) that the scorer writes and the front's registry exports, so a scrape copies nothing
between processes for it. The scorer's other metrics (histograms, counters) live in its own prometheus_client
registry; at each scrape the front asks for them over the control pipe and merges them in (monitor/merged_metrics.py
says how, and why not prometheus_client's multiprocess mode).

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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import Metric

from monitor.buffers.unit_spec import UnitSpec
from monitor.config import PlantwatchConfig
from monitor.journal import ScoredMarks
from monitor.merged_metrics import table_block_size, table_zeros
from monitor.messages import WindowJob
from monitor.metrics import Metrics
from monitor.scheduler import JobQueue
from monitor.scoring_side import ScoringSide
from monitor.shared_block import SharedBlock
from monitor.window_slots import SlotReader, SlotWriter, WindowSlots
from monitor.wire.topics import ANY, alert_state_topic

if TYPE_CHECKING:
    from monitor.startup import Preflight

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 300.0  # loading big artifacts on a slow disk; a scorer that fails says so at once
REQUEST_TIMEOUT_S = 10.0
RELOAD_TIMEOUT_S = 300.0


class ScorerGone(RuntimeError):
    """The scorer process exited while the front was feeding it."""


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
