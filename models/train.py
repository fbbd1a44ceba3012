"""Programmatic training: normal data [T, S] in, one calibrated artifact directory out.

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

Detector score choice: the per-sensor error averages the whole window (``score_steps = window``)
by default. Averaging only the newest rows reacts sooner to a fault's onset but separates faults
less well; ``score_steps`` (``--score-steps``) sets it per model and is recorded in the manifest.
Measured on models.synthetic.fault_dataset (lstm_ae hidden 32, latent 8, window 32, 30 epochs,
1% quantile threshold, 11 fault segments of 120 rows): newest 32 rows (all) window AUC 0.974,
10/11 faults detected, median delay 51.5 rows; newest 16: AUC 0.957, 11/11, 28 rows; newest 8:
AUC 0.921, 11/11, 21 rows; newest 4: AUC 0.887, 11/11, 34 rows. The whole window is kept as the
default for its separation; a deployment that values speed can train with ``score_steps = W/2``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from tqdm import tqdm

from models.artifacts import save_artifact
from models.calibration import CALIBRATION_METHODS, calibrate
from models.device import resolve_device
from models.envelope import compute_envelope
from models.inference import LoadedModel
from models.model_api import ScoringModel
from models.networks import KINDS, build_model
from models.onnx_export import export_onnx
from models.preprocessing import (
    Scaler,
    Split,
    forecast_pairs,
    forward_fill,
    interleaved_split,
    reconstruction_windows,
    sliding_windows,
    valid_window_mask,
)
from models.reference import pick_reference
from models.segments import UnitRows, check_units, fleet_record, fleet_split, segment_slices

MISSING_VALUE_POLICY = (
    "forward-fill gaps of at most max_gap rows per sensor; rows still missing are unusable and "
    "no window contains one; at inference a window is filled inside itself and a sensor with no "
    "value in the window scores NaN"
)


@dataclass
class TrainConfig:
    """Everything that shapes a training run; stored in the manifest under ``training.config``.

    ``None`` sizes take the seed's values for the kind (models.networks.KINDS).
    """

    kind: str = "lstm_ae"
    name: str | None = None  # model name (metric label); default: the kind
    window: int = 50  # W rows in
    horizon: int | None = None  # H steps out: forecasters only (seq2seq default 10, others 1)
    hidden_size: int | None = None
    num_layers: int | None = None
    dropout: float | None = None
    latent_size: int | None = None  # lstm_ae only
    score_steps: int | None = None  # detectors: newest rows the score averages (default: all W)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    patience: int = 5  # epochs without validation improvement before stopping
    grad_clip: float = 1.0  # max gradient norm
    teacher_forcing: float = 0.5  # seq2seq: probability of feeding the true previous row while training
    seed: int = 0
    device: str = "auto"
    scaler: str = "standard"
    max_gap: int = 5  # rows; see the missing-value policy
    val_fraction: float = 0.2  # of all rows, as blocks spread over the range
    calib_fraction: float = 0.2  # of all rows, as blocks spread over the range
    holdout_fraction: float = 0.1  # the newest rows: the threshold is checked there (0: no check)
    train_step: int = 1  # stride between training windows
    # POT at 1e-4 per window by default: at 1 Hz a 1% quantile crosses ~860 times a day, and crossings of
    # overlapping windows cluster, so k-of-n debouncing cannot save it (measured in benchmarks/QUALITY.md).
    # What the data supports (models/calibration.py): on a simulated reactor at 1 Hz, window 30, 24 h of history
    # do not support 1e-4 (8-11 declustered excesses: no tail fit; about 44-60 h estimated), 48 h do (33, MLE).
    calibration: str = "pot"  # or "quantile"
    target_far: float = 1e-4  # target false-alarm rate per scored window / row
    progress: bool = True

    def hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments of the model (seed sizes where not given)."""
        params = dict(KINDS[self.kind].seed_hyperparameters)
        for key in ("hidden_size", "num_layers", "dropout", "latent_size"):
            value = getattr(self, key)
            if value is not None:
                if key not in params:
                    raise ValueError(f"{key} does not apply to model kind {self.kind!r}")
                params[key] = value
        return params

    def resolved_horizon(self) -> int:
        spec = KINDS[self.kind]
        if spec.role == "detector":
            if self.horizon not in (None, 0):
                raise ValueError(f"{self.kind} is a detector: it has no forecast horizon")
            return 0
        horizon = spec.default_horizon if self.horizon is None else self.horizon
        if horizon < 1:
            raise ValueError("a forecaster's horizon must be >= 1")
        if self.kind == "attention_lstm" and horizon != 1:
            raise ValueError("attention_lstm forecasts one step (horizon 1)")
        return horizon

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(
                f"unknown calibration {self.calibration!r}: expected one of {', '.join(CALIBRATION_METHODS)}"
            )
        if self.window < 2:
            raise ValueError("window must be >= 2")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.train_step < 1:
            raise ValueError("epochs, batch_size, patience and train_step must be >= 1")
        if not 0.0 < self.target_far < 1.0:
            raise ValueError("target_far must be in (0, 1)")
        if not (
            0.0 < self.val_fraction < 1.0
            and 0.0 < self.calib_fraction < 1.0
            and 0.0 <= self.holdout_fraction < 1.0
            and self.val_fraction + self.calib_fraction + self.holdout_fraction < 1.0
        ):
            raise ValueError("val_fraction, calib_fraction (> 0) and holdout_fraction (>= 0) must sum to less than 1")
        if self.score_steps is not None and not 1 <= self.score_steps <= self.window:
            raise ValueError("score_steps must be in [1, window]")
        self.resolved_horizon()
        self.hyperparameters()


def window_span(config: TrainConfig) -> int:
    """Rows one scored window needs: the window plus the horizon (calibration needs one row after the window)."""
    return config.window + max(config.resolved_horizon(), 1)


def min_rows(config: TrainConfig) -> int:
    """Fewest rows of (complete) data that leave every part of the split (at its shortest, one chronological
    cut) a window; the holdout may be left without one (then there is no holdout check, and a warning)."""
    train_share = 1.0 - config.val_fraction - config.calib_fraction - config.holdout_fraction
    smallest = min(config.val_fraction, config.calib_fraction, train_share)
    return math.ceil(window_span(config) / smallest) + 2


class CalibrationUnsupported(ValueError):
    """The data does not support the target false-alarm rate (raised only with ``require_supported``)."""


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fingerprint(data: npt.NDArray[Any], sensors: Sequence[str], timestamps: npt.ArrayLike | None) -> dict[str, Any]:
    """Identify the training data: sha256 of the values (float64, NaN kept) and sensor names."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(sensors).encode("utf-8"))
    digest.update(np.ascontiguousarray(data, dtype=np.float64).tobytes())
    result: dict[str, Any] = {
        "sha256": digest.hexdigest(),
        "rows": int(data.shape[0]),
        "missing_values": int(np.count_nonzero(~np.isfinite(data))),
    }
    if timestamps is not None:
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.size:  # the earliest and the latest row (a fleet's rows are in time order unit by unit)
            result["first_ts"] = float(np.min(ts))
            result["last_ts"] = float(np.max(ts))
    return result


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(torch.split(order, batch_size))


def _loss(
    module: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor | None, teacher_forcing: float
) -> torch.Tensor:
    """MSE in scaled units: forecast vs next rows, or reconstruction vs input."""
    if KINDS[kind].role == "detector":
        return nn.functional.mse_loss(module(x), x)
    assert y is not None
    pred = module(x, y, teacher_forcing) if kind == "seq2seq" else module(x)
    return nn.functional.mse_loss(pred, y)


def _evaluate(module: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> float:
    module.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for idx in _batches(x.shape[0], max(batch_size, 256), None):
            loss = _loss(module, kind, x[idx], None if y is None else y[idx], 0.0)
            total += float(loss) * len(idx)
            count += len(idx)
    return total / max(count, 1)


def fit_module(
    module: nn.Module,
    kind: str,
    train: tuple[torch.Tensor, torch.Tensor | None],
    validation: tuple[torch.Tensor, torch.Tensor | None],
    config: TrainConfig,
) -> dict[str, Any]:
    """Minibatch Adam with clipping and early stopping; leaves the best epoch's weights in ``module``.

    ``train`` and ``validation``: (X [N, W, S], Y [N, H, S] or None for detectors), scaled, on the
    module's device. Returns the training figures for the manifest.
    """
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    x_train, y_train = train
    x_val, y_val = validation
    best_val, best_epoch, best_state = math.inf, 0, copy.deepcopy(module.state_dict())
    history: list[list[float]] = []
    started = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=f"train {kind}", unit="epoch", disable=not config.progress)
    for epoch in bar:
        module.train()
        total = 0.0
        for idx in _batches(x_train.shape[0], config.batch_size, generator):
            idx_dev = idx.to(x_train.device)
            optimizer.zero_grad(set_to_none=True)
            loss = _loss(
                module, kind, x_train[idx_dev], None if y_train is None else y_train[idx_dev], config.teacher_forcing
            )
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        train_loss = total / x_train.shape[0]
        val_loss = _evaluate(module, kind, x_val, y_val, config.batch_size)
        history.append([round(train_loss, 6), round(val_loss, 6)])
        bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if val_loss < best_val:
            best_val, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(module.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    bar.close()
    module.load_state_dict(best_state)
    module.eval()
    return {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "train_loss": history[best_epoch - 1][0] if history else math.nan,
        "val_loss": best_val,
        "history": history,
        "seconds": round(time.perf_counter() - started, 3),
        "early_stopped": len(history) < config.epochs,
    }


Part = slice | Sequence[slice]


def _slices(part: Part) -> tuple[slice, ...]:
    return (part,) if isinstance(part, slice) else tuple(part)


def _raw_pairs(
    filled: npt.NDArray[np.float64], usable: npt.NDArray[np.bool_], part: Part, length: int
) -> npt.NDArray[Any]:
    """Raw windows of ``length`` usable rows inside each block of a split part, in time order: [N, length, S]."""
    chunks = []
    for block in _slices(part):
        windows = sliding_windows(filled[block], length)
        chunks.append(np.asarray(windows[valid_window_mask(usable[block], length)], dtype=np.float32))
    return np.concatenate(chunks) if chunks else np.zeros((0, length, filled.shape[1]), np.float32)


def part_windows(
    scaled: npt.NDArray[Any], usable: npt.NDArray[np.bool_], part: Part, window: int, horizon: int, step: int = 1
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
    """The training windows of a split part: every block windowed on its own (so no window spans two blocks, two
    parts, two units or a cut), only usable rows, every ``step``-th, concatenated in block order. Detectors
    (``horizon`` 0): X [N, window, S] and None; forecasters: X and the ``horizon`` rows after each, Y [N, H, S].
    ValueError when the part holds no window."""
    blocks = _slices(part)
    if horizon == 0:
        x = np.concatenate([reconstruction_windows(scaled[b], usable[b], window, step) for b in blocks])
        if x.shape[0] == 0:
            raise ValueError(f"too few usable rows in a split part for window {window}")
        return x, None
    pairs = [forecast_pairs(scaled[b], usable[b], window, horizon) for b in blocks]
    x = np.concatenate([p[0][::step] for p in pairs])
    y = np.concatenate([p[1][::step] for p in pairs])
    if x.shape[0] == 0:
        raise ValueError(f"too few usable rows in a split part for window {window} + horizon {horizon}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def prepare_rows(
    raw: npt.NDArray[np.float64], config: TrainConfig, units: Sequence[UnitRows] | None
) -> tuple[list[slice], npt.NDArray[np.float64], npt.NDArray[np.bool_], Split]:
    """Steps 1 and 2: the pieces of consecutive rows, the rows forward-filled piece by piece (a unit's first rows
    are never filled from the unit before it, nor across a cut), which rows are usable, and the split (per unit
    and pooled with ``units``, models.segments.fleet_split; else models.preprocessing.interleaved_split)."""
    pieces = segment_slices(units) if units is not None else [slice(0, raw.shape[0])]
    filled = np.concatenate([forward_fill(raw[piece], config.max_gap) for piece in pieces])
    usable = np.asarray(np.isfinite(filled).all(axis=1), dtype=bool)
    fractions = (config.val_fraction, config.calib_fraction, config.holdout_fraction)
    split = (
        fleet_split(units, *fractions, min_block=window_span(config))
        if units is not None
        else interleaved_split(raw.shape[0], *fractions, min_block=window_span(config))
    )
    return pieces, filled, usable, split


def add_fleet_record(
    training: dict[str, Any],
    raw: npt.NDArray[np.float64],
    sensors: Sequence[str],
    units: Sequence[UnitRows] | None,
    timestamps: npt.ArrayLike | None,
    period_s: float,
    selection: Mapping[str, Any] | None,
) -> None:
    """The manifest's ``training.fleet`` (and its scaling warning) and ``training.selection``, where given."""
    if units is not None:
        training["fleet"] = fleet_record(raw, sensors, units, timestamps, period_s)
        training["warnings"] += training["fleet"]["scaling"]["warnings"]
    if selection is not None:
        training["selection"] = dict(selection)


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
        from models.pca_train import train_pca

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
    spans = _raw_pairs(filled, usable, split.calibration, config.window + (1 if role == "forecaster" else 0))
    windows, actual = pick_reference(spans, role, config.window)
    bundle = export_onnx(loaded, windows, actual, source="calibration")
    return save_artifact(out_dir, module, manifest, onnx=bundle)


def calibrate_threshold(
    model: ScoringModel,
    filled: npt.NDArray[np.float64],
    usable: npt.NDArray[np.bool_],
    split: Split,
    config: TrainConfig,
    period_s: float,
) -> dict[str, Any]:
    """The threshold record: calibration on the calibration blocks, then the check on the holdout.

    ``needed_rows`` is rescaled from calibration scores to rows of history (the calibration part is a
    share of it), and the message says it in hours too.
    """
    scores = calibration_scores(model, filled, usable, split.calibration)
    record = calibrate(scores, config.calibration, config.target_far, window=model.window)
    record["calibration_rows"] = [[int(b.start), int(b.stop)] for b in split.calibration]
    if record["needed_rows"] is not None:
        rows_per_score = filled.shape[0] / record["n_calibration"]
        record["needed_rows"] = math.ceil(record["needed_rows"] * rows_per_score)
        record["message"] = unsupported_message(record, filled.shape[0], period_s)
        record["warnings"] = [record["message"]]
    record["holdout"] = None
    if not split.holdout and config.holdout_fraction > 0:
        record["warnings"].append(
            f"no holdout check: the newest {config.holdout_fraction:.0%} of the rows is shorter than a window"
        )
    if split.holdout:
        holdout_scores = calibration_scores(model, filled, usable, split.holdout)
        record["holdout"] = holdout_check(holdout_scores, split.holdout, record)
        warning = holdout_warning(record["holdout"], config.target_far)
        if warning:
            record["warnings"].append(warning)
        # The check judged the procedure; the threshold written is then set by the same procedure on every
        # held-out window (calibration and holdout): the newest rows are the most like what comes next.
        scores = np.concatenate([scores, holdout_scores])
        final = calibrate(scores, config.calibration, config.target_far, window=model.window)
        record["holdout"]["checked_value"] = record["value"]
        # n_calibration, n_effective and supported keep describing the calibration blocks the check judged.
        for key in ("value", "resolve_value", "critical_value", "method", "parameters"):
            record[key] = final[key]
        record["n_final"] = final["n_calibration"]  # windows the written threshold was set on
    apply_guards(record, scores)
    return record


# Far beyond the calibrated threshold in the units of the normal spread above the resolve level: critical.
CRITICAL_SPREADS = 2.0


def apply_guards(record: dict[str, Any], scores: npt.NDArray[np.float32]) -> None:
    """Floors the data demand when the tail fit cannot: a target the data cannot support is never set below
    the largest normal score seen (no held-out normal window may cross it), and a bounded tail (fitted shape
    < 0) cannot put the critical level just above the threshold: it is at least CRITICAL_SPREADS times the
    threshold's distance from the resolve level beyond it."""
    finite = scores[np.isfinite(scores)]
    if not record["supported"] and finite.size:
        observed_max = float(finite.max())
        if observed_max > record["value"]:
            record["value"] = observed_max
            record["parameters"]["floored_at_max"] = True
    value, resolve = record["value"], min(record["resolve_value"], record["value"])
    record["resolve_value"] = resolve
    record["critical_value"] = max(record["critical_value"], value + CRITICAL_SPREADS * (value - resolve), value)


def unsupported_message(record: dict[str, Any], rows: int, period_s: float) -> str:
    """One line: why the target is out of reach and how much normal data would reach it."""
    needed = int(record["needed_rows"])
    return (
        f"the calibration does not support target FAR {record['target_far']:g} ({record['method']}): "
        f"{record['n_calibration']} calibration windows hold about {record['n_effective']:.0f} independent ones "
        f"(decorrelation {record['decorrelation_windows']} windows); about {needed} rows "
        f"({needed * period_s / 3600.0:.1f} h) of normal data would be needed, {max(needed - rows, 0)} more "
        f"({max(needed - rows, 0) * period_s / 3600.0:.1f} h)"
    )


def holdout_check(scores: npt.NDArray[np.float32], part: Part, record: dict[str, Any]) -> dict[str, Any]:
    """The share of the holdout's windows (``scores``: the holdout scored by the calibration's code) above the
    threshold. ``rows``: the holdout's row ranges, ``[[start, stop], ...]`` (one per unit and piece)."""
    scores = scores[np.isfinite(scores)]
    n = int(scores.size)
    above = int(np.count_nonzero(scores > record["value"]))
    return {
        "rows": [[int(s.start), int(s.stop)] for s in _slices(part)],
        "n": n,
        "exceedances": above,
        "far": above / n if n else None,
        # the calibration's decorrelation length: the holdout is too short to estimate its own reliably
        "n_effective": n / record["decorrelation_windows"],
    }


# The holdout FAR is "far above" the target past 10 x the target, and past 5 independent exceedances'
# worth (5 / n_effective), so that one chance excursion in a short holdout is not called a failure.
HOLDOUT_FAR_FACTOR = 10.0
HOLDOUT_MIN_EXCEEDANCES = 5.0


def holdout_warning(holdout: dict[str, Any], target_far: float) -> str | None:
    """A warning when the holdout's measured FAR is far above the target (see HOLDOUT_FAR_FACTOR)."""
    far = holdout["far"]
    if far is None:
        return "the holdout has no scored window: the threshold is not checked"
    limit = max(HOLDOUT_FAR_FACTOR * target_far, HOLDOUT_MIN_EXCEEDANCES / max(holdout["n_effective"], 1e-9))
    if far <= limit:
        return None
    return (
        f"on the holdout (the newest rows, not used for training or calibration) {far:.2%} of "
        f"{holdout['n']} windows are above the threshold, target {target_far:g}: the newest data differ "
        "from the history the threshold was set on (drift, a change of operation, too short a history)"
    )


def calibration_scores(
    model: ScoringModel, filled: npt.NDArray[np.float64], usable: npt.NDArray[np.bool_], part: Part
) -> npt.NDArray[np.float32]:
    """Scores of a model on one part (a slice, or blocks) of (filled) raw data, as the service computes them.

    Detectors: ``infer(window).scores`` for every window. Forecasters: ``residual_score`` of the
    one-step-ahead forecast of every row that has a full window before it. In time order, blocks one
    after the other; no window spans two blocks.
    """
    if model.role == "detector":
        windows = _raw_pairs(filled, usable, part, model.window)
        scores = model.infer(windows).scores
        assert scores is not None
        return scores
    spans = _raw_pairs(filled, usable, part, model.window + 1)
    result = model.infer(spans[:, : model.window])
    assert result.forecasts is not None
    score, _ = model.residual_score(result.forecasts[:, 0], spans[:, model.window])
    return score
