"""Training rows made of several units' histories, each cut where rows were left out: the split and the pieces.

A fleet model trains on the rows of several units of one design, one unit after the other in one array [T, S].
Each unit's rows stay apart: a unit is a run of rows (``UnitRows``), and inside it ``breaks`` mark where rows were
removed (an excluded incident, a gap in the recording), so the rows before and after a break are not consecutive
in time. No window may span a unit's end or a break: every row range this module hands out ends there.

API (numpy only)::

    units = [UnitRows("R-101", 86_400, breaks=(40_000,)), UnitRows("R-102", 86_400)]
    split = fleet_split(units, 0.2, 0.2, 0.1, min_block=31)   # -> models.preprocessing.Split
    pieces = segment_slices(units)                            # -> [slice(0, 40000), slice(40000, 86400), ...]
    spread = mean_spread(data, units, sensors)                # -> MeanSpread: how far the units' means lie apart
    check_units(units, total_rows, needed_rows, window)       # ValueError: rows do not add up, a unit too short
    fleet_record(data, sensors, units, timestamps, period_s)  # -> the manifest's training.fleet

``fleet_split``: each unit is split on its own by models.preprocessing.interleaved_split (its newest
``holdout_fraction`` is its holdout, the rest interleaved train / validation / calibration blocks), and the parts
are pooled, so every unit is in every part and each part spans every unit's time range. Then every block is cut at
the breaks inside it. One unit without breaks gives exactly interleaved_split's split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from models.preprocessing import Split, interleaved_split


@dataclass(frozen=True)
class UnitRows:
    """One unit's run of rows in the training array: ``rows`` rows after the units before it, in time order.

    ``breaks``: offsets inside the unit (0 < b < rows, increasing) where a new piece begins, because rows were
    left out just before it; no window spans one.
    """

    unit: str
    rows: int
    breaks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError(f"unit {self.unit}: negative row count")
        if any(not 0 < b < self.rows for b in self.breaks) or list(self.breaks) != sorted(set(self.breaks)):
            raise ValueError(f"unit {self.unit}: breaks must be increasing offsets inside (0, {self.rows})")


def unit_offsets(units: Sequence[UnitRows]) -> list[int]:
    """The first row of each unit in the training array."""
    return [int(v) for v in np.cumsum([0, *(u.rows for u in units)])[:-1]]


def _cut(block: slice, cuts: Sequence[int]) -> list[slice]:
    """``block`` cut at the absolute row indices ``cuts`` that fall strictly inside it."""
    inner = [c for c in cuts if block.start < c < block.stop]
    edges = [block.start, *inner, block.stop]
    return [slice(a, b) for a, b in pairwise(edges)]


def segment_slices(units: Sequence[UnitRows]) -> list[slice]:
    """Every piece of consecutive rows: each unit cut at its breaks, in array order."""
    pieces: list[slice] = []
    for unit, start in zip(units, unit_offsets(units), strict=True):
        if unit.rows:
            pieces += _cut(slice(start, start + unit.rows), [start + b for b in unit.breaks])
    return pieces


def fleet_split(
    units: Sequence[UnitRows],
    val_fraction: float,
    calib_fraction: float,
    holdout_fraction: float,
    *,
    min_block: int,
) -> Split:
    """Each unit split on its own (interleaved_split), the parts pooled, every block cut at the breaks in it.

    ValueError names a unit too short for its own split.
    """
    parts: dict[str, list[slice]] = {"train": [], "validation": [], "calibration": [], "holdout": []}
    blocks = 0
    for unit, start in zip(units, unit_offsets(units), strict=True):
        try:
            own = interleaved_split(unit.rows, val_fraction, calib_fraction, holdout_fraction, min_block=min_block)
        except ValueError as exc:
            raise ValueError(f"unit {unit.unit}: {exc}") from None
        cuts = [start + b for b in unit.breaks]
        for name, slices in own.parts().items():
            for block in slices:
                pieces = _cut(slice(block.start + start, block.stop + start), cuts)
                parts[name] += pieces
                blocks += len(pieces)
    return Split(
        train=tuple(parts["train"]),
        validation=tuple(parts["validation"]),
        calibration=tuple(parts["calibration"]),
        holdout=tuple(parts["holdout"]),
        blocks=blocks - len(parts["holdout"]),  # Split.blocks counts the interleaved blocks, not the holdout
    )


# A fleet model shares one scaler; past this many pooled within-unit standard deviations between two units' means of
# a sensor, the units' normal ranges (each unit's mean +- 1.5 of them) no longer overlap: the model then learns
# separate operating points, and a fault that moves one unit to another's operating point looks normal to it.
MEAN_SPREAD_WARNING = 3.0


@dataclass(frozen=True)
class MeanSpread:
    """How far apart the units' sensor means lie, in pooled within-unit standard deviations.

    The pooled within-unit standard deviation of a sensor is sqrt(sum_u (n_u - 1) s_u^2 / sum_u (n_u - 1)): the
    spread of a sensor about its own unit's mean, the between-unit differences left out.
    """

    largest: float  # the largest difference of two units' means of one sensor, in pooled within-unit stds
    sensor: str | None
    units: tuple[str, str] | None  # the units with the lowest and the highest mean of that sensor
    per_sensor: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "largest_pooled_std": _finite(self.largest),
            "sensor": self.sensor,
            "units": list(self.units) if self.units else None,
            "per_sensor_pooled_std": {k: _finite(v) for k, v in self.per_sensor.items()},
            "warning_above": MEAN_SPREAD_WARNING,
        }


def _finite(value: float) -> float | None:
    """Rounded for the manifest; None for infinity (units constant at different values: no within-unit spread)."""
    return round(value, 3) if math.isfinite(value) else None


def mean_spread(data: npt.NDArray[np.float64], units: Sequence[UnitRows], sensors: Sequence[str]) -> MeanSpread:
    """The units' sensor means compared (missing values ignored); 0 for one unit."""
    per_sensor: dict[str, float] = {}
    largest, where, pair = 0.0, None, None
    names = [u.unit for u in units]
    chunks = [data[start : start + u.rows] for u, start in zip(units, unit_offsets(units), strict=True)]
    for i, sensor in enumerate(sensors):
        columns = [c[:, i][np.isfinite(c[:, i])] for c in chunks]
        kept = [(name, col) for name, col in zip(names, columns, strict=True) if col.size > 1]
        if len(kept) < 2:
            per_sensor[sensor] = 0.0
            continue
        means = np.array([col.mean() for _, col in kept])
        dof = np.array([col.size - 1 for _, col in kept], dtype=np.float64)
        pooled = float(np.sqrt(sum(d * col.var(ddof=1) for d, (_, col) in zip(dof, kept, strict=True)) / dof.sum()))
        spread = float(means.max() - means.min())
        value = spread / pooled if pooled > 0 else (0.0 if spread == 0 else math.inf)
        per_sensor[sensor] = value
        if value > largest:
            largest, where = value, sensor
            pair = (kept[int(means.argmin())][0], kept[int(means.argmax())][0])
    return MeanSpread(largest, where, pair, per_sensor)


def check_units(units: Sequence[UnitRows], total: int, needed: int, window: int) -> None:
    """The units' rows add up to the data, and each unit has enough for its own split (ValueError otherwise)."""
    if sum(u.rows for u in units) != total:
        raise ValueError(f"the units hold {sum(u.rows for u in units)} rows, the data {total}")
    if len({u.unit for u in units}) != len(units):
        raise ValueError("a unit is named twice")
    for unit in units:
        if unit.rows < needed:
            raise ValueError(
                f"unit {unit.unit}: too few rows: {unit.rows} rows, window {window} needs at least {needed} "
                "(each unit is split on its own into train / validation / calibration blocks)"
            )


def fleet_record(
    raw: npt.NDArray[np.float64],
    sensors: Sequence[str],
    units: Sequence[UnitRows],
    timestamps: npt.ArrayLike | None,
    period_s: float,
) -> dict[str, Any]:
    """``training.fleet``: per unit its rows, time span and pieces; the scaling and why (see train_model)."""
    ts = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
    entries = []
    for unit, start in zip(units, unit_offsets(units), strict=True):
        entry: dict[str, Any] = {"unit": unit.unit, "rows": unit.rows, "pieces": len(unit.breaks) + 1}
        if ts is not None and unit.rows:
            first, last = float(ts[start]), float(ts[start + unit.rows - 1])
            entry.update(first_ts=first, last_ts=last, span_s=last - first + float(period_s))
        entries.append(entry)
    spread = mean_spread(raw, units, sensors)
    warnings = []
    if spread.largest > MEAN_SPREAD_WARNING and spread.units is not None:
        low, high = spread.units
        how_far = f"{spread.largest:.1f}" if math.isfinite(spread.largest) else "infinitely many"
        warnings.append(
            f"the units' means of sensor {spread.sensor} differ by {how_far} pooled within-unit standard deviations "
            f"({low} lowest, {high} highest; more than {MEAN_SPREAD_WARNING:g}): one scaler is shared, so the model "
            "learns each unit's operating point, and a fault that moves a unit to another unit's operating point "
            "looks normal to it; train a model per unit (--unit) where that matters"
        )
    scaling = {
        "mode": "shared",
        "why": "one scaler in the served graph for every unit's windows (batched together); per-unit scaler "
        "state at serving time is not built",
        "mean_spread": spread.as_dict(),
        "warnings": warnings,
    }
    return {"units": entries, "scaling": scaling}
