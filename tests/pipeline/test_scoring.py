"""ScoringEngine with tiny trained models: batching, reconstruction scores, the forecast residual detector."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.artifacts import load_artifact
from models.inference import LoadedModel
from monitor.messages import WindowJob
from monitor.scoring import ScoringEngine
from monitor.scoring_records import UnitModels, required_window_rows
from tests.pipeline.conftest import SENSORS, Artifacts, normal_data

T0 = 1_732_590_000.0


def load(artifacts: Artifacts) -> dict[str, LoadedModel]:
    return {
        "det": load_artifact(artifacts.detector, device="cpu"),
        "fc": load_artifact(artifacts.forecaster, device="cpu"),
        "att": load_artifact(artifacts.attention, device="cpu"),
    }


def jobs_for(
    unit: str, data: np.ndarray, first_row: int, n_jobs: int, w: int, order: tuple[str, ...] = SENSORS
) -> list[WindowJob]:
    """Consecutive windows ending at rows first_row .. first_row + n_jobs - 1 of data (columns in ``order``)."""
    cols = [SENSORS.index(s) for s in order]
    return [
        WindowJob(
            unit,
            T0 + k,
            data[k - w + 1 : k + 1][:, cols].astype(np.float32),
            received_at=T0 + k + 0.01,
            source_ts=T0 + k,
        )
        for k in range(first_row, first_row + n_jobs)
    ]


def counting(model: LoadedModel, calls: list[int]) -> LoadedModel:
    original = model.infer

    def infer(windows: Any) -> Any:
        calls.append(len(windows))
        return original(windows)

    model.infer = infer  # type: ignore[method-assign]
    return model


def test_one_infer_per_model_and_scores_equal_direct_inference(artifacts: Artifacts) -> None:
    models = load(artifacts)
    direct = load(artifacts)
    units = {u: UnitModels(SENSORS, 1.0, detector="det", forecaster="fc") for u in ("A", "B")}
    assert required_window_rows(units["A"], models) == 16
    det_calls: list[int] = []
    fc_calls: list[int] = []
    counting(models["det"], det_calls)
    counting(models["fc"], fc_calls)
    engine = ScoringEngine(units, models)
    rng = np.random.default_rng(1)
    data_a, data_b = normal_data(200, rng), normal_data(200, rng)
    pairs = zip(jobs_for("A", data_a, 50, 5, 16), jobs_for("B", data_b, 80, 5, 16), strict=True)
    jobs = [j for pair in pairs for j in pair]
    out = engine.run(jobs)
    assert det_calls == [10] and fc_calls == [10]
    assert out.non_finite == 0

    recon = [s for s in out.scores if s.detector == "reconstruction"]
    assert [(s.unit, s.ts) for s in recon] == [(j.unit, j.end_ts) for j in jobs]
    expected = direct["det"].infer(np.stack([j.window for j in jobs]))
    assert expected.scores is not None
    np.testing.assert_allclose([s.score for s in recon], expected.scores, rtol=1e-6)
    assert recon[0].threshold == pytest.approx(direct["det"].threshold) and recon[0].model == "det"
    assert set(recon[0].sensor_errors) == set(SENSORS)
    assert sum(recon[0].sensor_errors.values()) / 3 == pytest.approx(recon[0].score, rel=1e-5)

    # The first job of each unit has no earlier forecast; the other 4 are scored against the previous row's.
    fc = [s for s in out.scores if s.detector == "forecast"]
    assert [s.ts - T0 for s in fc if s.unit == "A"] == [51, 52, 53, 54]
    assert [s.ts - T0 for s in fc if s.unit == "B"] == [81, 82, 83, 84]
    assert len(out.forecasts) == 10
    assert out.forecasts[0].values.shape == (1, 3) and out.forecasts[0].model == "fc"
    # The residual of row 51 is the forecast made from the window ending at row 50 against row 51's values.
    f50 = direct["fc"].infer(jobs[0].window[None, -12:]).forecasts
    assert f50 is not None
    score, per_sensor = direct["fc"].residual_score(f50[:, 0], jobs[2].window[None, -1])
    assert fc[0].score == pytest.approx(float(score[0]), rel=1e-5)
    assert fc[0].sensor_errors["temp"] == pytest.approx(float(per_sensor[0, 0]), rel=1e-5)
    # Per job: reconstruction then forecast, so each (unit, detector) stream is in time order.
    assert [(s.unit, s.detector) for s in out.scores][:4] == [
        ("A", "reconstruction"),
        ("B", "reconstruction"),
        ("A", "reconstruction"),
        ("A", "forecast"),
    ]


def test_batched_and_one_by_one_give_the_same_scores(artifacts: Artifacts) -> None:
    units = {"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="att")}
    data = normal_data(100, np.random.default_rng(2))
    jobs = jobs_for("A", data, 30, 8, 16)
    batched = ScoringEngine(units, load(artifacts)).score(jobs)
    single_engine = ScoringEngine(units, load(artifacts))
    single = [s for j in jobs for s in single_engine.score([j])]
    assert [(s.detector, s.ts) for s in batched] == [(s.detector, s.ts) for s in single]
    np.testing.assert_allclose([s.score for s in batched], [s.score for s in single], rtol=1e-5)
    fc = [s for s in batched if s.detector == "forecast"]
    assert len(fc) == 7
    # Attention: the rows weighed most, as steps back from the scored row (window 10 -> steps 1..10).
    assert all(len(s.attention_steps) == 3 and all(1 <= k <= 10 for k in s.attention_steps) for s in fc)


def test_gap_in_rows_gives_no_forecast_score(artifacts: Artifacts) -> None:
    engine = ScoringEngine({"A": UnitModels(SENSORS, 1.0, forecaster="fc")}, load(artifacts))
    data = normal_data(100, np.random.default_rng(3))
    jobs = jobs_for("A", data, 30, 6, 12)
    assert engine.score(jobs[:2])[0].ts == T0 + 31
    # Row 33 follows row 31: the forecast made at 31 was for 32, so 33 is not scored; 34 is.
    out = engine.run([jobs[3], jobs[4]])
    assert [s.ts - T0 for s in out.scores] == [34]
    assert len(out.forecasts) == 2


def test_sensor_order_is_mapped_by_name(artifacts: Artifacts) -> None:
    data = normal_data(100, np.random.default_rng(4))
    order = ("level", "temp", "flow")
    same = ScoringEngine({"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc")}, load(artifacts))
    permuted = ScoringEngine({"A": UnitModels(order, 1.0, detector="det", forecaster="fc")}, load(artifacts))
    a = same.run(jobs_for("A", data, 40, 2, 16))
    b = permuted.run(jobs_for("A", data, 40, 2, 16, order))
    for x, y in zip(a.scores, b.scores, strict=True):
        assert x.score == pytest.approx(y.score, rel=1e-5)
        assert x.sensor_errors["level"] == pytest.approx(y.sensor_errors["level"], rel=1e-5)
    # Forecast values come back in the unit's column order.
    np.testing.assert_allclose(b.forecasts[0].values[0], a.forecasts[0].values[0][[2, 0, 1]], rtol=1e-5)


def test_window_without_a_sensor_is_dropped_and_counted(artifacts: Artifacts) -> None:
    engine = ScoringEngine({"A": UnitModels(SENSORS, 1.0, detector="det")}, load(artifacts))
    job = jobs_for("A", normal_data(50, np.random.default_rng(5)), 20, 1, 16)[0]
    window = job.window.copy()
    window[:, 1] = np.nan
    out = engine.run([WindowJob("A", job.end_ts, window, job.received_at, job.source_ts)])
    assert out.scores == [] and out.non_finite == 1


def test_a_model_scoring_nan_on_complete_windows_is_failing_until_it_scores_finite(artifacts: Artifacts) -> None:
    import torch

    models = load(artifacts)
    engine = ScoringEngine({"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc")}, models)
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(8)), 30, 4, 16)
    engine.run(jobs[:1])
    assert engine.failing_models == frozenset()
    # A window missing a sensor scores NaN by design: not the model's fault, so not failing.
    window = jobs[1].window.copy()
    window[:, 1] = np.nan
    out = engine.run([WindowJob("A", jobs[1].end_ts, window, jobs[1].received_at, jobs[1].source_ts)])
    assert out.non_finite >= 1 and engine.failing_models == frozenset()
    # The detector's weights go bad while it serves: its complete windows come out NaN.
    head = models["det"].module.head  # type: ignore[union-attr]
    saved = head.bias.detach().clone()
    with torch.no_grad():
        head.bias.fill_(float("nan"))
    out = engine.run(jobs[2:3])
    assert out.non_finite >= 1 and engine.failing_models == frozenset({"det"})
    with torch.no_grad():
        head.bias.copy_(saved)
    engine.run(jobs[3:4])  # a finite batch clears it
    assert engine.failing_models == frozenset()
    with torch.no_grad():
        head.bias.fill_(float("nan"))
    engine.run(jobs[:1])
    assert engine.failing_models == frozenset({"det"})
    engine.replace_models(load(artifacts))  # a replaced model starts clean
    assert engine.failing_models == frozenset()


def test_misconfiguration_is_refused(artifacts: Artifacts) -> None:
    models = load(artifacts)
    with pytest.raises(ValueError, match="'fc' is a forecaster, configured as the detector"):
        ScoringEngine({"A": UnitModels(SENSORS, detector="fc")}, models)
    with pytest.raises(ValueError, match="'nope' is not among the loaded models"):
        ScoringEngine({"A": UnitModels(SENSORS, detector="nope")}, models)
    with pytest.raises(ValueError, match="expects sensors"):
        ScoringEngine({"A": UnitModels(("temp", "flow", "x"), detector="det")}, models)
    engine = ScoringEngine({"A": UnitModels(SENSORS, detector="det")}, models)
    short = WindowJob("A", T0, np.zeros((8, 3), np.float32), T0, T0)
    with pytest.raises(ValueError, match="has 8 rows, model 'det' needs 16"):
        engine.score([short])
    with pytest.raises(ValueError, match="unknown unit"):
        engine.score([WindowJob("Z", T0, np.zeros((16, 3), np.float32), T0, T0)])


def test_replace_models_keeps_state_of_unchanged_forecasters_and_to_cpu(artifacts: Artifacts) -> None:
    models = load(artifacts)
    engine = ScoringEngine({"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc")}, models)
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(6)), 30, 3, 16)
    engine.score(jobs[:1])
    engine.replace_models({**models, "det": load(artifacts)["det"]})  # detector swapped, forecaster kept
    assert [s.detector for s in engine.score(jobs[1:2])] == ["reconstruction", "forecast"]
    engine.replace_models(load(artifacts))  # a new forecaster: its predecessor's forecast is not used
    assert [s.detector for s in engine.score(jobs[2:3])] == ["reconstruction"]
    assert engine.to("cpu") is engine
    assert all(str(m.device) == "cpu" for m in engine.models.values())


def test_a_failed_run_changes_no_state_so_it_can_be_retried(artifacts: Artifacts) -> None:
    # Unit B (forecaster only) comes first, so "fc" runs before "det" fails: the run must not keep fc's forecasts.
    units = {
        "B": UnitModels(SENSORS, 1.0, forecaster="fc"),
        "A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc"),
    }
    models = load(artifacts)
    engine = ScoringEngine(units, models)
    reference = ScoringEngine(units, load(artifacts))
    rng = np.random.default_rng(7)
    a_jobs = jobs_for("A", normal_data(100, rng), 30, 4, 16)
    b_jobs = jobs_for("B", normal_data(100, rng), 30, 4, 16)
    first = [b_jobs[0], b_jobs[1], *a_jobs[:2]]
    second = [b_jobs[2], b_jobs[3], *a_jobs[2:]]
    engine.score(first)
    reference.score(first)
    original = models["det"].infer
    fail = [True]

    def flaky(windows: Any) -> Any:
        if fail.pop():
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(windows)

    models["det"].infer = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="out of memory"):
        engine.score(second)
    fail.append(False)
    retried = engine.score(second)
    expected = reference.score(second)
    assert [(s.unit, s.detector, s.ts) for s in retried] == [(s.unit, s.detector, s.ts) for s in expected]
    assert [s.detector for s in retried].count("forecast") == 4
    np.testing.assert_allclose([s.score for s in retried], [s.score for s in expected], rtol=1e-5)


def test_health_only_records_reach_the_sensor_detector_and_never_the_models(artifacts: Artifacts) -> None:
    from monitor.sensor_health import HealthSpec

    models = load(artifacts)
    det_calls: list[int] = []
    fc_calls: list[int] = []
    counting(models["det"], det_calls)
    counting(models["fc"], fc_calls)
    unit = UnitModels(SENSORS, 1.0, detector="det", forecaster="fc", health=HealthSpec())
    engine = ScoringEngine({"A": unit}, models)
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(8)), 30, 3, 16)
    silent_row = np.array([[350.0, np.nan, 2.0]], dtype=np.float32)
    record = WindowJob("A", T0 + 33, silent_row, T0 + 33, T0 + 33, valid=False, silent=("flow",))
    out = engine.run([*jobs, record])
    assert det_calls == [3] and fc_calls == [3]
    # Per job: reconstruction, forecast, sensor; the record gets only its sensor Score.
    assert [(s.ts - T0, s.detector) for s in out.scores] == [
        (30, "reconstruction"),
        (30, "sensor"),
        (31, "reconstruction"),
        (31, "forecast"),
        (31, "sensor"),
        (32, "reconstruction"),
        (32, "forecast"),
        (32, "sensor"),
        (33, "sensor"),
    ]
    healthy, silent = out.scores[1], out.scores[-1]
    assert healthy.score < healthy.resolve_level and healthy.reason == "" and healthy.model == "det"
    assert healthy.threshold == 1.0
    assert silent.score > silent.threshold and silent.reason == "silent"
    assert max(silent.sensor_errors, key=silent.sensor_errors.__getitem__) == "flow"
    # The forecast state did not move over the record: the next valid row after it has no forecast to compare.
    assert len(out.forecasts) == 3
    # Without a health spec, records are dropped: nothing scores them.
    plain = ScoringEngine({"A": UnitModels(SENSORS, 1.0, detector="det")}, load(artifacts))
    assert plain.run([record]).scores == []


def test_a_forecaster_whose_residual_overflows_is_judged_failing(artifacts: Artifacts, tmp_path: Any) -> None:
    """Finite forecasts, but a scale so small that every real residual squares beyond float32: the forecast Scores
    are dropped, and the verdict (what a reload's probation watches) names the forecaster and what it scored."""
    from models.hostile import overflowing_off_the_mean

    models = load(artifacts)
    models["fc"] = load_artifact(overflowing_off_the_mean(artifacts.forecaster, tmp_path / "fc"))  # passes the probe
    engine = ScoringEngine({"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc")}, models)
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(11)), 30, 4, 16)
    out = engine.run(jobs)
    assert all(np.isfinite(f.values).all() for f in out.forecasts)
    assert [s.detector for s in out.scores] == ["reconstruction"] * 4  # the 3 forecast Scores were dropped
    assert out.non_finite == 3
    assert out.judged["fc"].windows == 4 and out.judged["fc"].non_finite == 3
    assert out.judged["fc"].example == float("inf")
    assert out.judged["det"].windows == 4 and out.judged["det"].non_finite == 0
    assert engine.failing_models == frozenset({"fc"})


def test_restore_puts_back_the_state_a_run_changed(artifacts: Artifacts) -> None:
    units = {"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc")}
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(12)), 30, 6, 16)
    straight = ScoringEngine(units, load(artifacts))
    straight.run(jobs[:3])
    expected = straight.run(jobs[3:])
    engine = ScoringEngine(units, load(artifacts))
    engine.run(jobs[:3])
    saved = engine.snapshot()
    engine.run(jobs[3:])  # advances each unit's pending forecast past jobs[3:]
    engine.restore(saved)
    again = engine.run(jobs[3:])
    assert [(s.detector, s.ts, s.score) for s in again.scores] == [(s.detector, s.ts, s.score) for s in expected.scores]
    assert sum(s.detector == "forecast" for s in again.scores) == 3  # each job paired with the forecast before it


def test_timed_models_meet_the_contract_and_feed_the_histograms(artifacts: Artifacts) -> None:
    from prometheus_client import CollectorRegistry

    from models.model_api import ScoringModel
    from monitor.metrics import Metrics
    from monitor.timed_models import TimedModel, timed

    models = load(artifacts)
    metrics = Metrics(CollectorRegistry(), units={"A": SENSORS}, models={n: m.role for n, m in models.items()})
    wrapped = timed(models, metrics)
    for name, model in wrapped.items():
        assert isinstance(model, TimedModel) and isinstance(model, ScoringModel) and model.wrapped is models[name]
        for attr in ("name", "kind", "role", "sensors", "window", "horizon", "period_s", "device", "threshold"):
            assert getattr(model, attr) == getattr(models[name], attr), attr
        assert (model.resolve_level, model.critical_level) == (models[name].resolve_level, models[name].critical_level)
        assert model.envelope == models[name].envelope
        assert isinstance(model.to("cpu"), TimedModel)
    units = {"A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc")}
    jobs = jobs_for("A", normal_data(100, np.random.default_rng(8)), 30, 10, 16)
    timed_engine, plain_engine = ScoringEngine(units, wrapped), ScoringEngine(units, load(artifacts))
    got = timed_engine.score(jobs[:5]) + timed_engine.score(jobs[5:])
    expected = plain_engine.score(jobs[:5]) + plain_engine.score(jobs[5:])
    assert [(s.detector, s.ts, s.score) for s in got] == [(s.detector, s.ts, s.score) for s in expected]
    registry = metrics.registry
    for name in ("det", "fc"):  # one call per model per run, timed whole
        assert registry.get_sample_value("plantwatch_inference_seconds_count", {"model": name}) == 2
    # the windows given, not the padded batch (5 windows run as 8): 2 runs x 2 models x 5 windows
    assert registry.get_sample_value("plantwatch_batch_size_windows_count") == 4
    assert registry.get_sample_value("plantwatch_batch_size_windows_sum") == 20
