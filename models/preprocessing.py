"""Scaling, missing values, interleaved splits and vectorized windowing.

Everything here is numpy only (no torch), so it can be tested and reused without a model.

Missing-value policy (the same in training and inference):

- A gap of at most ``max_gap`` consecutive missing values (NaN) in one sensor is filled with
  that sensor's last valid value (forward fill: causal, it never looks ahead).
- Rows that stay missing (leading NaNs, or longer gaps) are *unusable*: no training,
  validation or calibration window contains one, so a long outage splits the series into
  separate segments instead of being interpolated across.
- At inference, a window is forward-filled inside itself (a leading gap is back-filled from
  the window's first valid value, since there is nothing older); a window in which a sensor
  has no valid value at all gets a NaN score, never a made-up one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]
ScalerKind = Literal["standard", "minmax"]
SCALER_KINDS: tuple[str, ...] = ("standard", "minmax")

# A sensor whose spread on the training split is below this is treated as constant: its scale
# is set to 1 so a flat-lined sensor never divides by zero (RELIABILITY.md D5).
_MIN_SPREAD = 1e-8


@dataclass(frozen=True)
class Scaler:
    """Per-sensor affine scaling ``scaled = (raw - offset) / scale``, fitted on the training split only.

    ``standard``: offset = mean, scale = standard deviation.
    ``minmax``: offset = min, scale = max - min (training range maps to [0, 1]).
    Stored in the manifest as JSON (``to_dict``), never pickled.
    """

    kind: str
    offset: tuple[float, ...]
    scale: tuple[float, ...]
    feature_order: tuple[str, ...]

    @classmethod
    def fit(cls, data: FloatArray, sensors: tuple[str, ...] | list[str], kind: str = "standard") -> Scaler:
        """Fit on ``data`` [T, S] (training rows only; NaN rows are ignored)."""
        if kind not in SCALER_KINDS:
            raise ValueError(f"unknown scaler {kind!r}: expected one of {', '.join(SCALER_KINDS)}")
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(sensors):
            raise ValueError(f"scaler data must be [T, {len(sensors)}], got {arr.shape}")
        if not np.isfinite(arr).any(axis=0).all():
            raise ValueError("a sensor has no finite value in the training split")
        if kind == "standard":
            offset = np.nanmean(arr, axis=0)
            spread = np.nanstd(arr, axis=0)
        else:
            offset = np.nanmin(arr, axis=0)
            spread = np.nanmax(arr, axis=0) - offset
        spread = np.where(spread > _MIN_SPREAD, spread, 1.0)
        return cls(
            kind=kind,
            offset=tuple(float(v) for v in offset),
            scale=tuple(float(v) for v in spread),
            feature_order=tuple(sensors),
        )

    def transform(self, raw: FloatArray) -> npt.NDArray[np.float32]:
        """Raw units -> scaled, on the last axis (any leading shape)."""
        offset = np.asarray(self.offset, dtype=np.float32)
        scale = np.asarray(self.scale, dtype=np.float32)
        return ((np.asarray(raw, dtype=np.float32) - offset) / scale).astype(np.float32, copy=False)

    def inverse(self, scaled: FloatArray) -> npt.NDArray[np.float32]:
        """Scaled -> raw units, on the last axis (any leading shape)."""
        offset = np.asarray(self.offset, dtype=np.float32)
        scale = np.asarray(self.scale, dtype=np.float32)
        return (np.asarray(scaled, dtype=np.float32) * scale + offset).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "offset": list(self.offset),
            "scale": list(self.scale),
            "feature_order": list(self.feature_order),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> Scaler:
        """Validate and rebuild a scaler from its manifest entry; raises ValueError naming the bad field."""
        if not isinstance(raw, dict):
            raise ValueError("scaler: expected an object")
        for key in ("kind", "offset", "scale", "feature_order"):
            if key not in raw:
                raise ValueError(f"scaler.{key}: missing")
        kind = raw["kind"]
        if kind not in SCALER_KINDS:
            raise ValueError(f"scaler.kind: unknown {kind!r}")
        order = raw["feature_order"]
        if not isinstance(order, list) or not all(isinstance(s, str) for s in order):
            raise ValueError("scaler.feature_order: expected a list of sensor names")
        values: dict[str, tuple[float, ...]] = {}
        for key in ("offset", "scale"):
            seq = raw[key]
            if (
                not isinstance(seq, list)
                or len(seq) != len(order)
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in seq)
            ):
                raise ValueError(f"scaler.{key}: expected {len(order)} numbers")
            if not np.isfinite(np.asarray(seq, dtype=np.float64)).all():
                raise ValueError(f"scaler.{key}: non-finite value")
            values[key] = tuple(float(v) for v in seq)
        if any(v <= 0.0 for v in values["scale"]):
            raise ValueError("scaler.scale: every scale must be > 0")
        return cls(kind=kind, offset=values["offset"], scale=values["scale"], feature_order=tuple(order))


def forward_fill(data: FloatArray, max_gap: int | None = None) -> npt.NDArray[np.float64]:
    """Fill NaN runs of at most ``max_gap`` rows (per sensor) with the last valid value; vectorized.

    ``data`` [T, S] -> [T, S]. Longer runs, and leading NaNs, stay NaN. ``max_gap=None``: no limit.
    """
    arr = np.array(data, dtype=np.float64, copy=True)
    if arr.ndim != 2:
        raise ValueError(f"expected [T, S], got shape {arr.shape}")
    n_rows = arr.shape[0]
    if n_rows == 0:
        return arr
    valid = np.isfinite(arr)
    rows = np.arange(n_rows)[:, None]
    # index of the last valid row at or before each row, per sensor (-1: none yet)
    last_valid = np.maximum.accumulate(np.where(valid, rows, -1), axis=0)
    has_source = last_valid >= 0
    filled = np.where(has_source, arr[np.clip(last_valid, 0, None), np.arange(arr.shape[1])[None, :]], np.nan)
    if max_gap is not None:
        gap_len = rows - last_valid  # 0 on valid rows
        filled = np.where(has_source & (gap_len <= max_gap), filled, np.nan)
    return np.where(valid, arr, filled)


def fill_windows(windows: FloatArray) -> npt.NDArray[np.float32]:
    """Inference policy: forward-fill each window [B, W, S] inside itself, back-fill its leading gap.

    A sensor with no valid value in a window stays NaN there (the caller's score becomes NaN).
    """
    arr = np.asarray(windows, dtype=np.float32)
    valid = np.isfinite(arr)
    if valid.all():
        return arr
    steps = np.arange(arr.shape[1])[None, :, None]
    last_valid = np.maximum.accumulate(np.where(valid, steps, -1), axis=1)
    first_valid = np.where(valid.any(axis=1, keepdims=True), np.argmax(valid, axis=1)[:, None, :], 0)
    source = np.where(last_valid >= 0, last_valid, first_valid)
    filled = np.take_along_axis(arr, source, axis=1)
    return np.where(valid, arr, filled).astype(np.float32, copy=False)


def sliding_windows(data: FloatArray, window: int, step: int = 1) -> npt.NDArray[Any]:
    """All windows of ``window`` consecutive rows, as a strided view (no copy, no Python loop).

    ``data`` [T, S] -> [N, window, S] with N = (T - window) // step + 1 (0 when T < window).
    """
    arr = np.asarray(data)
    if window < 1:
        raise ValueError("window must be >= 1")
    if arr.shape[0] < window:
        return np.empty((0, window, *arr.shape[1:]), dtype=arr.dtype)
    view = np.lib.stride_tricks.sliding_window_view(arr, window, axis=0)  # [N, S, window]
    return np.moveaxis(view, -1, 1)[::step]


def valid_window_mask(usable_rows: npt.NDArray[np.bool_], length: int) -> npt.NDArray[np.bool_]:
    """For each start index, whether all ``length`` rows from it are usable; cumulative-sum trick, no loop.

    ``usable_rows`` [T] -> [T - length + 1] (empty when T < length).
    """
    bad = np.concatenate([[0], np.cumsum(~usable_rows, dtype=np.int64)])
    n = usable_rows.shape[0] - length + 1
    if n <= 0:
        return np.zeros(0, dtype=bool)
    return np.asarray((bad[length : length + n] - bad[:n]) == 0)


def forecast_pairs(
    scaled: FloatArray, usable_rows: npt.NDArray[np.bool_], window: int, horizon: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Inputs and targets for forecasting: X [N, window, S], Y [N, horizon, S] (Y follows X directly).

    Only pairs whose rows are all usable are kept.
    """
    span = sliding_windows(scaled, window + horizon)
    keep = valid_window_mask(usable_rows, window + horizon)
    span = span[keep]
    return (
        np.ascontiguousarray(span[:, :window], dtype=np.float32),
        np.ascontiguousarray(span[:, window:], dtype=np.float32),
    )


def reconstruction_windows(
    scaled: FloatArray, usable_rows: npt.NDArray[np.bool_], window: int, step: int = 1
) -> npt.NDArray[np.float32]:
    """Windows for reconstruction detectors: [N, window, S], only those made of usable rows."""
    windows = sliding_windows(scaled, window)
    keep = valid_window_mask(usable_rows, window)
    return np.ascontiguousarray(windows[keep][::step], dtype=np.float32)


SPLIT_PARTS: tuple[str, ...] = ("train", "validation", "calibration", "holdout")


@dataclass(frozen=True)
class Split:
    """Row ranges of each part of a split, as tuples of slices in time order (each slice windowed on its own).

    ``holdout`` is one slice at the end (or none); the other parts are interleaved blocks (``interleaved_split``).
    """

    train: tuple[slice, ...]
    validation: tuple[slice, ...]
    calibration: tuple[slice, ...]
    holdout: tuple[slice, ...] = ()
    blocks: int = 1

    def parts(self) -> dict[str, tuple[slice, ...]]:
        return {name: getattr(self, name) for name in SPLIT_PARTS}

    def rows(self, part: str) -> int:
        return sum(s.stop - s.start for s in getattr(self, part))

    def as_dict(self) -> dict[str, Any]:
        """For the manifest: ``{"scheme", "blocks", "train": [[start, stop], ...], ..., "holdout": [...]}``."""
        scheme = "interleaved" if len(self.train) > 1 else "chronological"
        record: dict[str, Any] = {"scheme": scheme, "blocks": self.blocks}
        for name, slices in self.parts().items():
            record[name] = [[int(s.start), int(s.stop)] for s in slices]
        return record


def _pieces(rows: int, count: int) -> list[int]:
    """Lengths of ``count`` near-equal pieces of ``rows`` rows."""
    return [int(v) for v in np.diff(np.linspace(0, rows, count + 1).round().astype(int))]


def interleaved_split(
    n_rows: int,
    val_fraction: float = 0.2,
    calib_fraction: float = 0.2,
    holdout_fraction: float = 0.1,
    *,
    min_block: int = 1,
    max_blocks: int = 20,
) -> Split:
    """Split ``n_rows`` rows: the newest ``holdout_fraction`` is the holdout; the rest is cut into contiguous
    blocks in the pattern T V C T V C ... T (k validation and k calibration blocks, k + 1 training blocks).

    Why blocks, not one chronological cut: with a cut, calibration saw only the newest hours and training
    never saw them (24 h of history: trained on 0-14 h, the evening's ambient never learned), so the
    threshold was set on data unlike the training and a part of the daily cycle was missing from the
    model. Interleaved blocks let every part span the range (24 h, k = 6: a 48 min validation and
    calibration block every 3.6 h). No window spans two blocks (each is windowed on its own).

    The fractions are of all rows (train gets what the others leave), kept exactly whatever k is. A block
    loses ``min_block - 1`` window starts at its end (``min_block``: the span of one window), so k is the
    largest that keeps every block at least ``4 * min_block`` rows, at most ``(max_blocks - 1) // 3``.
    Data too short for k = 1 get one chronological cut, T V C (then the parts do not span the range:
    ``data_warnings`` says the history is short); a holdout shorter than ``min_block`` is none (its rows
    join the last training block). A block shorter than ``min_block`` is refused (ValueError).
    """
    if not (
        0.0 < val_fraction < 1.0
        and 0.0 < calib_fraction < 1.0
        and 0.0 <= holdout_fraction < 1.0
        and val_fraction + calib_fraction + holdout_fraction < 1.0
    ):
        raise ValueError(
            "val_fraction and calib_fraction must be in (0, 1), holdout_fraction in [0, 1), and together less than 1"
        )
    n_hold = round(n_rows * holdout_fraction)
    if n_hold < min_block:  # a holdout without one window checks nothing: its rows stay in the history
        n_hold = 0
    n_val, n_cal = round(n_rows * val_fraction), round(n_rows * calib_fraction)
    n_train = n_rows - n_hold - n_val - n_cal
    preferred = 4 * max(min_block, 1)
    k = min((max_blocks - 1) // 3, min(n_val, n_cal) // preferred, n_train // preferred - 1)
    if k < 1:
        # Too short to interleave without blocks of a few windows each: one chronological cut, T V C.
        order = [("train", n_train), ("validation", n_val), ("calibration", n_cal)]
    else:
        train, val, cal = _pieces(n_train, k + 1), _pieces(n_val, k), _pieces(n_cal, k)
        order = [
            block for i in range(k) for block in (("train", train[i]), ("validation", val[i]), ("calibration", cal[i]))
        ]
        order.append(("train", train[k]))
    parts: dict[str, list[slice]] = {"train": [], "validation": [], "calibration": []}
    cursor = 0
    for name, length in order:
        parts[name].append(slice(cursor, cursor + length))
        cursor += length
    shortest = min(s.stop - s.start for slices in parts.values() for s in slices)
    if shortest < min_block:
        raise ValueError(f"too few rows ({n_rows}) for blocks of at least {min_block} rows")
    return Split(
        train=tuple(parts["train"]),
        validation=tuple(parts["validation"]),
        calibration=tuple(parts["calibration"]),
        holdout=(slice(cursor, n_rows),) if n_hold > 0 else (),
        blocks=len(order),
    )
