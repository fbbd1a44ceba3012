"""A training run's options (TrainConfig) and the row counts they imply; checked before any row is read.

API (torch-free)::

    config = TrainConfig(kind="lstm_ae", window=50, epochs=30)   # every field: stored as training.config
    config.validate()              # ValueError: unknown kind or calibration, sizes out of range, split shares
    config.hyperparameters()       # the model's constructor arguments (the kind's seed sizes where not given)
    config.resolved_horizon()      # 0 for a detector, the forecast steps for a forecaster
    window_span(config)            # rows one scored window needs (window + horizon, at least one more row)
    min_rows(config)               # fewest rows of data that leave every part of the split a window

Apart from models/train.py (which runs the steps) because the options are read by more than the run: the CLI
(monitor/commands/train.py builds a TrainConfig and tells a too-short history by min_rows before training), the pca kind
(models/pca_train.py), the row preparation (models/train_rows.py) and the threshold step
(models/train_threshold.py), none of which needs torch for it.

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

import math
from dataclasses import dataclass
from typing import Any

from models.calibration import CALIBRATION_METHODS
from models.kinds import KINDS


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
