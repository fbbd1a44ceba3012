"""The envelope of the normal data a model was fitted on: what each sensor did, and what the history covers.

Stored in the manifest under ``envelope`` (models.train, models.pca) for the stages that judge live data
against the history rather than against a model's score, e.g. a sensor-health check::

    {"sensors": {name: {"min", "max", "mean", "std", "p001", "p999", "min_window_std", "step_scale", "max_step"}},
     "window": W, "first_ts", "last_ts", "span_s", "period_s", "rows", "warnings": [...]}

``span_s``: last_ts - first_ts + period_s (rows x period_s without timestamps). Data in several ``segments``
(a fleet's units, a history cut where an incident was left out): the time the segments cover together, each one
from its first row to its last plus a period (units recorded at the same time count that time once); ``first_ts``
and ``last_ts`` the earliest and the latest row.

``min_window_std``: the 0.1 % quantile of the sensor's standard deviation over all windows of ``window``
rows inside one segment (windows with a missing value of that sensor are left out): how little a healthy sensor varies
within a window. A stuck sensor's window std is 0; one below this level varies less than the history
ever did. ``step_scale``: the robust spread of the sensor's row-to-row steps inside one segment, 1.4826 x their
median absolute deviation (the standard deviation of normal steps, untouched by rare jumps): the sensor detector's
spike rule measures an out-and-back against it; 0 for a sensor whose steps are mostly 0 (quantised, or flat).
``max_step``: the largest row-to-row change inside one segment (absolute): the spike rule's floor, so a change the
history already holds is never a spike. A quantised sensor with some jitter (SKAB's flow rate: steps of 1.0 with
0.001 jitter, half of them 0) has a step scale of its jitter, and every flip by one quantum would be a spike.
``p001`` / ``p999``: the 0.1 % / 99.9 % quantiles. Numbers are finite or null (no values).

``data_warnings`` says what the history lacks: less than a day (daily ambient and shift cycles), a
constant sensor, a sensor with a narrow range (few distinct values, or a spread tiny next to its level).
numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

DAY_S = 86_400.0
MIN_WINDOW_STD_QUANTILE = 0.001
MAD_TO_STD = 1.4826  # a normal distribution's standard deviation per median absolute deviation
# A sensor with fewer distinct values than this is quantized or nearly constant: its scaled errors are steps.
MIN_DISTINCT_VALUES = 10
# A spread (p99.9 - p0.1) under this share of the sensor's level is narrow (e.g. 0.0001 bar on 1 bar).
NARROW_RELATIVE_SPREAD = 1e-4


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def window_std(column: npt.NDArray[np.float64], window: int, chunk: int = 65_536) -> npt.NDArray[np.float64]:
    """Population std of every window of ``window`` rows of one column [T] -> [T - window + 1]; NaN where the
    window has a missing value. Chunks of a strided view (memory bounded); each window is measured from its
    first value, so a constant window is exactly 0 and a small variation on a large level keeps its digits."""
    n = column.size - window + 1
    if n <= 0:
        return np.zeros(0)
    view = np.lib.stride_tricks.sliding_window_view(np.asarray(column, dtype=np.float64), window)
    out = np.empty(n)
    for start in range(0, n, chunk):
        block = view[start : start + chunk]
        out[start : start + chunk] = np.std(block - block[:, :1], axis=1)
    return out


def sensor_envelope(
    column: npt.NDArray[np.float64], window: int, segments: Sequence[slice] | None = None
) -> dict[str, float | None]:
    """``{"min", "max", "mean", "std", "p001", "p999", "min_window_std", "step_scale", "max_step"}`` of one sensor's raw
    values; windows and steps are taken inside each of ``segments`` (default: the whole column), never across two."""
    values = column[np.isfinite(column)]
    if values.size == 0:
        return dict.fromkeys(("min", "max", "mean", "std", "p001", "p999", "min_window_std", "step_scale", "max_step"))
    pieces = segments if segments is not None else [slice(0, column.size)]
    stds = np.concatenate([window_std(column[piece], window) for piece in pieces])
    stds = stds[np.isfinite(stds)]
    steps = np.concatenate([np.diff(column[piece]) for piece in pieces])
    steps = steps[np.isfinite(steps)]
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "p001": float(np.quantile(values, 0.001)),
        "p999": float(np.quantile(values, 0.999)),
        "min_window_std": float(np.quantile(stds, MIN_WINDOW_STD_QUANTILE)) if stds.size else None,
        "step_scale": _robust_spread(steps) if steps.size else None,
        "max_step": float(np.abs(steps).max()) if steps.size else None,
    }


def _robust_spread(values: npt.NDArray[np.float64]) -> float:
    """1.4826 x the median absolute deviation from the median: a normal sample's standard deviation."""
    return float(MAD_TO_STD * np.median(np.abs(values - np.median(values))))


def compute_envelope(
    data: npt.ArrayLike,
    sensors: Sequence[str],
    window: int,
    period_s: float,
    timestamps: npt.ArrayLike | None = None,
    segments: Sequence[slice] | None = None,
) -> dict[str, Any]:
    """The envelope of raw ``data`` [T, S] (NaN = missing), windows of ``window`` rows inside each of ``segments``
    (row ranges in time order each; default: all rows are one); see the module docstring."""
    raw = np.asarray(data, dtype=np.float64)
    rows = int(raw.shape[0])
    pieces = list(segments) if segments is not None else [slice(0, rows)]
    # The time the rows cover, each row standing for one period: 86,400 rows at 1 s are 24 h.
    first_ts = last_ts = None
    span_s = rows * float(period_s)
    if timestamps is not None:
        ts = np.asarray(timestamps, dtype=np.float64)
        ends = [(float(ts[p][0]), float(ts[p][-1])) for p in pieces if ts[p].size]
        if ends and np.isfinite(ends).all():
            first_ts, last_ts = min(a for a, _ in ends), max(b for _, b in ends)
            span_s = _covered([(a, b + float(period_s)) for a, b in ends])
    envelope: dict[str, Any] = {
        "sensors": {name: sensor_envelope(raw[:, i], window, pieces) for i, name in enumerate(sensors)},
        "window": int(window),
        "first_ts": first_ts,
        "last_ts": last_ts,
        "span_s": float(span_s),
        "period_s": float(period_s),
        "rows": rows,
    }
    envelope["warnings"] = data_warnings(raw, sensors, envelope)
    return envelope


def _covered(spans: Sequence[tuple[float, float]]) -> float:
    """The length of the union of time intervals [a, b)."""
    total, reach = 0.0, -math.inf
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def data_warnings(raw: npt.NDArray[np.float64], sensors: Sequence[str], envelope: dict[str, Any]) -> list[str]:
    """What the history lacks for a model of normal operation (coverage, constant or narrow sensors)."""
    notes: list[str] = []
    span_s = float(envelope["span_s"])
    if span_s < DAY_S:
        notes.append(
            f"the data covers {span_s / 3600.0:.1f} h; a day or more is recommended "
            "(daily ambient and shift cycles the model has not seen will look anomalous)"
        )
    for i, name in enumerate(sensors):
        stats = envelope["sensors"][name]
        if stats["min"] is None:
            continue
        if stats["max"] == stats["min"]:
            notes.append(f"sensor {name} is constant ({stats['min']:g}) over the data: it teaches the model nothing")
            continue
        column = raw[:, i]
        distinct = np.unique(column[np.isfinite(column)]).size
        spread = float(stats["p999"]) - float(stats["p001"])
        if distinct < MIN_DISTINCT_VALUES:
            notes.append(f"sensor {name} takes only {distinct} distinct values: a narrow or quantized range")
        elif spread < NARROW_RELATIVE_SPREAD * abs(float(stats["mean"])):
            notes.append(
                f"sensor {name} has a narrow range ({spread:.3g} between its 0.1 % and 99.9 % quantiles, "
                f"level {stats['mean']:.4g})"
            )
    return notes
