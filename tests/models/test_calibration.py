"""Calibration: thresholds set on held-out normal data hold their false-alarm rate on fresh normal data.

Three levels: (1) the calibration functions on independent draws from known distributions,
where the observed rate is a tight estimate; (2) a forecaster's one-step residual score end
to end (train -> calibrate on the calibration split -> fresh data of the same process);
(3) the default detector end to end. Window scores overlap (W - 1 shared rows), so their
exceedances come in clusters and the observed rate is noisier than the count suggests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.artifacts import load_artifact
from models.calibration import (
    RECORDED_METHODS,
    calibrate,
    decluster,
    decorrelation_length,
    fit_gpd,
    pot_threshold,
    quantile_threshold,
)
from models.pca import PcaDetector
from models.preprocessing import sliding_windows
from models.synthetic import normal_process
from models.train import train_model
from models.train_config import TrainConfig

SENSORS = [f"s{i}" for i in range(5)]


def _draws(name: str, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "gamma":  # like a mean of squared errors: light tail (GPD shape about 0)
        return rng.gamma(8.0, 0.05, size)
    if name == "lognormal":
        return rng.lognormal(0.0, 0.6, size)
    return rng.pareto(4.0, size) + 1.0  # heavy tail, GPD shape 0.25


@pytest.mark.parametrize("dist", ["gamma", "lognormal", "pareto"])
def test_quantile_and_pot_on_independent_scores(dist: str) -> None:
    calibration = _draws(dist, 20_000, seed=1)
    fresh = _draws(dist, 2_000_000, seed=2)
    q = calibrate(calibration, "quantile", 0.01, decorrelation=1)
    far_q = float(np.mean(fresh > q["value"]))
    pot = calibrate(calibration, "pot", 0.001, decorrelation=1)
    far_pot = float(np.mean(fresh > pot["value"]))
    rare = pot_threshold(calibration, 0.0001, decorrelation=1)
    far_rare = float(np.mean(fresh > rare["value"]))
    print(
        f"{dist}: quantile@1% -> {far_q:.4%}; POT@0.1% -> {far_pot:.4%}; POT@0.01% -> {far_rare:.4%} "
        f"(gamma {pot['parameters']['gamma']:.3f}, fit {pot['parameters']['fit']})"
    )
    assert 0.005 <= far_q <= 0.02
    assert 0.0005 <= far_pot <= 0.002
    # 0.01% (2 calibration scores above it, where a quantile cannot go) is printed, not asserted: from a
    # 98% initial threshold the fitted shape of a light tail errs high, so this rate comes out low.
    assert 0.0 <= far_rare < far_pot
    assert q["method"] == "quantile" and pot["method"] == "pot" and pot["target_far"] == 0.001
    # 20,000 independent scores: 200 exceedances expected at 1 %, 20 at 0.1 %, 2 at 0.01 % (POT's reach)
    assert q["supported"] and pot["supported"] and rare["supported"] and rare["method"] == "pot"
    assert q["needed_rows"] is None and q["warnings"] == []


def _ar1(n: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = noise[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + noise[i]
    return out


def test_decorrelation_of_overlapping_windows_and_ar1() -> None:
    rng = np.random.default_rng(3)
    # Scores of overlapping 30-row windows: the mean of squared iid errors, as a detector's window score.
    errors = rng.standard_normal(20_030) ** 2
    windowed = sliding_windows(errors[:, None], 30)[:, :, 0].mean(axis=1)
    record = calibrate(windowed, "quantile", 0.01, window=30)
    ar1 = decorrelation_length(_ar1(20_000, 0.95, 4), 100)  # autocorrelation 0.95^k < 1/e from k = 20
    iid = decorrelation_length(rng.standard_normal(20_000), 100)
    print(
        f"overlapping windows: L {record['decorrelation_windows']}, n {record['n_calibration']}, "
        f"n_effective {record['n_effective']:.0f}; AR(1) 0.95: L {ar1}; iid: L {iid}"
    )
    assert 15 <= record["decorrelation_windows"] <= 30  # a 30-row moving mean: 1/e at about 19 lags
    assert record["n_effective"] < record["n_calibration"] / 15
    assert 18 <= ar1 <= 22 and iid == 1
    assert decorrelation_length(np.ones(100)) == 1  # a constant series: nothing to correlate
    assert decorrelation_length(_ar1(5000, 0.999, 5), 40) == 40  # bounded by the window


def test_declustering_cuts_at_the_run_length() -> None:
    exceeding = np.zeros(30, dtype=bool)
    exceeding[[2, 3, 5, 12, 13, 29]] = True
    clusters = decluster(exceeding, run=3)
    assert [c.tolist() for c in clusters] == [[2, 3, 5], [12, 13], [29]]
    assert len(decluster(exceeding, run=1)) == 4 and decluster(np.zeros(5, dtype=bool), 2) == []


@pytest.mark.parametrize(
    ("n", "expected"),
    [(200, "max_margin"), (600, "pot_moments"), (5000, "pot")],
)
def test_pot_is_pot_only_with_enough_declustered_excesses(n: int, expected: str) -> None:
    scores = _draws("gamma", n, seed=7)
    record = pot_threshold(scores, 1e-3, decorrelation=1)  # 98 % initial quantile: 4, 12, 100 excesses
    print(f"n={n}: {record['method']}, {record['parameters']['n_clusters']} clusters, value {record['value']:.4f}")
    assert record["method"] == expected and record["requested_method"] == "pot"
    if expected == "max_margin":  # 0.2 exceedances expected: beyond the data, nothing fitted
        assert record["value"] == pytest.approx(scores.max() * 1.5)
        assert not record["supported"] and record["needed_rows"] > n and record["warnings"]
    # The same excesses, but correlated (every score repeated 10 times): one cluster per run, not 10 excesses.
    repeated = pot_threshold(np.repeat(scores, 10), 1e-4, decorrelation=10)
    assert repeated["parameters"]["n_clusters"] <= record["parameters"]["n_clusters"] + 1
    assert repeated["method"] == record["method"]


def test_unsupported_quantile_says_what_it_needs() -> None:
    scores = _draws("lognormal", 500, seed=8)
    record = calibrate(scores, "quantile", 0.01, decorrelation=1)  # 5 exceedances expected, 10 needed
    assert record["method"] == "quantile" and not record["supported"]
    assert record["needed_rows"] == 1000 and "cannot support" in record["message"]
    correlated = calibrate(scores, "quantile", 0.01, decorrelation=10)  # 50 effective: beyond the data
    assert correlated["method"] == "max_margin" and correlated["needed_rows"] == 10_000
    assert calibrate(scores, "quantile", 0.05, decorrelation=1)["supported"]  # 25 expected


@pytest.mark.parametrize(("method", "far"), [("quantile", 0.01), ("pot", 1e-3), ("pot", 1e-5), ("quantile", 1e-5)])
def test_levels_are_ordered_and_json_finite(method: str, far: float) -> None:
    import json

    record = calibrate(_draws("gamma", 20_000, seed=9), method, far, window=30)
    json.dumps(record, allow_nan=False)  # raises on NaN / inf
    print(
        f"{method} at {far:g}: resolve {record['resolve_value']:.4f} (q {record['resolve_quantile']}), "
        f"value {record['value']:.4f} ({record['method']}), critical {record['critical_value']:.4f} "
        f"({record['parameters']['critical']})"
    )
    assert record["method"] in RECORDED_METHODS
    assert record["resolve_value"] < record["value"] < record["critical_value"]
    if record["method"] in ("pot", "pot_moments"):
        assert record["parameters"]["critical"]["rule"] == "tail"
    else:
        assert record["critical_value"] == pytest.approx(2.0 * record["value"])
    if far == 0.01:  # a lax target: the 99 % quantile would be the threshold itself, so a lower one resolves
        assert record["resolve_quantile"] == pytest.approx(0.95)
    else:
        assert record["resolve_quantile"] == 0.99


def test_pca_detector_has_the_same_record_and_an_envelope() -> None:
    data = normal_process(3000, 5, seed=3)
    det = PcaDetector.fit(data, SENSORS, window=5, calibration="pot", target_far=1e-3, holdout=0.3)
    record = det.calibration
    for key in ("n_effective", "decorrelation_windows", "resolve_value", "critical_value", "supported", "warnings"):
        assert key in record, key
    assert record["holdout"] is None and record["calibration_share"] == 0.3
    assert det.resolve_level < det.threshold < det.critical_level
    envelope = det.envelope
    assert envelope is not None and envelope["window"] == 30 and envelope["rows"] == 3000
    assert envelope["sensors"]["s0"]["min_window_std"] > 0


def test_gpd_fit_recovers_known_shape() -> None:
    rng = np.random.default_rng(5)
    from scipy.stats import genpareto

    excesses = genpareto.rvs(0.2, scale=2.0, size=5000, random_state=rng)
    gamma, sigma, fit = fit_gpd(excesses)
    print(f"GPD fit: gamma {gamma:.3f} (true 0.2), sigma {sigma:.3f} (true 2.0), {fit}")
    assert fit == "mle" and abs(gamma - 0.2) < 0.05 and abs(sigma - 2.0) < 0.15
    gamma_m, sigma_m, fit_m = fit_gpd(excesses[:10])
    assert fit_m == "moments" and np.isfinite(gamma_m) and sigma_m > 0


def test_calibration_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="false-alarm rate"):
        quantile_threshold([1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match="finite score"):
        quantile_threshold([np.nan], 0.01)
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate([1.0], "median", 0.01)


@pytest.fixture(scope="module")
def process() -> tuple[np.ndarray, np.ndarray]:
    """30,000 rows of normal training data and 60,000 fresh rows of the same process (other seed)."""
    return normal_process(30_000, 5, seed=1), normal_process(60_000, 5, seed=2, start=30_000)


def test_forecaster_residual_threshold_end_to_end(process: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    train, fresh = process
    window = 16
    base = {"kind": "gru", "window": window, "hidden_size": 16, "num_layers": 1, "epochs": 10}
    common = {"train_step": 4, "calib_fraction": 0.5, "progress": False, "device": "cpu"}
    rates = {}
    for method, far in (("quantile", 0.01), ("pot", 0.001)):
        config = TrainConfig(**base, **common, calibration=method, target_far=far)  # type: ignore[arg-type]
        model = load_artifact(train_model(train, SENSORS, tmp_path / method, config))
        spans = np.ascontiguousarray(sliding_windows(fresh, window + 1), dtype=np.float32)
        forecasts = model.infer(spans[:, :window]).forecasts
        assert forecasts is not None
        score, per_sensor = model.residual_score(forecasts[:, 0], spans[:, window])
        assert per_sensor.shape == (len(spans), 5)
        rates[method] = float(np.mean(score > model.threshold))
        print(
            f"gru residual, {method} at {far:.2%}: threshold {model.threshold:.4f}, "
            f"observed {rates[method]:.4%} on {len(score)} fresh rows"
        )
        assert model.manifest["threshold"]["target_far"] == far
    assert 0.005 <= rates["quantile"] <= 0.02
    assert 0.0005 <= rates["pot"] <= 0.002


def test_default_detector_threshold_end_to_end(process: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    train, fresh = process
    window = 32
    config = TrainConfig(
        kind="lstm_ae",
        window=window,
        hidden_size=32,
        epochs=20,
        train_step=4,
        calib_fraction=0.5,
        target_far=0.01,
        progress=False,
        device="cpu",
    )
    model = load_artifact(train_model(train, SENSORS, tmp_path / "ae", config))
    scores = model.infer(np.ascontiguousarray(sliding_windows(fresh, window), dtype=np.float32)).scores
    assert scores is not None
    far = float(np.mean(scores > model.threshold))
    print(f"lstm_ae, quantile at 1%: threshold {model.threshold:.4f}, observed {far:.4%} on {len(scores)} windows")
    assert 0.005 <= far <= 0.02
