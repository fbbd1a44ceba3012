"""The rows a training run works on, as arrays: filled, split, windowed per block, and identified in the manifest.

API (numpy only)::

    pieces, filled, usable, split = prepare_rows(raw, config, units)   # steps 1-2 of models/train.py
    x, y = part_windows(scaled, usable, split.train, window, horizon, step)   # training windows of one part
    windows = raw_pairs(filled, usable, split.calibration, length)     # raw windows of a part, [N, length, S]
    part_slices(part)              # a Part (one slice or blocks) as a tuple of slices
    fingerprint(raw, sensors, timestamps)                              # the manifest's training.data
    add_fleet_record(training, raw, sensors, units, timestamps, period_s, selection)   # training.fleet, .selection
    MISSING_VALUE_POLICY           # the fill policy in words, stored as the manifest's missing_values.policy

Apart from models/train.py because both trainers use it (the networks' train_model and the pca's
models/pca_train.py prepare, split and record the same rows) and the threshold step windows the same parts
(models/train_threshold.py); none of it needs torch. Not models/train_data.py: that chooses which rows are read
from files (units, time range, exclusions); this module takes the chosen rows as an array. The split itself is
models.preprocessing.interleaved_split, per unit models.segments.fleet_split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from models.preprocessing import (
    Split,
    forecast_pairs,
    forward_fill,
    interleaved_split,
    reconstruction_windows,
    sliding_windows,
    valid_window_mask,
)
from models.segments import UnitRows, fleet_record, fleet_split, segment_slices
from models.train_config import TrainConfig, window_span

MISSING_VALUE_POLICY = (
    "forward-fill gaps of at most max_gap rows per sensor; rows still missing are unusable and "
    "no window contains one; at inference a window is filled inside itself and a sensor with no "
    "value in the window scores NaN"
)

Part = slice | Sequence[slice]


def part_slices(part: Part) -> tuple[slice, ...]:
    return (part,) if isinstance(part, slice) else tuple(part)


def raw_pairs(
    filled: npt.NDArray[np.float64], usable: npt.NDArray[np.bool_], part: Part, length: int
) -> npt.NDArray[Any]:
    """Raw windows of ``length`` usable rows inside each block of a split part, in time order: [N, length, S]."""
    chunks = []
    for block in part_slices(part):
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
    blocks = part_slices(part)
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
