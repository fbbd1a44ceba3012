"""Preprocessing: scalers fitted on the training split only, vectorized windows, missing values, splits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.preprocessing import (
    Scaler,
    fill_windows,
    forecast_pairs,
    forward_fill,
    interleaved_split,
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


def test_interleaved_split_spans_the_range() -> None:
    split = interleaved_split(86_400, 0.2, 0.2, 0.1, min_block=31)
    record = split.as_dict()
    print({name: record[name] for name in ("train", "validation", "calibration", "holdout")})
    assert split.holdout == (slice(77_760, 86_400),) and split.blocks == 19  # T V C x 6, then T
    covered = sorted((s.start, s.stop) for slices in split.parts().values() for s in slices)
    assert covered[0][0] == 0 and covered[-1][1] == 86_400
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))  # contiguous, no overlap
    rest = 77_760
    for name in ("train", "validation", "calibration"):
        slices = getattr(split, name)
        # every part reaches into the first and the last quarter of the history (the whole daily cycle)
        assert slices[0].start < rest / 4 and slices[-1].stop > 3 * rest / 4, name
        assert all(s.stop - s.start >= 4 * 31 for s in slices)
    assert split.rows("calibration") == split.rows("validation") == 17_280  # exactly 20 % of the rows
    assert split.rows("train") == 43_200 and len(split.calibration) == 6
    assert record["scheme"] == "interleaved" and record["holdout"] == [[77_760, 86_400]]
    # neighbouring blocks of one part are one slice: parts alternate
    order = sorted((s.start, name) for name, slices in split.parts().items() for s in slices)
    assert all(a[1] != b[1] for a, b in itertools.pairwise(order))


def test_interleaved_split_of_short_data_and_bad_fractions() -> None:
    split = interleaved_split(400, 0.2, 0.2, 0.1, min_block=17)  # T V C T, holdout 40
    assert split.blocks == 4 and [len(getattr(split, p)) for p in ("train", "validation", "calibration")] == [2, 1, 1]
    assert split.as_dict()["train"] == [[0, 100], [260, 360]] and split.holdout == (slice(360, 400),)
    short = interleaved_split(172, 0.2, 0.2, 0.1, min_block=17)  # too short to interleave: T V C, holdout 17
    assert short.as_dict()["train"] == [[0, 87]] and short.as_dict()["calibration"] == [[121, 155]]
    assert short.as_dict()["scheme"] == "chronological" and split.as_dict()["scheme"] == "interleaved"
    assert interleaved_split(1000, 0.2, 0.3, 0.0, min_block=10).holdout == ()
    with pytest.raises(ValueError, match="too few rows"):
        interleaved_split(40, 0.2, 0.2, 0.1, min_block=17)
    with pytest.raises(ValueError):
        interleaved_split(1000, 0.6, 0.3, 0.2)
