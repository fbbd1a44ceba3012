"""The scheduler: one thread batches the due windows of all units and scores them, one forward per model.

API:
    jobs = JobQueue(maxsize=10000, metrics=metrics)        # buffer thread: jobs.put(job)
    scheduler = Scheduler(engine, jobs, sink, metrics, max_batch=256, max_delay_s=0.02, max_lag_s=2.0, marks=None,
                          probation_windows=100, probation_s=60.0)
    threading.Thread(target=scheduler.run, args=(stop,), name="scheduler").start()   # after stop: drains the queue
    scheduler.process(list_of_jobs)                        # one step, synchronously (tests)
    scheduler.replace_models(models, timeout_s) -> None    # SIGHUP: swapped between batches; ValueError if refused;
                                                           # the new models then go on probation
    scheduler.probation                                    # the reload on trial (monitor.probation.Probation) or None
    show_models(metrics, models)                           # plantwatch_model_info for the models being served

Batching: after the first job arrives the scheduler waits at most ``max_delay_s`` for a fuller batch
(``max_batch``), then takes everything queued and scores it in batches of at most ``max_batch``.
When it has fallen behind (a taken window arrived more than ``max_lag_s`` ago), it keeps each unit's
newest window and drops that unit's stale older ones, counted in
``plantwatch_windows_skipped_total{reason="backlog"}``: freshness beats completeness. A redelivered backlog
is not "behind" and is scored completely (it is the data that would otherwise be lost): a unit whose taken
windows span more event time than ``BURST_SPEEDUP`` times the receive time they arrived over (and more
than ``max_lag_s``) came in faster than real time -- a broker redelivering a restart's queue, a replay,
the journal of a restarted service -- while a unit that only fell behind arrived at its own pace. A
backlog bigger than the job queue still loses its oldest windows (``reason="queue_full"``).
The ScoringEngine (monitor.scoring) groups a batch by model: one ``infer`` per model per call.

CUDA out-of-memory halves the batch and retries; a single window that still does not fit moves the
engine to the CPU for good (``plantwatch_gpu_oom_total``, ``plantwatch_cpu_fallback_total``).
Pinned host memory, non-blocking copies and the padding of a batch to a few fixed sizes are the models' business
(models.model_api.padded_infer; LoadedModel.infer moves the batch). The service hands the engine its models wrapped
by monitor.timed_models.timed, so that their calls feed ``plantwatch_inference_seconds`` and
``plantwatch_batch_size_windows``.

Reload probation (monitor/probation.py): a swap keeps the models it replaced as the fallback. Until every
model that changed has scored ``probation_windows`` complete windows and ``probation_s`` seconds have passed
(whichever is later; both 0: no probation), each batch is scored with the engine's state saved first
(ScoringEngine.snapshot). If a model on trial puts out NaN / inf on a complete window, the scheduler, on its
own thread and before the batch reaches the sink, restores that state, swaps the fallback back
(ScoringEngine.replace_models: the restored forecasters start without a pending forecast, so each of their
units misses one forecast Score) and scores the same batch again: no window is lost to the failed model, its
outputs are discarded, and ``failing_models`` (readiness) is judged on the restored models' outputs. Counted in
``plantwatch_model_reloads_total{result="rolled_back"}``, one ERROR line naming the model and what it scored. A
reload during a probation replaces it: the models on trial are dropped, and the fallback stays the last models
that passed (or were loaded at start). After a probation passes the fallback is dropped (its memory freed).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

from monitor import memtrim
from monitor.journal import ScoredMarks
from monitor.messages import WindowJob
from monitor.metrics import Metrics
from monitor.probation import PROBATION_S, PROBATION_WINDOWS, Failure, Probation
from monitor.scoring import ScoringEngine
from monitor.scoring_records import EngineState, ScoringOutput, UnitModels

if TYPE_CHECKING:
    from models.model_api import ScoringModel

log = logging.getLogger(__name__)

TRIM_EVERY_S = 5.0  # malloc_trim takes a few ms: at most this often

Sink = Callable[[ScoringOutput], None]


class JobSource(Protocol):
    """Where the scheduler takes its windows: a JobQueue (one process) or the scorer's SlotReader
    (monitor/window_slots.py)."""

    def take(self, max_items: int, max_delay_s: float, timeout_s: float) -> list[WindowJob]: ...

    def __len__(self) -> int: ...


class JobQueue:
    """Bounded FIFO of WindowJobs from the buffer thread to the scheduler; when full, the oldest is dropped."""

    def __init__(self, maxsize: int, metrics: Metrics | None = None) -> None:
        self._items: deque[WindowJob] = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._metrics = metrics
        self._wake_at = 1  # queue length at which a waiting take() is woken (not on every put: a thread switch)

    def put(self, job: WindowJob) -> None:
        with self._cond:
            if len(self._items) >= self._maxsize:
                self._items.popleft()  # the oldest is the least useful (freshness beats completeness)
                if self._metrics is not None:
                    self._metrics.windows_skipped.labels("queue_full").inc()
                    self._metrics.queue_dropped.labels("jobs").inc()
            self._items.append(job)
            if len(self._items) == 1 or len(self._items) >= self._wake_at:
                self._cond.notify()

    def take(self, max_items: int, max_delay_s: float, timeout_s: float) -> list[WindowJob]:
        """Wait up to ``timeout_s`` for a first job, then up to ``max_delay_s`` for ``max_items``; take all queued."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: bool(self._items), timeout_s):
                return []
            if len(self._items) < max_items and max_delay_s > 0:
                self._wake_at = max_items
                self._cond.wait_for(lambda: len(self._items) >= max_items, max_delay_s)
                self._wake_at = 1
            taken = list(self._items)
            self._items.clear()
            return taken

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


# A unit's windows that cover this many times more event time than the receive time they arrived over came faster
# than the source produces them: a backlog, not lag. 2 leaves room for jitter in a live stream's arrival times.
BURST_SPEEDUP = 2.0


def _bursting_units(jobs: Sequence[WindowJob], min_event_span_s: float) -> set[str]:
    """Units whose windows in ``jobs`` arrived faster than real time (see the module docstring)."""
    spans: dict[str, list[float]] = {}  # unit -> [first end_ts, last end_ts, first received_at, last received_at]
    for job in jobs:
        span = spans.get(job.unit)
        if span is None:
            spans[job.unit] = [job.end_ts, job.end_ts, job.received_at, job.received_at]
        else:
            span[0], span[1] = min(span[0], job.end_ts), max(span[1], job.end_ts)
            span[2], span[3] = min(span[2], job.received_at), max(span[3], job.received_at)
    return {
        unit
        for unit, (first, last, arrived_first, arrived_last) in spans.items()
        if last - first > min_event_span_s and last - first > BURST_SPEEDUP * (arrived_last - arrived_first)
    }


def newest_per_unit(
    jobs: Sequence[WindowJob], stale_before: float = math.inf, keep_units: set[str] | frozenset[str] = frozenset()
) -> tuple[list[WindowJob], int]:
    """Drop each job that has a newer one of its unit and arrived before ``stale_before``, except the jobs of
    ``keep_units``; (kept, dropped)."""
    newest: dict[str, int] = {}
    for i, job in enumerate(jobs):
        newest[job.unit] = i
    keep = [
        job
        for i, job in enumerate(jobs)
        if newest[job.unit] == i or job.received_at >= stale_before or job.unit in keep_units
    ]
    return keep, len(jobs) - len(keep)


def show_models(metrics: Metrics, models: Mapping[str, ScoringModel]) -> None:
    """plantwatch_model_info: one series per model being served."""
    metrics.model_info.clear()
    for name, m in models.items():
        metrics.model_info.labels(name, m.kind, m.role, str(m.device)).set(1)


def _is_cuda_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # an OOM can only come from torch once it is loaded: never import it here
    if torch is None:
        return False
    return isinstance(exc, torch.cuda.OutOfMemoryError)


class Scheduler:
    """Owns the ScoringEngine (and so the models and the device); runs on one thread."""

    def __init__(
        self,
        engine: ScoringEngine,
        jobs: JobSource,
        sink: Sink,
        metrics: Metrics | None = None,
        max_batch: int = 256,
        max_delay_s: float = 0.02,
        max_lag_s: float = 2.0,
        marks: ScoredMarks | None = None,
        probation_windows: int = PROBATION_WINDOWS,
        probation_s: float = PROBATION_S,
    ) -> None:
        self._engine = engine
        self._probation_windows = probation_windows
        self._probation_s = probation_s
        self._probation: Probation | None = None
        self._marks = marks  # what was scored, for a restart's replay (monitor/journal.py)
        self._max_lag_s = max_lag_s
        self._jobs = jobs
        self._sink = sink
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._swap: tuple[Mapping[str, ScoringModel], Mapping[str, UnitModels] | None, Future[None]] | None = None
        self._swap_lock = threading.Lock()
        self._idle = threading.Event()
        self._next_trim = 0.0
        self.on_cpu_fallback = False

    @property
    def engine(self) -> ScoringEngine:
        return self._engine

    @property
    def probation(self) -> Probation | None:
        return self._probation

    def run(self, stop: threading.Event) -> None:
        """Thread body: take, score, hand to the sink, until ``stop``; then score what is still queued."""
        while True:
            self._apply_swap()
            stopping = stop.is_set()
            jobs = self._jobs.take(self._max_batch, 0.0 if stopping else self._max_delay_s, 0.05 if stopping else 0.5)
            if jobs:
                try:
                    self.process(jobs)
                except Exception:
                    log.exception("scoring a batch of %d windows failed", len(jobs))
                    if self._metrics is not None:
                        self._metrics.stage_errors.labels("scheduler").inc()
            elif stopping:
                self._save_marks(idle=True)
                self._idle.set()
                return
            self._save_marks(idle=len(self._jobs) == 0)
            self._maybe_trim()

    def _save_marks(self, idle: bool) -> None:
        if self._marks is None:
            return
        if self._marks.save_due(idle) is False and self._metrics is not None:
            self._metrics.checkpoint_failures.labels("marks").inc()

    def _maybe_trim(self) -> None:
        """RSS back from the largest batch's high-water mark (monitor/memtrim.py), at most every TRIM_EVERY_S."""
        now = time.monotonic()
        if now >= self._next_trim:
            self._next_trim = now + TRIM_EVERY_S
            memtrim.trim()

    def process(self, jobs: Sequence[WindowJob]) -> None:
        """Score ``jobs`` (newest per unit when behind, a backlog completely) in batches of at most ``max_batch``."""
        stale_before = time.time() - self._max_lag_s
        if any(job.received_at < stale_before for job in jobs):
            jobs, skipped = newest_per_unit(jobs, stale_before, _bursting_units(jobs, self._max_lag_s))
            if skipped and self._metrics is not None:
                self._metrics.windows_skipped.labels("backlog").inc(skipped)
        for start in range(0, len(jobs), self._max_batch):
            batch = jobs[start : start + self._max_batch]
            out = self._score(batch)
            self._sink(out)
            if self._marks is not None:
                self._marks.update(batch)

    def _score(self, batch: Sequence[WindowJob]) -> ScoringOutput:
        """Score one batch; while a reload is on probation, judge it and roll back on a non-finite output."""
        trial = self._probation
        if trial is None:
            return self._run(batch)
        saved = self._engine.snapshot()
        out = self._run(batch)
        failure = trial.observe(out.judged)
        if failure is not None:
            self._roll_back(trial, failure, saved)
            return self._run(batch)  # the same windows, scored by the models that passed
        if trial.passed(time.monotonic()):
            self._probation = None  # the last reference to the fallback models: their memory goes with it
            log.info(
                "reloaded model(s) %s passed probation (%s complete windows); the previous models are released",
                ", ".join(sorted(trial.on_trial)),
                ", ".join(f"{name} {trial.scored.get(name, 0)}" for name in sorted(trial.on_trial)),
            )
        return out

    def _roll_back(self, trial: Probation, failure: Failure, saved: EngineState) -> None:
        self._probation = None
        self._engine.restore(saved)
        self._engine.replace_models(trial.fallback, trial.fallback_units)  # served before: the engine accepted it
        if self.on_cpu_fallback:  # the fallback was loaded before a CUDA OOM moved scoring to the CPU
            self._engine.to("cpu")
        verdict = failure.verdict
        log.error(
            "reloaded model %s scored %s on %d of %d complete windows while on probation: rolled back to the "
            "previous models, which score this batch again",
            failure.model,
            verdict.example,
            verdict.non_finite,
            verdict.windows,
        )
        if self._metrics is not None:
            self._metrics.model_reloads.labels("rolled_back").inc()
            show_models(self._metrics, self._engine.models)

    def _run(self, jobs: Sequence[WindowJob]) -> ScoringOutput:
        try:
            return self._engine.run(jobs)
        except Exception as exc:
            if not _is_cuda_oom(exc):
                raise
        if self._metrics is not None:
            self._metrics.gpu_oom.inc()
        import torch

        torch.cuda.empty_cache()
        if len(jobs) > 1:
            half = len(jobs) // 2
            log.warning("CUDA out of memory on %d windows; retrying in halves", len(jobs))
            first, second = self._run(jobs[:half]), self._run(jobs[half:])
            first.extend(second)
            return first
        log.error("CUDA out of memory on a single window; scoring on the CPU from now on")
        self._engine.to("cpu")
        self.on_cpu_fallback = True
        if self._metrics is not None:
            self._metrics.cpu_fallback.inc()
        return self._engine.run(jobs)

    # reload

    def replace_models(
        self,
        models: Mapping[str, ScoringModel],
        timeout_s: float = 10.0,
        units: Mapping[str, UnitModels] | None = None,
    ) -> None:
        """Swap the engine's models (and with ``units`` which models score each unit) between two batches, on the
        scheduler thread; ValueError if refused."""
        future: Future[None] = Future()
        with self._swap_lock:
            self._swap = (models, units, future)
        future.result(timeout=timeout_s)  # re-raises the engine's ValueError

    def _apply_swap(self) -> None:
        with self._swap_lock:
            swap, self._swap = self._swap, None
        if swap is None:
            return
        models, units, future = swap
        previous, previous_units = dict(self._engine.models), dict(self._engine.units)
        try:
            self._engine.replace_models(models, units)
        except Exception as exc:
            future.set_exception(exc)
            return
        self._start_probation(previous, previous_units, models)
        future.set_result(None)

    def _start_probation(
        self,
        previous: Mapping[str, ScoringModel],
        previous_units: Mapping[str, UnitModels] | None,
        models: Mapping[str, ScoringModel],
    ) -> None:
        # A reload during a probation replaces it; the fallback stays the models that passed (or started).
        if self._probation is not None:
            previous, previous_units = self._probation.fallback, self._probation.fallback_units
        # A model that only shadows is not on trial: a NaN / inf stops its shadow scoring (ScoringEngine), it never
        # rolls back the active models; a candidate promoted to active is a new model, on trial as any other.
        shadow_only = self._engine.shadow_only
        on_trial = frozenset(
            name for name, model in models.items() if previous.get(name) is not model and name not in shadow_only
        )
        if not on_trial or (self._probation_windows <= 0 and self._probation_s <= 0):
            self._probation = None
            return
        self._probation = Probation(
            previous, on_trial, self._probation_windows, self._probation_s, time.monotonic(), previous_units
        )
        log.info(
            "reloaded model(s) %s on probation: the previous models stay until each has scored %d complete windows "
            "and %.0f s have passed",
            ", ".join(sorted(on_trial)),
            self._probation_windows,
            self._probation_s,
        )
