"""Read sensor CSV files (simulator output, training input): csv module + numpy, no pandas, no torch.

Format: a header row; a ``timestamp`` column (epoch seconds) or a ``datetime`` / ``time`` column
(ISO 8601 text; text without a zone is read as UTC); an optional ``unit`` column; one column per
sensor. Separator ``,`` or ``;`` (taken from the header line). Empty cells are missing values
(NaN, handled by the missing-value policy in models/preprocessing.py); any other text that is
not a number is an error naming the column and line.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

TIME_COLUMNS: tuple[str, ...] = ("timestamp", "datetime", "time")
# Ground-truth columns found in labelled data sets (SKAB): never used as sensors unless asked for.
LABEL_COLUMNS: tuple[str, ...] = ("anomaly", "changepoint", "label", "labels")


class CsvError(ValueError):
    """The file cannot be used; the message names the problem (file, column, line)."""


@dataclass(frozen=True)
class SensorTable:
    """Rows of one unit, in time order."""

    timestamps: npt.NDArray[np.float64]  # [T] epoch seconds
    values: npt.NDArray[np.float64]  # [T, S], NaN = missing
    sensors: tuple[str, ...]
    unit: str | None

    def period_s(self) -> float:
        """The sampling period: the median step between consecutive timestamps (1.0 if it cannot be told)."""
        if self.timestamps.size < 2:
            return 1.0
        steps = np.diff(self.timestamps)
        steps = steps[steps > 0]
        return float(np.median(steps)) if steps.size else 1.0


def _parse_time(text: str, column: str, line: int) -> float:
    text = text.strip()
    try:
        value = float(text)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(f"column {column!r}, line {line}: {text[:40]!r} is not a time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _parse_value(text: str, column: str, line: int) -> float:
    text = text.strip()
    if text == "" or text.lower() in ("nan", "na", "null"):
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise CsvError(f"column {column!r}, line {line}: {text[:40]!r} is not a number") from None
    if math.isinf(value):
        raise CsvError(f"column {column!r}, line {line}: infinite value")
    return value


def read_sensor_csv(path: str | Path, sensors: Sequence[str] | None = None, unit: str | None = None) -> SensorTable:
    """Read ``path``; keep ``sensors`` (default: every column that is not time, unit or a label) of ``unit``.

    Raises ``CsvError`` (a ValueError) with a one-line message for anything unusable.
    """
    file = Path(path)
    if not file.is_file():
        raise CsvError(f"{file}: no such file")
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            header_line = handle.readline()
            if not header_line.strip():
                raise CsvError(f"{file}: empty file (no header row)")
            delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
            handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter)
            header = [name.strip() for name in next(reader)]
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise CsvError(f"{file}: not UTF-8 text ({exc.reason})") from None
    if len(set(header)) != len(header):
        raise CsvError(f"{file}: duplicate column names in the header")
    time_column = next((name for name in TIME_COLUMNS if name in header), None)
    if time_column is None:
        raise CsvError(f"{file}: no time column (expected one of {', '.join(TIME_COLUMNS)})")
    reserved = {time_column, "unit"}
    if sensors is None:
        chosen = [name for name in header if name not in reserved and name.lower() not in LABEL_COLUMNS]
        if not chosen:
            raise CsvError(f"{file}: no sensor columns")
    else:
        chosen = list(sensors)
        missing = [name for name in chosen if name not in header]
        if missing:
            raise CsvError(f"{file}: missing column(s) {', '.join(missing)}")
        if len(set(chosen)) != len(chosen):
            raise CsvError("duplicate names in --sensors")
    index = {name: header.index(name) for name in header}
    if "unit" in header:
        units = sorted({row[index["unit"]].strip() for row in rows if len(row) > index["unit"]})
        if unit is None:
            if len(units) > 1:
                raise CsvError(f"{file}: holds units {', '.join(units)}: choose one with --unit")
            unit = units[0] if units else None
        elif unit not in units:
            raise CsvError(f"{file}: no rows of unit {unit!r} (units: {', '.join(units) or 'none'})")
        rows = [row for row in rows if len(row) > index["unit"] and row[index["unit"]].strip() == unit]
    elif unit is not None:
        raise CsvError(f"{file}: has no 'unit' column, so --unit {unit} cannot be applied")
    times = np.empty(len(rows))
    values = np.empty((len(rows), len(chosen)))
    for i, row in enumerate(rows):
        line = i + 2
        if len(row) != len(header):
            if not any(cell.strip() for cell in row):
                times[i] = math.nan  # a blank line: dropped below
                continue
            raise CsvError(f"{file}: line {line} has {len(row)} fields, the header has {len(header)}")
        try:
            times[i] = _parse_time(row[index[time_column]], time_column, line)
            for j, name in enumerate(chosen):
                values[i, j] = _parse_value(row[index[name]], name, line)
        except CsvError as exc:
            raise CsvError(f"{file}: {exc}") from None
    keep = np.isfinite(times)
    times, values = times[keep], values[keep]
    if times.size and np.any(np.diff(times) < 0):
        order = np.argsort(times, kind="stable")  # rows may come in arrival order: train in time order
        times, values = times[order], values[order]
    return SensorTable(timestamps=times, values=values, sensors=tuple(chosen), unit=unit)
