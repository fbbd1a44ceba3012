"""Training the ``pca`` kind: the networks' data handling and calibration, a numpy fit in place of gradient descent.

``train_pca(data, sensors, out_dir, config, ...)`` is what ``models.train.train_model`` runs for ``kind="pca"``
(and so ``plantwatch train --model pca``). The same steps as a network's, where they apply (models/train.py):

1. the missing-value policy: gaps of up to ``max_gap`` rows forward-filled, rows still missing unusable;
2. the interleaved split (train / validation / calibration blocks, the newest rows the holdout); a fleet or a cut
   history (``units``): per unit and pooled, no window across a unit or a cut (models.train_rows.prepare_rows);
3. the fit (models.pca.PcaDetector.fit_statistics) on the usable rows of the train and validation blocks (a PCA
   has nothing to stop early, so the validation rows fit it too): standardization, the components that keep
   95 % of the variance, the T² and Q limits at their 99 % quantile;
4. the threshold by ``models.train_threshold.calibrate_threshold``, the networks' own code: window scores of the
   calibration blocks, quantile or POT, the holdout check and the guards (``require_supported``:
   CalibrationUnsupported, nothing written);
5. the envelope of all rows and the data warnings, the training record (config, data fingerprint, split,
   figures, warnings), then models.pca_artifact.save_pca_artifact.

Options of TrainConfig a PCA has no use for (epochs, batch size, learning rate, ...) are ignored; the network
sizes (hidden_size, ...) are refused by TrainConfig.validate, and a min-max scaler here (the statistics are
defined on standardized rows).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.envelope import compute_envelope
from models.pca import PcaDetector
from models.pca_artifact import save_pca_artifact
from models.segments import UnitRows
from models.train_config import TrainConfig
from models.train_rows import MISSING_VALUE_POLICY, add_fleet_record, fingerprint, prepare_rows
from models.train_threshold import CalibrationUnsupported, calibrate_threshold


def train_pca(
    raw: npt.NDArray[np.float64],
    sensors: Sequence[str],
    out_dir: str | Path,
    config: TrainConfig,
    *,
    period_s: float,
    timestamps: npt.ArrayLike | None,
    require_supported: bool,
    units: Sequence[UnitRows] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> Path:
    """Fit, calibrate and save a pca on ``raw`` [T, S] (checked by train_model); see the module docstring. ``units``
    and ``selection``: a fleet or a cut history, as for train_model (the same pieces, split and records)."""
    if config.scaler != "standard":
        raise ValueError("a pca standardizes its rows: train it with the standard scaler")
    sensors = tuple(sensors)
    started = time.perf_counter()
    pieces, filled, usable, split = prepare_rows(raw, config, units)
    fit_blocks = (*split.train, *split.validation)
    fit_rows = np.concatenate([filled[b][usable[b]] for b in fit_blocks])
    detector = PcaDetector.fit_statistics(
        fit_rows,
        sensors,
        name=config.name or "pca",
        window=config.window,
        score_steps=config.score_steps or config.window,
        period_s=period_s,
    )
    threshold = calibrate_threshold(detector, filled, usable, split, config, period_s)
    if require_supported and not threshold["supported"]:
        raise CalibrationUnsupported(threshold["message"])
    detector.set_threshold(threshold)
    envelope = compute_envelope(raw, sensors, config.window, period_s, timestamps, pieces)
    manifest = detector.manifest
    manifest["missing_values"] = {"policy": MISSING_VALUE_POLICY, "max_gap": config.max_gap}
    manifest["envelope"] = envelope
    explained = detector.eigenvalues.sum() / len(sensors)  # standardized rows: total variance = S
    manifest["training"] = {
        "config": dataclasses.asdict(config),
        "data": fingerprint(raw, sensors, timestamps),
        "split": split.as_dict(),
        "figures": {
            "fit_rows": int(fit_rows.shape[0]),
            "fit_parts": ["train", "validation"],
            "n_components": int(detector.components.shape[0]),
            "explained_variance": round(float(explained), 6),
            "seconds": round(time.perf_counter() - started, 3),
        },
        "device": "cpu",
        "warnings": [*threshold["warnings"], *envelope["warnings"]],
    }
    add_fleet_record(manifest["training"], raw, sensors, units, timestamps, period_s, selection)
    return save_pca_artifact(out_dir, detector)
