"""Forecasters on the seed's own synthetic signals beat naive persistence on held-out data.

Each seed signal (same formulas and lengths as the tutorial) is cut 80/20 in time, as the seed
does; the model trains on the first 80% (itself split train/validation/calibration) and is
judged on the last 20%, which it never saw. Persistence repeats the window's last value.
Hidden sizes are capped at 32 to keep the test fast; the layer counts, dropout and windows
are the seed's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.artifacts import load_artifact
from models.preprocessing import sliding_windows
from models.synthetic import seed_signal
from models.train import train_model
from models.train_config import TrainConfig

FORECASTERS = ("rnn", "lstm", "gru", "lstm_deep", "seq2seq", "attention_lstm")


def _train_on_seed(name: str, out: Path) -> tuple[np.ndarray, np.ndarray, int]:
    sig = seed_signal(name)
    cut = int(0.8 * len(sig.values))
    hyper = dict(sig.hyperparameters)
    hyper["hidden_size"] = min(hyper["hidden_size"], 32)
    config = TrainConfig(
        kind=sig.kind,
        window=sig.window,
        horizon=sig.horizon,
        epochs=40,
        patience=15,
        batch_size=32,
        lr=3e-3,
        progress=False,
        device="cpu",
        **hyper,
    )
    model = load_artifact(train_model(sig.values[:cut], ["x"], out, config), expected_sensors=["x"])
    held_out = sig.values[cut - sig.window :]  # the first forecast is of the first held-out row
    spans = np.ascontiguousarray(sliding_windows(held_out, sig.window + model.horizon), dtype=np.float32)
    inputs, actual = spans[:, : sig.window], spans[:, sig.window :]
    result = model.infer(inputs)
    assert result.forecasts is not None and result.forecasts.shape == actual.shape
    model_mse = ((result.forecasts - actual) ** 2).mean(axis=(0, 2))  # [H]
    persistence_mse = ((inputs[:, -1:, :] - actual) ** 2).mean(axis=(0, 2))  # [H]
    return model_mse, persistence_mse, model.horizon


@pytest.mark.parametrize("name", FORECASTERS)
def test_forecaster_beats_persistence_on_held_out_seed_signal(name: str, tmp_path: Path) -> None:
    model_mse, persistence_mse, horizon = _train_on_seed(name, tmp_path / name)
    for h in range(horizon):
        print(f"{name} h={h + 1}: model MSE {model_mse[h]:.4f}  persistence MSE {persistence_mse[h]:.4f}")
    assert horizon == (10 if name == "seq2seq" else 1)
    # every horizon, Seq2Seq's 10 included
    assert np.all(model_mse < persistence_mse), (model_mse, persistence_mse)


def test_scaler_is_fitted_on_the_training_split_only(tmp_path: Path) -> None:
    sig = seed_signal("lstm")
    config = TrainConfig(kind="gru", window=20, hidden_size=4, epochs=1, progress=False, device="cpu")
    model = load_artifact(train_model(sig.values, ["x"], tmp_path / "m", config))
    blocks = model.manifest["training"]["split"]["train"]
    rows = np.concatenate([sig.values[a:b, 0] for a, b in blocks])
    assert sum(b - a for a, b in blocks) == 500 and rows.size == 500  # half the rows, in blocks
    assert model.scaler.offset[0] == pytest.approx(rows.mean())
    assert model.scaler.scale[0] == pytest.approx(rows.std())
    assert model.scaler.offset[0] != pytest.approx(sig.values[:, 0].mean(), abs=1e-6)
