"""A reload's probation on the scheduler thread, with real models: a model scoring inf on live windows is rolled
back and its batch scored again by the previous models; a good one passes and the previous models are released."""

from __future__ import annotations

import dataclasses
import gc
import re
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from models.artifacts import load_artifact
from models.inference import LoadedModel
from monitor.messages import WindowJob
from monitor.metrics import Metrics
from monitor.probation import Probation
from monitor.scheduler import JobQueue, Scheduler
from monitor.scoring import ScoringEngine
from monitor.scoring_records import ModelVerdict, ScoringOutput, UnitModels
from tests.kit import wait_until
from tests.pipeline.conftest import SENSORS, Artifacts, normal_data
from tests.pipeline.test_scoring import jobs_for

UNITS = {"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc")}


def load(artifacts: Artifacts) -> dict[str, LoadedModel]:
    return {"det": load_artifact(artifacts.detector), "fc": load_artifact(artifacts.forecaster)}


class Running:
    """A Scheduler on its own thread, its outputs collected."""

    def __init__(self, models: dict[str, LoadedModel], windows: int, seconds: float) -> None:
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry, units={"A": SENSORS}, models={"det": "detector", "fc": "forecaster"})
        self.outputs: list[ScoringOutput] = []
        self.jobs = JobQueue(1000, self.metrics)
        self.scheduler = Scheduler(
            ScoringEngine(UNITS, models),
            self.jobs,
            self.outputs.append,
            self.metrics,
            max_batch=64,
            max_delay_s=0.2,
            max_lag_s=300.0,
            probation_windows=windows,
            probation_s=seconds,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.scheduler.run, args=(self._stop,), name="scheduler")
        self._thread.start()

    def score(self, jobs: list[WindowJob]) -> list[ScoringOutput]:
        """Queue ``jobs`` (one batch: the scheduler waits max_delay_s for more) and wait until each has its
        reconstruction Score."""
        before = len(self.outputs)
        for job in jobs:
            self.jobs.put(dataclasses.replace(job, received_at=time.time()))  # fresh: not a backlog to thin out

        def done() -> bool:
            return sum(s.detector == "reconstruction" for out in self.outputs[before:] for s in out.scores) >= len(jobs)

        assert wait_until(done, timeout_s=30)
        return self.outputs[before:]

    def rolled_back(self) -> float:
        return self.registry.get_sample_value("plantwatch_model_reloads_total", {"result": "rolled_back"}) or 0.0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    made: list[Running] = []
    yield made
    for r in made:
        r.close()


def scored(outputs: list[ScoringOutput]) -> list[tuple[str, float, float]]:
    return [(s.detector, s.ts, s.score) for out in outputs for s in out.scores]


def test_a_model_scoring_inf_on_live_windows_is_rolled_back_and_its_batch_rescored(
    artifacts: Artifacts, tmp_path: Path, running: list[Running], caplog: pytest.LogCaptureFixture
) -> None:
    from models.hostile import overflowing_off_the_mean

    jobs = jobs_for("A", normal_data(100, np.random.default_rng(21)), 30, 12, 16)
    reference = ScoringEngine(UNITS, load(artifacts))  # the old models, never replaced
    reference.run(jobs[:4])
    expected = reference.run(jobs[4:8])
    expected_after = reference.run(jobs[8:])

    old = load(artifacts)
    run = Running(dict(old), windows=100, seconds=60.0)
    running.append(run)
    run.score(jobs[:4])
    bad = load(artifacts)
    bad["det"] = load_artifact(overflowing_off_the_mean(artifacts.detector, tmp_path / "det"))  # passes the probe
    run.scheduler.replace_models(bad, timeout_s=10)
    trial = run.scheduler.probation
    assert trial is not None and trial.on_trial == frozenset({"det", "fc"})
    assert trial.fallback["det"] is old["det"]

    with caplog.at_level("ERROR", logger="monitor.scheduler"):
        outputs = run.score(jobs[4:8])
    assert run.rolled_back() == 1
    assert run.scheduler.probation is None
    assert run.scheduler.engine.models["det"] is old["det"] and run.scheduler.engine.models["fc"] is old["fc"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and re.search(r"model det scored inf on \d+ of \d+ complete windows", errors[0]), errors
    # The failed batch reached the outputs once, scored by the old models. The restored forecaster had no forecast
    # pending (the one made before the reload belonged to the replaced model), so its first job has no forecast.
    rescored, old_scores = scored(outputs), scored([expected])
    assert [s for s in rescored if s[0] == "reconstruction"] == [s for s in old_scores if s[0] == "reconstruction"]
    assert [s for s in rescored if s[0] == "forecast"] == [s for s in old_scores if s[0] == "forecast"][1:]
    assert all(out.non_finite == 0 for out in outputs)
    assert run.scheduler.engine.failing_models == frozenset()
    assert scored(run.score(jobs[8:])) == scored([expected_after])  # and the old models keep scoring


def test_a_good_reload_passes_probation_and_the_previous_models_are_released(
    artifacts: Artifacts, running: list[Running]
) -> None:
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(22)), 30, 12, 16)
    old = load(artifacts)
    gone = weakref.ref(old["det"])
    run = Running(dict(old), windows=6, seconds=0.0)
    running.append(run)
    run.score(jobs[:2])
    new = load(artifacts)
    run.scheduler.replace_models(new, timeout_s=10)
    del old
    run.score(jobs[2:6])
    trial = run.scheduler.probation
    assert trial is not None and trial.scored == {"det": 4, "fc": 4}  # not yet: 6 complete windows each
    del trial
    run.score(jobs[6:8])
    assert run.scheduler.probation is None and run.rolled_back() == 0
    assert run.scheduler.engine.models["det"] is new["det"]
    gc.collect()
    assert gone() is None  # nothing holds the old detector any more


def test_a_reload_during_probation_keeps_the_fallback_that_passed(artifacts: Artifacts, running: list[Running]) -> None:
    old = load(artifacts)
    run = Running(dict(old), windows=100, seconds=60.0)
    running.append(run)
    first, second = load(artifacts), load(artifacts)
    run.scheduler.replace_models(first, timeout_s=10)
    run.scheduler.replace_models(second, timeout_s=10)
    trial = run.scheduler.probation
    assert trial is not None and trial.fallback["det"] is old["det"] and trial.fallback["fc"] is old["fc"]
    assert run.scheduler.engine.models["det"] is second["det"]


def test_probation_needs_both_the_windows_and_the_time() -> None:
    trial = Probation({}, frozenset({"det", "fc"}), windows=10, seconds=5.0, started=100.0)
    assert trial.observe({"det": ModelVerdict(10), "fc": ModelVerdict(6)}) is None
    assert not trial.passed(110.0)  # fc has 6 of 10
    assert trial.observe({"fc": ModelVerdict(4), "other": ModelVerdict(3, 3, float("nan"))}) is None  # not on trial
    assert not trial.passed(104.0) and trial.passed(105.0)
    failure = trial.observe({"det": ModelVerdict(5, 2, float("-inf"))})
    assert failure is not None and failure.model == "det" and failure.verdict.example == float("-inf")
