"""The PCA T²/Q baseline scorer and the quality benchmarks' metric plumbing on tiny hand-made cases (no torch)."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality_common import DetectorSpec, csv_data, fit_detector, make_config
from models.pca import PcaDetector
from monitor.alerts.policy import AlertPolicy
from monitor.backtest import run_backtest
from monitor.evaluation.episodes import episodes_from_events
from monitor.evaluation.judge import evaluate
from monitor.wire.labels import Label

SENSORS = ("a", "b", "c", "d")


def normal_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 4]: two latent signals mixed into four sensors plus noise (a rank-2 normal subspace)."""
    t = np.arange(n, dtype=np.float64)
    latent = np.stack([np.sin(2 * np.pi * t / 50.0), np.cos(2 * np.pi * t / 80.0)], axis=1)
    mix = np.array([[1.0, 0.5, 0.0, 2.0], [0.0, 1.0, 1.5, -1.0]])
    rows: np.ndarray = 10.0 + latent @ mix + rng.normal(0.0, 0.05, (n, 4))
    return rows


def windows_of(rows: np.ndarray, w: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(rows, w, axis=0).transpose(0, 2, 1).astype(np.float32)


def test_pca_scores_normal_low_and_a_broken_correlation_high_with_the_right_top_sensor() -> None:
    rng = np.random.default_rng(0)
    det = PcaDetector.fit(normal_rows(2000, rng), SENSORS, window=5, calibration="quantile", target_far=0.01)
    assert det.role == "detector" and det.horizon == 0 and det.window == 5
    assert det.manifest["hyperparameters"]["n_components"] == 2  # the two latent signals
    assert det.threshold > 0

    test = normal_rows(600, rng)
    test[300:, 2] += 0.5  # sensor c leaves the normal subspace: 10 noise sds, small against c's own range
    result = det.infer(windows_of(test, 5))
    assert result.scores is not None and result.sensor_errors is not None
    assert result.scores.shape == (596,) and result.sensor_errors.shape == (596, 4)
    np.testing.assert_allclose(result.scores, result.sensor_errors.mean(axis=1), rtol=1e-5)
    normal, broken = result.scores[:290], result.scores[300:]
    assert np.mean(normal > det.threshold) < 0.05
    assert np.all(broken > det.threshold)
    assert np.median(broken) > 4 * np.median(normal)
    # Residual contributions smear onto correlated sensors (b shares c's latent signal): most windows, not all.
    assert np.mean(np.argmax(result.sensor_errors[300:], axis=1) == SENSORS.index("c")) > 0.8


def test_pca_missing_sensor_scores_nan_and_bad_shapes_are_refused() -> None:
    rng = np.random.default_rng(1)
    det = PcaDetector.fit(normal_rows(500, rng), SENSORS, window=3)
    w = windows_of(normal_rows(10, rng), 3)
    w[0, :, 1] = np.nan  # sensor b absent from the whole window
    w[1, 0, 1] = np.nan  # one missing value is filled inside the window
    scores = det.infer(w).scores
    assert scores is not None
    assert np.isnan(scores[0]) and np.isfinite(scores[1:]).all()
    with pytest.raises(ValueError, match="expects windows"):
        det.infer(np.zeros((2, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="too few"):
        PcaDetector.fit(normal_rows(3, rng), SENSORS)
    assert det.to("cuda") is det  # numpy only


def test_adaptive_pca_follows_a_slow_drift_but_not_a_step() -> None:
    rng = np.random.default_rng(4)
    history = normal_rows(1000, rng)
    static = PcaDetector.fit(history, SENSORS, window=1, calibration="quantile", target_far=0.01)
    adaptive = PcaDetector.fit(history, SENSORS, window=1, calibration="quantile", target_far=0.01, adapt_rows=20)
    test = normal_rows(800, rng)
    test[:, 0] += np.linspace(0.0, 1.0, 800)  # a slow drift of sensor a: 20 noise sds over 800 rows
    test[600:, 2] += 1.0  # then a step in sensor c
    w = windows_of(test, 1)
    static_scores, adaptive_scores = static.infer(w).scores, adaptive.infer(w).scores
    assert static_scores is not None and adaptive_scores is not None
    assert np.mean(static_scores[400:600] > static.threshold) > 0.9  # the fixed level calls the drift a fault
    assert np.mean(adaptive_scores[400:600] > adaptive.threshold) < 0.1  # the adapted one does not ...
    assert np.all(adaptive_scores[605:] > adaptive.threshold)  # ... but still holds the step (no update over it)
    adaptive.reset()
    again = adaptive.infer(w[:1]).scores
    assert again is not None and again[0] == pytest.approx(static_scores[0], rel=1e-5)  # back at the fitted mean


def test_backtest_plumbing_detects_a_shift_and_counts_points() -> None:
    """PCA through run_backtest + evaluate: one injected fault detected soon after its start, no false alarm."""
    rng = np.random.default_rng(2)
    history, test = normal_rows(1500, rng), normal_rows(600, rng)
    test[300:400, 2] += 1.0
    start = 1_767_225_600.0
    ts = start + np.arange(600, dtype=np.float64)
    spec = DetectorSpec("PCA", "pca", window=5, calibration="pot", target_far=1e-4)
    fitted = fit_detector(spec, history, SENSORS, "pca-u1", Path("unused"))
    policy = AlertPolicy(fire_hits=3, fire_window=5, resolve_hits=5, min_duration_s=0.0)
    cfg, models = make_config({"u1": SENSORS}, {"u1": fitted}, policy)
    label = Label("u1", "bias", float(ts[300]), float(ts[399]), ("c",))
    result = run_backtest(cfg, models, csv_data(ts, {"u1": test}), out_dir=None)
    model_events = [e for e in result.events if e.detector == "reconstruction"]
    ev = evaluate(episodes_from_events(model_events), [label], {"u1": ts})
    assert result.rows == 600 and result.jobs == 596  # the first 4 rows only fill the window
    assert ev.detected == 1 and ev.false_alarms == 0
    assert ev.delays_s[0] <= 5.0
    p = ev.points
    assert p.tp + p.fp + p.tn + p.fn == 600
    assert p.tp + p.fn == 100  # rows 300..399
    assert p.recall > 0.9 and p.far_pct < 2.0 and p.mar_pct < 10.0
    assert ev.labels[0].top_sensor == "c"


def test_skab_protocol_plumbing_on_a_tiny_file(tmp_path: Path) -> None:
    """A SKAB-shaped file: 400 training rows, then a test part whose anomaly is a shift in one sensor."""
    from benchmarks import quality_skab as skab

    rng = np.random.default_rng(3)
    n = 700
    base = normal_rows(n, rng)
    values = np.concatenate([base, base[:, :2] * 0.5, base[:, 2:] * 2.0], axis=1)  # 8 columns
    anomaly = np.zeros(n, dtype=bool)
    anomaly[500:600] = True
    values[500:600, 3] += 1.0
    folder = tmp_path / "valve1"
    folder.mkdir()
    path = folder / "0.csv"
    t0 = dt.datetime(2020, 3, 9, 10, 0, 0)
    header = ["datetime", *skab.SENSORS[:-1], "Volume Flow RateRMS", "anomaly", "changepoint"]
    lines = [";".join(header)]
    for i in range(n):
        stamp = (t0 + dt.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
        cells = [f"{v:.6f}" for v in values[i]]
        lines.append(";".join([stamp, *cells, f"{float(anomaly[i]):.1f}", "0.0"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert skab.read_anomaly(path).sum() == 100
    ts = np.arange(n, dtype=np.float64)
    runs = skab.label_runs("u", ts, anomaly)
    assert [(r.start, r.end) for r in runs] == [(500.0, 599.0)]

    spec = DetectorSpec("PCA", "pca", window=5, calibration="pot", target_far=1e-4)
    policy = AlertPolicy(fire_hits=3, fire_window=5, resolve_hits=5, min_duration_s=0.0)
    rows, counts = skab.score_file(path, spec, policy, tmp_path, validate=False)
    points = rows["PCA"].points
    assert points.tp + points.fp + points.tn + points.fn == n - skab.TRAIN_ROWS  # the test part only
    assert points.tp + points.fn == 100
    # The episode ends a few rows late: the window (5) still holds shifted rows, then 5 quiet scores resolve it.
    assert points.fp <= 10 and points.fn <= 5
    assert points.f1 > 0.9 and points.far_pct == pytest.approx(100.0 * points.fp / 200)
    assert counts["rows"] == n and rows["PCA"].episodes == 1
    # Validation reads the training part only: rows 0-199 fit, rows 200-399 judged, a synthetic shift on 300-399.
    val_rows, _ = skab.score_file(path, spec, policy, tmp_path, validate=True, shift_sensor=3)
    val_points = val_rows["PCA"].points
    assert val_points.tp + val_points.fp + val_points.tn + val_points.fn == 200
    assert val_points.tp + val_points.fn == 100
    assert val_points.recall > 0.9
    # The default deployment: both networks on one unit beside the sensor detector, a row for it and one for the
    # sensor detector from the same backtest, each over the same test rows.
    service = skab.DETECTORS["service"]
    parts = tuple(replace(skab.DETECTORS[name], epochs=2) for name in skab.SERVICE_PARTS)
    rows, counts = skab.score_file(path, service, policy, tmp_path, validate=False, parts=parts)
    assert set(rows) == {service.label, skab.SENSOR_ROW}
    for ev in rows.values():
        p = ev.points
        assert p.tp + p.fp + p.tn + p.fn == n - skab.TRAIN_ROWS and p.tp + p.fn == 100
    # Any detector: every row the sensor detector flags, and the models' too.
    assert rows[service.label].points.tp >= rows[skab.SENSOR_ROW].points.tp
    assert counts["rows"] == n


def test_sim_plan_deals_every_fault_kind_equally() -> None:
    from benchmarks import quality_sim
    from simulators import FAULT_KINDS

    plan = quality_sim.QUICK
    units = [f"u{i}" for i in range(plan.faulty_units)]
    faults, offset = quality_sim.plan_faults(7, units, plan, 0, 3600.0)
    assert offset == len(faults) == plan.faulty_units * plan.faults_per_unit
    assert sorted(f.kind for f in faults) == sorted(FAULT_KINDS)  # 4 units x 3 faults = the 12 kinds once
    for unit in units:
        mine = sorted((f.start_s, f.end_s) for f in faults if f.unit == unit)
        assert mine[0][0] >= 3600.0  # nothing in the training history
        assert all(a[1] < b[0] for a, b in itertools.pairwise(mine))  # no overlap within a unit


def test_sim_tally_counts_settling_alarms_apart_from_false_ones(capsys: pytest.CaptureFixture[str]) -> None:
    from collections import defaultdict

    from benchmarks import quality_sim
    from monitor.evaluation.episodes import Episode
    from monitor.evaluation.judge import evaluate

    t0 = 1_800_000_000.0
    ts = t0 + np.arange(0.0, 7200.0)
    labels = [
        Label("f", "feed_temp_step", t0 + 600, t0 + 1200, settled=t0 + 3000),  # settles inside the data
        Label("f", "valve_stuck", t0 + 5000, t0 + 5600, settled=t0 + 7200),  # reached the end of the data
        Label("f", "bias", t0 + 3500, t0 + 3600),
    ]

    def episode(alert_id: str, unit: str, at: float) -> Episode:
        return Episode(unit, "any", alert_id, t0 + at, t0 + at + 60, None)

    episodes = [episode("found", "f", 700), episode("settling", "f", 2000), episode("false", "f", 3100)]
    episodes.append(episode("clean", "c", 2000))
    ev = evaluate(episodes, labels, {"f": ts, "c": ts}, tolerance_s=quality_sim.TOLERANCE_S)
    false = [e for e in episodes if e.alert_id in set(ev.false_alarm_ids)]
    tally = quality_sim.Tally(defaultdict(list), defaultdict(list))
    tally.add(ev, false, labels, ["c"], ts, 1.0)
    assert (tally.faulty_false, tally.faulty_settling, tally.clean_false) == (1, 1, 1)

    spans = quality_sim.SettlingSpans()
    spans.add(11, labels, t0, t0 + 7200)
    assert dict(spans.by_kind) == {"feed_temp_step": [1800.0], "valve_stuck": [1600.0]}  # the bias has none
    assert dict(spans.capped) == {"feed_temp_step": 0, "valve_stuck": 1}
    assert (
        "f feed_temp_step ending at +20 min: 30.0; f valve_stuck ending at +93 min: >=26.7" in capsys.readouterr().err
    )
