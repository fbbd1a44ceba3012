"""Reconstruction detectors on a seeded multi-sensor set with injected faults.

The default detector (``lstm_ae``, a bottleneck LSTM encoder-decoder) must separate fault
windows from normal windows with ROC AUC >= 0.95. The seed's BiLSTM is measured beside it:
it sees step t while reconstructing step t, so it learns to copy its input, faults included.
Windows entirely inside a fault segment are positives, windows touching no fault are negatives,
windows straddling a fault's edge are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.artifacts import load_artifact
from models.inference import LoadedModel
from models.preprocessing import sliding_windows
from models.synthetic import FAULT_KINDS, FaultSet, fault_dataset
from models.train import train_model
from models.train_config import TrainConfig

WINDOW = 32


@pytest.fixture(scope="module")
def faults() -> FaultSet:
    return fault_dataset(n_train=6000, n_test=4000, n_sensors=5, seed=0)


def _train(kind: str, data: FaultSet, out: Path, **sizes: int) -> LoadedModel:
    sensors = [f"s{i}" for i in range(data.train.shape[1])]
    config = TrainConfig(kind=kind, window=WINDOW, epochs=30, patience=30, progress=False, device="cpu", **sizes)
    return load_artifact(train_model(data.train, sensors, out, config), expected_sensors=sensors)


def _auc(model: LoadedModel, data: FaultSet) -> tuple[float, dict[str, float], float]:
    windows = np.ascontiguousarray(sliding_windows(data.test, WINDOW), dtype=np.float32)
    inside = sliding_windows(data.labels[:, None], WINDOW)[:, :, 0]
    positive, negative = inside.all(axis=1), ~inside.any(axis=1)
    scores = model.infer(windows).scores
    assert scores is not None
    keep = positive | negative
    auc = float(roc_auc_score(positive[keep], scores[keep]))
    kind_of_row = np.full(len(data.test), "", dtype=object)
    for start, end, _sensor, kind in data.segments:
        kind_of_row[start:end] = kind
    newest_kind = kind_of_row[WINDOW - 1 :]
    per_kind = {}
    for kind in FAULT_KINDS:
        pos = positive & (newest_kind == kind)
        labels = np.r_[np.zeros(negative.sum()), np.ones(pos.sum())]
        per_kind[kind] = round(float(roc_auc_score(labels, np.r_[scores[negative], scores[pos]])), 4)
    false_alarms = float(np.mean(scores[negative] > model.threshold))
    return auc, per_kind, false_alarms


def _copy_ratio(model: LoadedModel, data: FaultSet) -> float:
    """How much of a +1-spread offset on one sensor (newest half of the window) the reconstruction reproduces.

    0: the offset is left entirely as error (cannot copy); 1: reconstructed as if it were normal (copies).
    """
    windows = np.ascontiguousarray(sliding_windows(data.train[-2000:], WINDOW)[::50], dtype=np.float32)
    spread = np.float32(np.std(data.train[:, 0]))
    faulty = windows.copy()
    faulty[:, WINDOW // 2 :, 0] += spread
    recon = {}
    for name, batch in (("clean", windows), ("faulty", faulty)):
        scaled = model.scaler.transform(batch)
        import torch

        with torch.inference_mode():
            recon[name] = model.scaler.inverse(model.module(torch.from_numpy(scaled)).numpy())
    moved = recon["faulty"][:, WINDOW // 2 :, 0] - recon["clean"][:, WINDOW // 2 :, 0]
    return float(np.mean(moved) / spread)


def test_default_detector_separates_faults_and_bilstm_copies(faults: FaultSet, tmp_path: Path) -> None:
    ae = _train("lstm_ae", faults, tmp_path / "lstm_ae", hidden_size=32, latent_size=8)
    bi = _train("bilstm", faults, tmp_path / "bilstm", hidden_size=32)
    ae_auc, ae_kinds, ae_far = _auc(ae, faults)
    bi_auc, bi_kinds, bi_far = _auc(bi, faults)
    ae_copy, bi_copy = _copy_ratio(ae, faults), _copy_ratio(bi, faults)
    ae_val = ae.manifest["training"]["figures"]["val_loss"]
    bi_val = bi.manifest["training"]["figures"]["val_loss"]
    print(f"lstm_ae: AUC {ae_auc:.4f} {ae_kinds} copy ratio {ae_copy:.3f} val loss {ae_val:.4f} FAR {ae_far:.4f}")
    print(f"bilstm : AUC {bi_auc:.4f} {bi_kinds} copy ratio {bi_copy:.3f} val loss {bi_val:.4f} FAR {bi_far:.4f}")
    assert ae_auc >= 0.95
    assert ae_auc > bi_auc
    # The BiLSTM reproduces most of an injected offset; the bottleneck model leaves most of it as error.
    assert bi_copy > 0.5 > ae_copy
    # Its validation error sits far below the measurement noise (10% of spread, about 0.05 scaled MSE): copying.
    assert bi_val < 0.01 < ae_val
