"""Training: seeded runs are bit-for-bit repeatable, early stopping keeps the best epoch, bad configs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.networks import KINDS, SEED_PRESETS, build_model
from models.train import TrainConfig, train_model
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

    for kind in KINDS:
        for n_sensors in (1, 8):
            horizon = KINDS[kind].default_horizon
            model = build_model(kind, n_sensors, 12, horizon, hidden_size=4).eval()
            with torch.no_grad():
                out = model(torch.zeros(3, 12, n_sensors))
            expected = (3, 12, n_sensors) if KINDS[kind].role == "detector" else (3, horizon, n_sensors)
            assert tuple(out.shape) == expected, (kind, n_sensors)
    deep = build_model("lstm", 2, 30, 1, **{k: v for k, v in SEED_PRESETS["lstm_deep"].items() if k != "kind"})
    assert deep.rnn.num_layers == 3 and deep.rnn.hidden_size == 128 and deep.rnn.dropout == 0.2  # type: ignore[union-attr]
