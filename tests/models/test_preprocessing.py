"""Preprocessing: scalers fitted on the training split only, vectorized windows, missing values, splits."""

from __future__ import annotations

import numpy as np
import pytest

from models.preprocessing import (
    Scaler,
    chronological_split,
    fill_windows,
    forecast_pairs,
    forward_fill,
    sliding_windows,
    valid_window_mask,
)


def test_scalers_fit_and_round_trip() -> None:
    data = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    std = Scaler.fit(data, ["a", "b"], "standard")
    assert std.offset == (3.0, 10.0)
    assert std.scale[0] == pytest.approx(np.std([1.0, 3.0, 5.0]))
    assert std.scale[1] == 1.0  # a constant sensor is never divided by zero
    mm = Scaler.fit(data, ["a", "b"], "minmax")
    assert mm.offset == (1.0, 10.0) and mm.scale == (4.0, 1.0)
    assert np.allclose(mm.transform(data)[:, 0], [0.0, 0.5, 1.0])
    assert np.allclose(std.inverse(std.transform(data)), data)
    again = Scaler.from_dict(std.to_dict())
    assert again == std
    for bad in ({**std.to_dict(), "scale": [1.0]}, {**std.to_dict(), "scale": [1.0, 0.0]}, {"kind": "standard"}):
        with pytest.raises(ValueError, match="scaler"):
            Scaler.from_dict(bad)


def test_sliding_windows_match_the_seed_loop() -> None:
    data = np.arange(40, dtype=np.float64).reshape(20, 2)
    windows = sliding_windows(data, 5)
    loop = np.array([data[i : i + 5] for i in range(len(data) - 5 + 1)])
    assert windows.shape == (16, 5, 2)
    assert np.array_equal(windows, loop)
    assert np.shares_memory(windows, data)  # a strided view, not a copy
    assert sliding_windows(data, 21).shape == (0, 21, 2)
    x, y = forecast_pairs(data, np.ones(20, bool), 5, 3)
    assert x.shape == (13, 5, 2) and y.shape == (13, 3, 2)
    assert np.array_equal(y[0], data[5:8]) and np.array_equal(x[-1], data[12:17])


def test_missing_value_policy() -> None:
    col = np.array([np.nan, 1.0, np.nan, np.nan, 4.0, np.nan, np.nan, np.nan, np.nan, 9.0])
    filled = forward_fill(col[:, None], max_gap=2)[:, 0]
    # leading NaN stays; a 2-row gap is filled with the last value; a 4-row gap is filled only for max_gap rows
    expected = [np.nan, 1.0, 1.0, 1.0, 4.0, 4.0, 4.0, np.nan, np.nan, 9.0]
    assert np.array_equal(filled, expected, equal_nan=True)
    usable = np.isfinite(filled)
    mask = valid_window_mask(usable, 3)
    assert mask.tolist() == [False, True, True, True, True, False, False, False]
    windows = np.array([[[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan]]], dtype=np.float32)
    assert np.array_equal(fill_windows(windows)[0], [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]])


def test_chronological_split() -> None:
    split = chronological_split(1000, 0.2, 0.3)
    assert (split.train, split.validation, split.calibration) == (slice(0, 500), slice(500, 700), slice(700, 1000))
    assert split.as_dict() == {"train": [0, 500], "validation": [500, 700], "calibration": [700, 1000]}
    with pytest.raises(ValueError):
        chronological_split(100, 0.6, 0.5)
