"""CSV files: simulator output and labels, and a tolerant reader for any CSV with a time column.

Data files: comma-separated, header ``timestamp,unit,<sensor>...``, one row per (time, unit),
ordered by time then unit; ``timestamp`` is epoch seconds; a dropout is written ``nan``.
Label files: ``unit,kind,start,end,sensors`` with epoch seconds and ``;``-joined sensors.

:func:`read_table` reads those and also files such as SKAB's (``;``-separated, an ISO
``datetime`` column without a zone, read as UTC).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from simulators.faults import FaultLabel
from simulators.simulation import SimResult

FloatArray = npt.NDArray[np.float64]
TIME_COLUMNS = ("timestamp", "datetime", "time", "ts")
LABEL_HEADER = ("unit", "kind", "start", "end", "sensors")


class CsvError(ValueError):
    """A CSV file that cannot be read as a time series; the message names the file and the problem."""


def write_csv(result: SimResult, path: str | Path, units: Sequence[str] | None = None) -> int:
    """Write a simulation's measurements; returns the number of data rows written."""
    chosen = list(units) if units is not None else list(result.units)
    index = [result.unit_index(u) for u in chosen]
    # One format string per row: much faster than csv.writer on floats; %.7g keeps ~7 digits
    # (the noise is far larger) and writes NaN as "nan".
    row_format = "%.3f,%s," + ",".join(["%.7g"] * len(result.sensors)) + "\n"
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(["timestamp", "unit", *result.sensors]) + "\n")
        values = result.data[index]  # [u, T, S]
        for t, ts in enumerate(result.timestamps.tolist()):
            for j, unit in enumerate(chosen):
                f.write(row_format % (ts, unit, *values[j, t].tolist()))
                rows += 1
    return rows


def write_labels(labels: Iterable[FaultLabel], path: str | Path) -> int:
    """Write ground-truth labels; returns the number of label rows."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LABEL_HEADER)
        for label in labels:
            writer.writerow([label.unit, label.kind, f"{label.start:.3f}", f"{label.end:.3f}", ";".join(label.sensors)])
            count += 1
    return count


def read_labels(path: str | Path) -> list[FaultLabel]:
    """Read a label file written by :func:`write_labels`."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return [
            FaultLabel(
                unit=row["unit"],
                kind=row["kind"],
                start=float(row["start"]),
                end=float(row["end"]),
                sensors=tuple(s for s in row["sensors"].split(";") if s),
            )
            for row in reader
        ]


@dataclass(frozen=True)
class Table:
    """A time series read from CSV, rows in file order.

    timestamps: [N] epoch seconds; units: [N] unit names or None when the file has no unit
    column; columns: the numeric columns' names; values: [N, C] with NaN for empty or
    non-numeric cells.
    """

    timestamps: FloatArray
    units: tuple[str, ...] | None
    columns: tuple[str, ...]
    values: FloatArray


def parse_time(text: str) -> float:
    """Epoch seconds from a number or ISO 8601 text (no zone means UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_table(path: str | Path) -> Table:
    """Read a CSV (``,`` or ``;``) with a time column: timestamp, datetime, time or ts."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            header_line = f.readline()
            delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
            f.seek(0)
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                raise CsvError(f"{path}: empty file")
            header = [h.strip() for h in header]
            lowered = [h.lower() for h in header]
            time_col = next((lowered.index(c) for c in TIME_COLUMNS if c in lowered), None)
            if time_col is None:
                raise CsvError(f"{path}: no time column (expected one of {', '.join(TIME_COLUMNS)}) in {header}")
            unit_col = lowered.index("unit") if "unit" in lowered else None
            data_cols = [i for i in range(len(header)) if i not in (time_col, unit_col)]
            times: list[float] = []
            units: list[str] = []
            rows: list[list[float]] = []
            for line_no, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise CsvError(f"{path}:{line_no}: {len(row)} fields, the header has {len(header)}")
                try:
                    times.append(parse_time(row[time_col]))
                except ValueError:
                    raise CsvError(f"{path}:{line_no}: bad time {row[time_col]!r}") from None
                if unit_col is not None:
                    units.append(row[unit_col])
                rows.append([_to_float(row[i]) for i in data_cols])
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise CsvError(f"{path}: not a UTF-8 text file") from None
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(data_cols))
    return Table(
        timestamps=np.asarray(times, dtype=np.float64),
        units=tuple(units) if unit_col is not None else None,
        columns=tuple(header[i] for i in data_cols),
        values=values,
    )
