"""ScoringEngine with shadow candidates: batched with the active models, flagged, judged apart, stopped on NaN."""

from __future__ import annotations

import numpy as np
import torch

from models.artifacts import load_artifact
from monitor.scoring import ScoringEngine
from monitor.scoring_records import UnitModels
from tests.pipeline.conftest import SENSORS, Artifacts, normal_data
from tests.pipeline.test_scoring import counting, jobs_for


def test_a_shadow_is_one_more_forward_per_batch_and_its_outputs_are_flagged_and_unpublished(
    artifacts: Artifacts,
) -> None:
    active = {"det": load_artifact(artifacts.detector, device="cpu"), "fc": load_artifact(artifacts.forecaster)}
    shadows = {"det2": load_artifact(artifacts.detector), "fc2": load_artifact(artifacts.forecaster)}
    calls: dict[str, list[int]] = {name: [] for name in (*active, *shadows)}
    for name, model in {**active, **shadows}.items():
        counting(model, calls[name])
    units = {
        "A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc", shadow_detector="det2", shadow_forecaster="fc2"),
        "B": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc", shadow_detector="det2"),
        "C": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc"),
    }
    engine = ScoringEngine(units, {**active, **shadows})
    assert engine.shadow_only == frozenset({"det2", "fc2"})
    rng = np.random.default_rng(3)
    jobs = [j for unit in units for j in jobs_for(unit, normal_data(120, rng), 40, 4, 16)]
    out = engine.run(jobs)
    # One forward per model over every unit using it: the shadow detector once for A and B together.
    assert calls == {"det": [12], "fc": [12], "det2": [8], "fc2": [4]}
    shadow = [s for s in out.scores if s.shadow]
    assert {(s.unit, s.model) for s in shadow} == {("A", "det2"), ("B", "det2"), ("A", "fc2")}
    assert not [s for s in out.scores if not s.shadow and s.model in shadows]
    # The same artifact: the shadow's scores are the active model's, row for row.
    by_row = {(s.unit, s.ts, s.detector): s.score for s in out.scores if not s.shadow}
    for s in shadow:
        assert s.score == by_row[(s.unit, s.ts, s.detector)]
    assert {f.model for f in out.forecasts} == {"fc"}  # a shadow forecaster's forecasts are never published
    assert set(out.judged) == {"det", "fc"}  # judged apart: never readiness or a reload's probation


def test_a_shadow_scoring_nan_is_stopped_and_the_active_model_is_not_failing(artifacts: Artifacts) -> None:
    models = {"det": load_artifact(artifacts.detector), "det2": load_artifact(artifacts.detector, device="cpu")}
    engine = ScoringEngine({"A": UnitModels(SENSORS, 1.0, detector="det", shadow_detector="det2")}, models)
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(4)), 30, 3, 16)
    head = models["det2"].module.head  # type: ignore[union-attr]
    with torch.no_grad():
        head.bias.fill_(float("nan"))
    out = engine.run(jobs[:1])
    assert set(out.shadows_stopped) == {"det2"} and out.shadows_stopped["det2"].non_finite == 1
    assert engine.stopped_shadows == frozenset({"det2"}) and engine.failing_models == frozenset()
    out = engine.run(jobs[1:])
    assert not out.shadows_stopped and [s.model for s in out.scores if s.detector == "reconstruction"] == ["det"] * 2
    engine.replace_models({"det": models["det"], "det2": load_artifact(artifacts.detector)})  # a reload: served again
    assert engine.stopped_shadows == frozenset()
