"""Scheduler: batching, newest-per-unit when behind, CUDA OOM halving then CPU fallback, model swap between batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from monitor.messages import Score, WindowJob
from monitor.metrics import Metrics
from monitor.scheduler import JobQueue, Scheduler, newest_per_unit
from monitor.scoring import ScoringEngine
from monitor.scoring_records import ScoringOutput


def job(unit: str, ts: float, received_at: float | None = None) -> WindowJob:
    """received_at defaults to now (a fresh window); pass an old time for a window that waited."""
    arrived = time.time() if received_at is None else received_at
    return WindowJob(unit=unit, end_ts=ts, window=np.zeros((4, 2), dtype=np.float32), received_at=arrived, source_ts=ts)


class FakeEngine:
    """Scores each job 1.0; raises CUDA OOM for batches larger than ``oom_above`` while on "cuda"."""

    def __init__(self, oom_above: int | None = None) -> None:
        self.oom_above = oom_above
        self.device = "cuda"
        self.calls: list[int] = []
        self.models: Mapping[str, Any] = {}
        self.units: Mapping[str, Any] = {}
        self.shadow_only: frozenset[str] = frozenset()

    def run(self, jobs: Sequence[WindowJob]) -> ScoringOutput:
        if self.device == "cuda" and self.oom_above is not None and len(jobs) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test)")
        self.calls.append(len(jobs))
        scores = [
            Score(j.unit, "reconstruction", "m", j.end_ts, 1.0, 2.0, {}, j.received_at, j.source_ts) for j in jobs
        ]
        return ScoringOutput(scores=scores)

    def to(self, device: str) -> FakeEngine:
        self.device = device
        return self

    def replace_models(self, models: Mapping[str, Any], units: Mapping[str, Any] | None = None) -> None:
        if "bad" in models:
            raise ValueError("model 'bad' does not fit")
        self.models = models
        self.units = self.units if units is None else units


def make(engine: FakeEngine, max_batch: int = 4) -> tuple[Scheduler, list[ScoringOutput], CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, units={}, models={})
    outputs: list[ScoringOutput] = []
    fake: Any = engine
    engine_typed: ScoringEngine = fake
    scheduler = Scheduler(engine_typed, JobQueue(100, metrics), outputs.append, metrics, max_batch=max_batch)
    return scheduler, outputs, registry


def test_newest_per_unit_keeps_order() -> None:
    jobs = [job("A", 1, 0.0), job("B", 1, 0.0), job("A", 2, 0.0), job("C", 1, 0.0), job("B", 2, 0.0)]
    kept, skipped = newest_per_unit(jobs)
    assert [(j.unit, j.end_ts) for j in kept] == [("A", 2), ("C", 1), ("B", 2)]
    assert skipped == 2
    kept, skipped = newest_per_unit([job("A", 1, 100.0), job("A", 2, 0.0), job("A", 3, 0.0)], stale_before=50.0)
    assert [j.end_ts for j in kept] == [1, 3] and skipped == 1  # a fresh window is never dropped


def test_behind_keeps_each_units_newest_window() -> None:
    scheduler, outputs, registry = make(FakeEngine(), max_batch=4)
    waited = time.time() - 10.0  # these windows arrived 10 s ago, one a second as produced: the scheduler is behind
    scheduler.process([job(u, t, waited + t) for t in range(3) for u in ("A", "B")])
    assert [(s.unit, s.ts) for o in outputs for s in o.scores] == [("A", 2), ("B", 2)]
    assert registry.get_sample_value("plantwatch_windows_skipped_total", {"reason": "backlog"}) == 4


def test_a_stale_redelivered_backlog_is_scored_completely_beside_a_lagging_unit() -> None:
    """Unit A's 1,004 windows came within 2 s (a broker's redelivery, a fast replay) and waited: all scored. Unit B
    arrived at its own pace and waited as long: the scheduler fell behind on it, so only its newest is scored."""
    scheduler, outputs, registry = make(FakeEngine(), max_batch=256)
    waited = time.time() - 30.0
    backlog = [job("A", 1000.0 + t, waited + t * 0.002) for t in range(1004)]
    lagging = [job("B", 1000.0 + t, waited + t) for t in range(20)]
    scheduler.process(backlog + lagging)
    scored = [(s.unit, s.ts) for o in outputs for s in o.scores]
    assert [ts for unit, ts in scored if unit == "A"] == [1000.0 + t for t in range(1004)]
    assert [ts for unit, ts in scored if unit == "B"] == [1019.0]
    assert registry.get_sample_value("plantwatch_windows_skipped_total", {"reason": "backlog"}) == 19


def test_a_burst_of_fresh_windows_is_scored_completely_in_batches() -> None:
    engine = FakeEngine()
    scheduler, outputs, registry = make(engine, max_batch=4)
    scheduler.process([job("A", t) for t in range(10)])  # a redelivered backlog: more than a batch, all fresh
    assert [s.ts for o in outputs for s in o.scores] == list(range(10))
    assert engine.calls == [4, 4, 2]
    assert registry.get_sample_value("plantwatch_windows_skipped_total", {"reason": "backlog"}) == 0


def test_cuda_oom_halves_the_batch() -> None:
    engine = FakeEngine(oom_above=2)
    scheduler, outputs, registry = make(engine, max_batch=8)
    scheduler.process([job(u, 0) for u in "ABCDEFGH"])
    assert engine.calls == [2, 2, 2, 2]
    assert sorted(s.unit for o in outputs for s in o.scores) == list("ABCDEFGH")
    assert registry.get_sample_value("plantwatch_gpu_oom_total") == 3  # 8 -> 4 + 4 -> 2 + 2 + 2 + 2
    assert registry.get_sample_value("plantwatch_cpu_fallback_total") == 0
    assert engine.device == "cuda"


def test_cuda_oom_on_one_window_falls_back_to_cpu() -> None:
    engine = FakeEngine(oom_above=0)
    scheduler, outputs, registry = make(engine, max_batch=8)
    scheduler.process([job("A", 0), job("B", 0)])
    assert engine.device == "cpu" and scheduler.on_cpu_fallback
    assert registry.get_sample_value("plantwatch_cpu_fallback_total") == 1
    assert sorted(s.unit for o in outputs for s in o.scores) == ["A", "B"]


def test_job_queue_drops_oldest_when_full() -> None:
    registry = CollectorRegistry()
    queue = JobQueue(2, Metrics(registry, units={}, models={}))
    for t in range(3):
        queue.put(job("A", t))
    assert [j.end_ts for j in queue.take(10, 0.0, 0.1)] == [1, 2]
    assert registry.get_sample_value("plantwatch_windows_skipped_total", {"reason": "queue_full"}) == 1
    assert queue.take(10, 0.0, 0.01) == []


def test_model_swap_happens_on_the_scheduler_thread_and_reports_refusal() -> None:
    engine = FakeEngine()
    scheduler, _, _ = make(engine)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler")
    thread.start()
    try:
        scheduler.replace_models({"good": object()}, timeout_s=5)
        assert set(engine.models) == {"good"}
        with pytest.raises(ValueError, match="does not fit"):
            scheduler.replace_models({"bad": object()}, timeout_s=5)
        assert set(engine.models) == {"good"}
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
