"""Programmatic training: normal data [T, S] in, one calibrated artifact directory out (``train_model``).

API::

    path = train_model(data, sensors, out_dir, TrainConfig(kind="lstm_ae", window=50), period_s=1.0)
    # units=[UnitRows(...), ...]: a fleet or a cut history; require_supported=True: CalibrationUnsupported
    # (models.train_threshold) when the data does not support the target, nothing written

Steps (``train_model``; the ``pca`` kind, no network, keeps steps 1, 2 and 6-8 as they are and replaces the scaler,
the network's fit and its graph by the T²/Q statistics fitted with numpy: models/pca_train.py):

1. Missing values: gaps of up to ``max_gap`` rows are forward-filled, rows that stay missing are
   unusable and no window contains one (models/preprocessing.py states the policy).
2. Split (models.preprocessing.interleaved_split): the newest ``holdout_fraction`` of the rows is the
   holdout; the rest is cut into contiguous blocks dealt to train / validation / calibration in an
   interleaved pattern, so every part spans the history's whole time range (its daily cycle). Several
   units (a fleet model) or a history cut where rows were left out: each unit split on its own, the parts
   pooled, the blocks cut at the cuts (models.segments; ``train_model``'s ``units``).
3. Scaler (standard or min-max) fitted on the training rows only.
4. Vectorized windows per block (no window spans two blocks, hence never two parts).
5. Minibatch Adam on MSE in scaled units, gradient-norm clipping, early stopping on the
   validation loss (the best epoch's weights are kept), seeded torch / numpy / ``random``,
   a tqdm bar with the losses (``progress=False`` turns it off), device "auto" -> CUDA if present.
6. Calibration on the calibration part through ``LoadedModel`` (the code that will apply the
   threshold): detector scores, or forecasters' one-step residual scores; quantile or POT, with the
   scores' decorrelation length, effective count, the method actually used and whether the data
   supports the target (models/calibration.py).
7. Held-out check: the holdout is scored the same way and the share of its windows above the
   threshold recorded (``threshold.holdout``); far above the target is a warning (``holdout_warning``).
8. Envelope of the data (models/envelope.py: per-sensor range, spread, the least within-window std)
   and data warnings (less than a day, constant or narrow sensors).
9. The serving graph (models/onnx_export.py): the model exported to ONNX with its scaler and score folded in,
   verified against torch eager on 32 reference windows taken evenly from the calibration part (with missing
   values put in, models/reference.py); a graph that does not score like torch fails the training loudly
   (OnnxExportError, nothing written).
10. ``save_artifact``: manifest.json, weights.safetensors, model.onnx and reference.safetensors. Warnings are
   in the manifest (``threshold.warnings``, ``envelope.warnings``, all of them in ``training.warnings``);
   training never refuses on them unless ``require_supported`` (the CLI's default) and the calibration does
   not support the target (``CalibrationUnsupported``, nothing written).

This module is the run: it checks the input, then calls each step in order and assembles the manifest. The
steps live apart, each in one module: the options (TrainConfig, min_rows: models/train_config.py), the rows
(steps 1, 2 and 4, the data fingerprint and the fleet record: models/train_rows.py), the network's fit (step 5:
models/train_fit.py), the threshold (steps 6-7: models/train_threshold.py); the pca kind's run is
models/pca_train.py. The detector score choice (``score_steps``) is measured in models/train_config.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.artifacts import save_artifact
from models.device import resolve_device
from models.envelope import compute_envelope
from models.inference import LoadedModel
from models.networks import KINDS, build_model
from models.onnx_export import export_onnx
from models.pca_train import train_pca
from models.preprocessing import Scaler
from models.reference import pick_reference
from models.segments import UnitRows, check_units
from models.train_config import TrainConfig, min_rows
from models.train_fit import fit_module, seed_everything
from models.train_rows import MISSING_VALUE_POLICY, add_fleet_record, fingerprint, part_windows, prepare_rows, raw_pairs
from models.train_threshold import CalibrationUnsupported, calibrate_threshold


def train_model(
    data: npt.ArrayLike,
    sensors: Sequence[str],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    period_s: float = 1.0,
    timestamps: npt.ArrayLike | None = None,
    require_supported: bool = False,
    units: Sequence[UnitRows] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> Path:
    """Train one model on normal data and write its calibrated artifact to ``out_dir``; returns the directory.

    ``data``: [T, S] raw values in time order (NaN = missing), columns in ``sensors`` order,
    sampled every ``period_s`` seconds. Raises ValueError for unusable input (too few rows, ...),
    and ``CalibrationUnsupported`` (nothing written) when ``require_supported`` and the data does
    not support the target false-alarm rate; otherwise that is recorded in the manifest
    (``threshold.supported``, ``threshold.warnings``) and the artifact written.

    ``units`` (a fleet model, or one unit's history with rows left out): ``data`` is those units' rows one unit
    after the other, each unit in time order and cut at its ``breaks`` (models.segments.UnitRows); no row is
    forward-filled from another piece and no window spans two. Each unit is split on its own and the parts
    pooled (models.segments.fleet_split), so every unit is in training, validation, calibration and the
    holdout. Scaling is shared: one scaler fitted on the pooled training rows, because the served model has
    one scaler folded into its graph and the scheduler batches every unit's windows through it; per-unit
    scaling would need per-unit scaler state at serving time, which is not built. The price: a unit whose
    operating point lies apart from the others' is learnt as another operating point, so ``training.warnings``
    says when the units' sensor means differ by more than models.segments.MEAN_SPREAD_WARNING pooled
    within-unit standard deviations. The manifest's ``training.fleet`` records the units, their rows, time
    spans and pieces, and that scaling; ``selection`` (what the caller left out: time range, exclusions) is
    stored as ``training.selection``. Without ``units``: one unit, all rows consecutive, as before.
    """
    config = config or TrainConfig()
    config.validate()
    sensors = tuple(sensors)
    raw = np.asarray(data, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != len(sensors):
        raise ValueError(f"data must be [T, {len(sensors)}] for sensors {list(sensors)}, got shape {list(raw.shape)}")
    if len(set(sensors)) != len(sensors):
        raise ValueError("sensor names must be distinct")
    if np.isinf(raw).any():
        raise ValueError("data holds infinite values")
    needed = min_rows(config)
    if raw.shape[0] < needed:
        raise ValueError(
            f"too few rows: {raw.shape[0]} rows, window {config.window} needs at least {needed} "
            "(train / validation / calibration blocks)"
        )
    fleet = tuple(units) if units is not None else None
    if fleet is not None:
        check_units(fleet, raw.shape[0], needed, config.window)
    if not KINDS[config.kind].network:  # the pca: fitted with numpy, calibrated by the same code (models/pca_train.py)
        return train_pca(
            raw,
            sensors,
            out_dir,
            config,
            period_s=period_s,
            timestamps=timestamps,
            require_supported=require_supported,
            units=fleet,
            selection=selection,
        )
    seed_everything(config.seed)
    device = resolve_device(config.device)
    kind = config.kind
    horizon = config.resolved_horizon()
    role = KINDS[kind].role

    pieces, filled, usable, split = prepare_rows(raw, config, fleet)
    train_rows = np.concatenate([filled[b][usable[b]] for b in split.train])
    scaler = Scaler.fit(train_rows, sensors, config.scaler)
    scaled = scaler.transform(np.nan_to_num(filled, nan=0.0))

    def tensors(part: tuple[slice, ...], step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = part_windows(scaled, usable, part, config.window, horizon, step)
        return torch.from_numpy(x).to(device), None if y is None else torch.from_numpy(y).to(device)

    train_xy = tensors(split.train, config.train_step)
    val_xy = tensors(split.validation, 1)

    hyper = config.hyperparameters()
    module = build_model(kind, len(sensors), config.window, horizon, **hyper).to(device)
    figures = fit_module(module, kind, train_xy, val_xy, config)
    figures["windows"] = {"train": int(train_xy[0].shape[0]), "validation": int(val_xy[0].shape[0])}
    figures["torch_threads"] = torch.get_num_threads()
    if role == "forecaster":
        # Persistence (repeat the last row) on the same validation windows: the bar a forecaster must beat.
        x_val, y_val = val_xy
        assert y_val is not None
        figures["persistence_val_loss"] = float(nn.functional.mse_loss(x_val[:, -1:, :].expand_as(y_val), y_val))

    manifest: dict[str, Any] = {
        "name": config.name or kind,
        "kind": kind,
        "role": role,
        "hyperparameters": hyper,
        "sensors": list(sensors),
        "period_s": float(period_s),
        "window": config.window,
        "horizon": horizon,
        "scaler": scaler.to_dict(),
        "score": {
            "kind": "reconstruction" if role == "detector" else "forecast_residual",
            "reduction": (
                "per sensor: mean squared scaled reconstruction error over the window's newest `steps` rows; "
                "score: mean over sensors"
                if role == "detector"
                else "per sensor: squared scaled residual of the one-step-ahead forecast; score: mean over sensors"
            ),
            "steps": (config.score_steps or config.window) if role == "detector" else config.window,
        },
        "missing_values": {"policy": MISSING_VALUE_POLICY, "max_gap": config.max_gap},
        "threshold": {"method": "none", "value": math.nan},
    }
    loaded = LoadedModel(module, manifest, scaler, device)
    threshold = calibrate_threshold(loaded, filled, usable, split, config, period_s)
    if require_supported and not threshold["supported"]:
        raise CalibrationUnsupported(threshold["message"])
    # The envelope covers all rows, the holdout included: it describes the history live data is judged
    # against, and the newest normal rows are the most like what comes next (leaving them out would only
    # narrow the range; nothing checks the envelope on the holdout the way the threshold is checked).
    envelope = compute_envelope(raw, sensors, config.window, period_s, timestamps, pieces)
    manifest["threshold"] = threshold
    manifest["envelope"] = envelope
    manifest["training"] = {
        "config": dataclasses.asdict(config),
        "data": fingerprint(raw, sensors, timestamps),
        "split": split.as_dict(),
        "figures": figures,
        "device": str(device),
        "warnings": [*threshold["warnings"], *envelope["warnings"]],
    }
    add_fleet_record(manifest["training"], raw, sensors, fleet, timestamps, period_s, selection)
    # Reference windows for the graph's verification: rows the model did not train or early-stop on (the
    # calibration part), one more row each for a forecaster (its residual score needs the actual row).
    spans = raw_pairs(filled, usable, split.calibration, config.window + (1 if role == "forecaster" else 0))
    windows, actual = pick_reference(spans, role, config.window)
    bundle = export_onnx(loaded, windows, actual, source="calibration")
    return save_artifact(out_dir, module, manifest, onnx=bundle)
