"""The one reader of sensor data CSVs: training input, backtest and report data, replayed recordings, SKAB.

API::

    table = read_table("run.csv")        # -> CsvTable, rows in file order; CsvError (a ValueError) if unusable
    table = read_table(recorded, whole_lines=True)   # a file being written: its unterminated last line ignored
    table.timestamps, table.units, table.columns, table.values, table.lines
    data = table.for_units({"R1": ("temp", "flow")}, default_unit="R1")   # -> CsvData (the backtest's input)
    series = table.for_unit(("temp", "flow"), unit="R1")                   # -> UnitSeries (training input)
    read_csv(path, sensors_by_unit, default_unit) == read_table(path).for_units(sensors_by_unit, default_unit)

Format: a header row; ``,`` or ``;`` separated (whichever the header line holds more of); UTF-8, a byte-order
mark allowed. A time column, the first of ``TIME_COLUMNS`` present (names compared without case): epoch seconds,
or ISO 8601 text with no zone read as UTC (monitor.wire.timestamps). An optional ``unit`` column. Every other
column is data; ``LABEL_COLUMNS`` (ground truth in data sets such as SKAB) are never taken as sensors by default.

Cells: empty, ``nan``, ``na`` or ``null`` is a missing value (NaN). Any other cell that is not a finite number is
also NaN in ``values``, and is recorded (``CsvTable.invalid``, the first per unit and column): training refuses it,
naming column and line (``for_unit(strict=True)``); the backtest, the report and a replay take it as missing, as
the service takes a reading it refused. A blank line is skipped. A row with another number of fields than the
header, a time that is not one, a header naming a column twice: a CsvError naming the file and line.

A last line without its newline is read like any other, unless ``whole_lines=True``: then it is ignored with a
WARNING naming the file and line. That is for files another process appends to (the service's recording,
monitor/recording), where such a line is a write in progress or one a kill or a power cut stopped half-way: read, it
could hold a number cut short; refused, it would make the whole file unusable. A file from elsewhere often ends
without a newline, and its last row is whole: ``whole_lines`` stays off for those.

A sensor is found by its column name, or by the name without the characters a config name cannot hold
(``"Volume Flow RateRMS"`` is sensor ``VolumeFlowRateRMS``).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from monitor.wire.timestamps import parse_time

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

TIME_COLUMNS: tuple[str, ...] = ("timestamp", "datetime", "time", "ts")  # in this order of preference
UNIT_COLUMN = "unit"
# Ground-truth columns of labelled data sets (SKAB and others): not sensors unless asked for by name.
LABEL_COLUMNS: tuple[str, ...] = ("anomaly", "changepoint", "label", "labels", "is_anomaly")
MISSING_CELLS = frozenset({"", "nan", "na", "null"})
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")  # what a sensor name cannot hold (monitor.config.SENSOR_NAME_PATTERN)


class CsvError(ValueError):
    """A CSV file that cannot be used; the message names the file and the problem (column, line)."""


@dataclass(frozen=True, slots=True)
class InvalidCell:
    """A cell that is neither a number nor a missing marker (or an infinite number)."""

    line: int
    column: str
    text: str

    def message(self) -> str:
        if self.text.strip().lower().lstrip("+-") in ("inf", "infinity"):
            return f"column {self.column!r}, line {self.line}: infinite value"
        return f"column {self.column!r}, line {self.line}: {self.text.strip()[:40]!r} is not a number"


@dataclass(frozen=True, slots=True)
class UnitSeries:
    """One unit's rows in time order (stable for equal times): what a model trains on."""

    timestamps: FloatArray  # [T] epoch seconds
    values: FloatArray  # [T, S], NaN = missing
    sensors: tuple[str, ...]
    unit: str | None  # None: the file has no unit column

    def period_s(self) -> float:
        """The sampling period: the median step between consecutive timestamps (1.0 if it cannot be told)."""
        if self.timestamps.size < 2:
            return 1.0
        steps = np.diff(self.timestamps)
        steps = steps[steps > 0]
        return float(np.median(steps)) if steps.size else 1.0


@dataclass(frozen=True, slots=True)
class CsvData:
    """Rows of configured units in file order (the backtest's input): ts [N] and each row's unit; per unit, its
    rows' values [rows of that unit, S] in the given sensor order (NaN = missing) and their indices into ts."""

    ts: FloatArray
    units: tuple[str, ...]  # per row
    values: Mapping[str, FloatArray]
    row_of_unit: Mapping[str, npt.NDArray[np.intp]]
    skipped_rows: int  # rows of units not asked for


@dataclass(frozen=True, slots=True)
class CsvTable:
    """A sensor CSV as read, rows in file order."""

    path: Path
    time_column: str
    timestamps: FloatArray  # [N] epoch seconds
    units: tuple[str, ...] | None  # [N] each row's unit; None: no unit column
    columns: tuple[str, ...]  # every column but time and unit, in header order
    values: FloatArray  # [N, C], NaN = missing or invalid
    lines: npt.NDArray[np.intp]  # [N] each row's line in the file (the header is line 1)
    invalid: Mapping[tuple[str | None, str], InvalidCell]  # (unit, column) -> its first invalid cell

    def column_index(self, name: str) -> int | None:
        """The column of sensor ``name``: by name, else by the name without characters a config name cannot hold."""
        if name in self.columns:
            return self.columns.index(name)
        for i, column in enumerate(self.columns):
            if _NOT_NAME.sub("", column) == name:
                return i
        return None

    def sensor_columns(self) -> tuple[str, ...]:
        """The data columns that are not ground-truth labels (``LABEL_COLUMNS``)."""
        return tuple(c for c in self.columns if c.lower() not in LABEL_COLUMNS)

    def for_units(self, sensors_by_unit: Mapping[str, Sequence[str]], default_unit: str | None) -> CsvData:
        """The rows of the units in ``sensors_by_unit`` (``default_unit``: every row's, without a unit column);
        other units' rows are skipped and counted. CsvError if a unit with rows lacks a sensor's column."""
        if self.units is None and default_unit is None:
            raise CsvError(f"{self.path}: no unit column; name the unit (the config has several)")
        row_units = self.units if self.units is not None else (str(default_unit),) * len(self.timestamps)
        kept = [i for i, unit in enumerate(row_units) if unit in sensors_by_unit]
        units = tuple(row_units[i] for i in kept)
        rows_of: dict[str, list[int]] = {}
        for n, unit in enumerate(units):
            rows_of.setdefault(unit, []).append(n)
        kept_rows = np.asarray(kept, dtype=np.intp)
        values: dict[str, FloatArray] = {}
        row_of_unit: dict[str, npt.NDArray[np.intp]] = {}
        for unit, rows in rows_of.items():
            columns = [self._column_of(sensor, unit) for sensor in sensors_by_unit[unit]]
            row_of_unit[unit] = np.asarray(rows, dtype=np.intp)
            values[unit] = self.values[np.ix_(kept_rows[row_of_unit[unit]], np.asarray(columns, dtype=np.intp))]
        return CsvData(self.timestamps[kept_rows], units, values, row_of_unit, len(row_units) - len(kept))

    def for_unit(
        self, sensors: Sequence[str] | None = None, unit: str | None = None, strict: bool = True
    ) -> UnitSeries:
        """One unit's ``sensors`` (default: every column but labels) in time order. Without ``unit``, the file's
        only one. ``strict``: an invalid cell in them is a CsvError naming column and line."""
        if sensors is None:
            chosen = list(self.sensor_columns())
            if not chosen:
                raise CsvError(f"{self.path}: no sensor columns")
        else:
            chosen = list(sensors)
            missing = [name for name in chosen if self.column_index(name) is None]
            if missing:
                raise CsvError(f"{self.path}: missing column(s) {', '.join(missing)}")
            if len(set(chosen)) != len(chosen):
                raise CsvError(f"{self.path}: a sensor is named twice in {', '.join(chosen)}")
        if self.units is not None:
            present = sorted(set(self.units))
            if unit is None:
                if len(present) > 1:
                    raise CsvError(f"{self.path}: holds units {', '.join(present)}: choose one with --unit")
                unit = present[0] if present else None
            elif unit not in present:
                raise CsvError(f"{self.path}: no rows of unit {unit!r} (units: {', '.join(present) or 'none'})")
            rows = np.flatnonzero(np.asarray(self.units, dtype=object) == unit)
        elif unit is not None:
            raise CsvError(f"{self.path}: has no 'unit' column, so --unit {unit} cannot be applied")
        else:
            rows = np.arange(len(self.timestamps))
        columns = [self._column_of(name, unit) for name in chosen]
        if strict:
            bad = [cell for c in columns if (cell := self.invalid.get((unit, self.columns[c]))) is not None]
            if bad:
                raise CsvError(f"{self.path}: {min(bad, key=lambda cell: cell.line).message()}")
        order = rows[np.argsort(self.timestamps[rows], kind="stable")]  # rows may come in arrival order
        picked = self.values[np.ix_(order, np.asarray(columns, dtype=np.intp))]
        return UnitSeries(self.timestamps[order], picked, tuple(chosen), unit)

    def _column_of(self, sensor: str, unit: str | None) -> int:
        i = self.column_index(sensor)
        if i is None:
            raise CsvError(f"{self.path}: no column for sensor {sensor!r} of unit {unit!r} in {list(self.columns)}")
        return i


def read_csv(path: str | Path, sensors_by_unit: Mapping[str, Sequence[str]], default_unit: str | None) -> CsvData:
    """``read_table(path).for_units(sensors_by_unit, default_unit)``: the backtest's and the report's call."""
    return read_table(path).for_units(sensors_by_unit, default_unit)


@contextlib.contextmanager
def open_text(file: Path) -> Iterator[TextIO]:
    """A CSV file opened as UTF-8 text (a byte-order mark skipped); the reading inside fails as a CsvError naming
    the file. The data reader and the label reader both read through this."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            yield handle
    except FileNotFoundError:
        raise CsvError(f"cannot read {file}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CsvError(f"{file}: not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise CsvError(f"cannot read {file}: {exc.strerror or exc}") from None
    except csv.Error as exc:
        raise CsvError(f"{file}: not a CSV file: {exc}") from None


def read_table(path: str | Path, whole_lines: bool = False) -> CsvTable:
    """Read a sensor CSV (see the module docstring); CsvError (a ValueError) names what makes it unusable.
    ``whole_lines``: a last line without its newline is ignored, with a WARNING (a file being appended to)."""
    file = Path(path)
    with open_text(file) as handle:
        head = handle.readline()
        if not head.strip():
            raise CsvError(f"{file}: empty file (no header row)")
        if whole_lines and not head.endswith("\n"):
            raise CsvError(f"{file}: its header row is not whole (no newline after it)")
        delimiter = ";" if head.count(";") > head.count(",") else ","
        handle.seek(0)
        reader = csv.reader(_whole_lines(file, handle) if whole_lines else handle, delimiter=delimiter)
        header = [name.strip() for name in next(reader)]
        return _parse(file, header, reader)


def _whole_lines(file: Path, lines: Iterator[str]) -> Iterator[str]:
    """The lines of ``lines`` that end with a newline; a last one that does not is dropped with a WARNING."""
    for number, line in enumerate(lines, start=1):
        if line.endswith("\n"):
            yield line
        else:
            log.warning("%s: ignored line %d, the last: not whole (no newline; being written, or cut)", file, number)


def _parse(file: Path, header: list[str], reader: Iterator[list[str]]) -> CsvTable:
    if len(set(header)) != len(header):
        raise CsvError(f"{file}: duplicate column names in the header")
    lowered = [name.lower() for name in header]
    time_col = next((lowered.index(name) for name in TIME_COLUMNS if name in lowered), None)
    if time_col is None:
        raise CsvError(f"{file}: no time column (expected one of {', '.join(TIME_COLUMNS)}) in {header}")
    unit_col = lowered.index(UNIT_COLUMN) if UNIT_COLUMN in lowered else None
    data_cols = [i for i in range(len(header)) if i not in (time_col, unit_col)]
    names = [header[i] for i in data_cols]
    times: list[float] = []
    units: list[str] = []
    rows: list[list[float]] = []
    lines: list[int] = []
    invalid: dict[tuple[str | None, str], InvalidCell] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise CsvError(f"{file}: line {line} has {len(row)} fields, the header has {len(header)}")
        try:
            times.append(parse_time(row[time_col]))
        except ValueError:
            cell = row[time_col].strip()[:40]
            raise CsvError(f"{file}: column {header[time_col]!r}, line {line}: {cell!r} is not a time") from None
        unit = row[unit_col].strip() if unit_col is not None else None
        if unit is not None:
            units.append(unit)
        values = []
        for name, i in zip(names, data_cols, strict=True):
            value = _number(row[i])
            if value is None:
                invalid.setdefault((unit, name), InvalidCell(line, name, row[i]))
                value = math.nan
            values.append(value)
        rows.append(values)
        lines.append(line)
    return CsvTable(
        path=file,
        time_column=header[time_col],
        timestamps=np.asarray(times, dtype=np.float64),
        units=tuple(units) if unit_col is not None else None,
        columns=tuple(names),
        values=np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names)),
        lines=np.asarray(lines, dtype=np.intp),
        invalid=invalid,
    )


def _number(text: str) -> float | None:
    """A cell's value: a finite float, NaN for a missing marker, None for anything else (text, infinity)."""
    try:
        value = float(text)
    except ValueError:
        return math.nan if text.strip().lower() in MISSING_CELLS else None
    return value if math.isfinite(value) or math.isnan(value) else None
