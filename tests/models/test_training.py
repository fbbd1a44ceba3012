"""Training: seeded runs are bit-for-bit repeatable, early stopping keeps the best epoch, bad configs are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.artifacts import load_artifact
from models.networks import KINDS, NETWORK_KINDS, SEED_PRESETS, build_model
from models.preprocessing import sliding_windows
from models.train import train_model
from models.train_config import TrainConfig
from models.train_threshold import CalibrationUnsupported
from tests.models.conftest import SENSORS, tiny_config


def _manifest(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((path / "manifest.json").read_text())


def test_seeded_training_is_repeatable(normal_data: np.ndarray, tmp_path: Path) -> None:
    config = tiny_config("seq2seq", epochs=2, horizon=3)
    a = _manifest(train_model(normal_data, SENSORS, tmp_path / "a", config))
    b = _manifest(train_model(normal_data, SENSORS, tmp_path / "b", config))
    other_seed = tiny_config("seq2seq", epochs=2, horizon=3, seed=1)
    c = _manifest(train_model(normal_data, SENSORS, tmp_path / "c", other_seed))
    print("weights sha256:", a["weights"]["sha256"][:12], b["weights"]["sha256"][:12], c["weights"]["sha256"][:12])
    assert a["weights"]["sha256"] == b["weights"]["sha256"]
    assert a["threshold"]["value"] == b["threshold"]["value"]
    assert a["weights"]["sha256"] != c["weights"]["sha256"]


def test_early_stopping_keeps_the_best_epoch(normal_data: np.ndarray, tmp_path: Path) -> None:
    # a learning rate far too high makes validation loss climb after the first epochs
    config = tiny_config("lstm", epochs=25, patience=3, lr=0.3)
    figures = _manifest(train_model(normal_data, SENSORS, tmp_path / "m", config))["training"]["figures"]
    history = np.asarray(figures["history"])
    print(f"epochs run {figures['epochs_run']}, best {figures['best_epoch']}, val {history[:, 1].round(3).tolist()}")
    assert figures["early_stopped"] and figures["epochs_run"] < 25
    assert figures["epochs_run"] - figures["best_epoch"] == 3
    assert figures["val_loss"] == pytest.approx(history[:, 1].min(), rel=1e-4)


def test_training_on_data_with_gaps(normal_data: np.ndarray, tmp_path: Path) -> None:
    data = normal_data.copy()
    data[100:103, 1] = np.nan  # short gap: forward-filled
    data[1500:1600, :] = np.nan  # long outage: no window spans it
    manifest = _manifest(train_model(data, SENSORS, tmp_path / "m", tiny_config("lstm_ae")))
    assert manifest["training"]["data"]["missing_values"] == 3 + 100 * len(SENSORS)
    assert np.isfinite(manifest["threshold"]["value"])
    windows = manifest["training"]["figures"]["windows"]
    print("windows per part with a 100-row outage:", windows)
    assert windows["train"] < 1800 - 15


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "transformer"}, "unknown model kind"),
        ({"kind": "lstm_ae", "horizon": 5}, "no forecast horizon"),
        ({"kind": "attention_lstm", "horizon": 3}, "horizon 1"),
        ({"kind": "lstm", "latent_size": 4}, "does not apply"),
        ({"kind": "lstm", "calibration": "median"}, "unknown calibration"),
        ({"kind": "lstm", "window": 1}, "window"),
    ],
)
def test_bad_configs_are_refused(overrides: dict, message: str, normal_data: np.ndarray, tmp_path: Path) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        train_model(normal_data, SENSORS, tmp_path / "m", TrainConfig(progress=False, **overrides))


def test_too_few_rows_and_bad_shapes_are_refused(normal_data: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too few rows"):
        train_model(normal_data[:60], SENSORS, tmp_path / "m", tiny_config("lstm_ae"))
    with pytest.raises(ValueError, match="must be"):
        train_model(normal_data[:, :3], SENSORS, tmp_path / "m", tiny_config("lstm_ae"))


def test_every_kind_takes_any_number_of_sensors() -> None:
    import torch

    for kind in NETWORK_KINDS:
        for n_sensors in (1, 8):
            horizon = KINDS[kind].default_horizon
            model = build_model(kind, n_sensors, 12, horizon, hidden_size=4).eval()
            with torch.no_grad():
                out = model(torch.zeros(3, 12, n_sensors))
            expected = (3, 12, n_sensors) if KINDS[kind].role == "detector" else (3, horizon, n_sensors)
            assert tuple(out.shape) == expected, (kind, n_sensors)
    deep = build_model("lstm", 2, 30, 1, **{k: v for k, v in SEED_PRESETS["lstm_deep"].items() if k != "kind"})
    assert deep.rnn.num_layers == 3 and deep.rnn.hidden_size == 128 and deep.rnn.dropout == 0.2  # type: ignore[union-attr]


def test_split_blocks_are_windowed_on_their_own(normal_data: np.ndarray, tmp_path: Path) -> None:
    config = tiny_config("lstm_ae")
    manifest = _manifest(train_model(normal_data, SENSORS, tmp_path / "m", config))
    split = manifest["training"]["split"]
    print("split:", {k: split[k] for k in ("blocks", "train", "calibration", "holdout")})
    window = config.window
    # Windows counted block by block: a window across two blocks (hence across parts) would add to this.
    per_block = {name: sum(b - a - window + 1 for a, b in split[name]) for name in ("train", "validation")}
    assert manifest["training"]["figures"]["windows"] == per_block
    threshold = manifest["threshold"]
    assert threshold["n_calibration"] == sum(b - a - window + 1 for a, b in split["calibration"])
    # The written threshold is set on every held-out window: the calibration blocks and the holdout.
    held_out = [*split["calibration"], *split["holdout"]]
    assert threshold["n_final"] == sum(b - a - window + 1 for a, b in held_out)
    assert threshold["calibration_rows"] == split["calibration"]
    assert split["holdout"] == [[2700, 3000]] and threshold["holdout"]["rows"] == [[2700, 3000]]
    for name in ("train", "validation", "calibration"):
        assert split[name][0][0] < 2700 / 4 and split[name][-1][1] > 3 * 2700 / 4, name


def test_holdout_far_is_what_the_holdout_scores_say(normal_data: np.ndarray, tmp_path: Path) -> None:
    model = load_artifact(train_model(normal_data, SENSORS, tmp_path / "m", tiny_config("lstm_ae", target_far=0.01)))
    record = model.calibration
    [(a, b)] = record["holdout"]["rows"]
    scores = model.infer(np.ascontiguousarray(sliding_windows(normal_data[a:b], model.window), np.float32)).scores
    assert scores is not None
    # The check is of the threshold the calibration blocks alone gave (the one written also learned the holdout).
    far = float(np.mean(scores > record["holdout"]["checked_value"]))
    print(f"holdout {record['holdout']}, recomputed FAR {far:.4f}; warnings {record['warnings']}")
    assert record["holdout"]["n"] == len(scores) == b - a - model.window + 1
    assert record["holdout"]["far"] == pytest.approx(far)
    assert record["holdout"]["n_effective"] == pytest.approx(len(scores) / record["decorrelation_windows"])
    assert model.resolve_level < model.threshold < model.critical_level


def test_holdout_far_above_target_is_a_warning(normal_data: np.ndarray, tmp_path: Path) -> None:
    data = normal_data.copy()
    data[2700:, 0] += 10 * np.std(data[:2700, 0])  # the newest rows (the holdout) moved: a change of operation
    manifest = _manifest(train_model(data, SENSORS, tmp_path / "m", tiny_config("lstm_ae", target_far=0.01)))
    holdout = manifest["threshold"]["holdout"]
    print(f"holdout FAR {holdout['far']:.2%}; warnings: {manifest['threshold']['warnings']}")
    assert holdout["far"] > 0.5
    assert any("on the holdout" in w for w in manifest["threshold"]["warnings"])


def test_envelope_of_noisy_and_constant_sensors(normal_data: np.ndarray, tmp_path: Path) -> None:
    data = normal_data.copy()
    data[:, 3] = 7.5  # a constant (stuck) sensor
    stamps = 1_700_000_000.0 + np.arange(len(data))
    path = train_model(data, SENSORS, tmp_path / "m", tiny_config("lstm_ae"), period_s=1.0, timestamps=stamps)
    model = load_artifact(path)
    envelope = model.envelope
    assert envelope is not None
    s0, s3 = envelope["sensors"]["s0"], envelope["sensors"]["s3"]
    print("envelope s0:", s0, "s3:", s3)
    assert s0["min_window_std"] > 0 and s0["min"] < s0["p001"] < s0["mean"] < s0["p999"] < s0["max"]
    assert s0["min"] == pytest.approx(data[:, 0].min()) and s0["std"] == pytest.approx(data[:, 0].std())
    assert s3["min_window_std"] == 0.0 and s3["std"] == 0.0 and s3["min"] == s3["max"] == 7.5
    # The spike rule's unit: the robust spread of the row-to-row steps (0 for a flat sensor).
    steps = np.diff(data[:, 0])
    assert 0 < s0["step_scale"] <= 1.2 * steps.std() and s3["step_scale"] == 0.0
    assert s0["max_step"] == pytest.approx(np.abs(steps).max()) and s3["max_step"] == 0.0  # the spike rule's floor
    assert envelope["rows"] == 3000 and envelope["window"] == 16 and envelope["span_s"] == 3000.0
    assert envelope["first_ts"] == stamps[0] and envelope["last_ts"] == stamps[-1]
    warnings = model.manifest["training"]["warnings"]
    print("warnings:", warnings)
    assert any("covers 0.8 h; a day or more is recommended" in w for w in warnings)
    assert any("sensor s3 is constant" in w for w in warnings)


def test_unsupported_target_is_recorded_or_refused(normal_data: np.ndarray, tmp_path: Path) -> None:
    config = tiny_config("lstm_ae")  # POT at 1e-4 per window on 3,000 rows: out of reach
    manifest = _manifest(train_model(normal_data, SENSORS, tmp_path / "m", config))
    threshold = manifest["threshold"]
    assert threshold["supported"] is False and threshold["needed_rows"] > 3000
    assert threshold["method"] != "pot" or threshold["parameters"]["n_clusters"] >= 20
    assert any("does not support" in w for w in threshold["warnings"])
    with pytest.raises(CalibrationUnsupported, match="rows"):
        train_model(normal_data, SENSORS, tmp_path / "refused", config, require_supported=True)
    assert not (tmp_path / "refused" / "manifest.json").exists()


def test_the_steps_outside_the_fit_import_no_torch() -> None:
    """The options, the rows, the threshold step and the pca's trainer are torch-free (their docstrings say so)."""
    code = (
        "import sys, models.train_config, models.train_rows, models.train_threshold, models.pca_train; "
        "c = models.train_config.TrainConfig(kind='pca', window=30); c.validate(); "
        "print(models.train_config.min_rows(c), 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    rows, torch_loaded = result.stdout.split()
    assert int(rows) > 30 and torch_loaded == "False"
