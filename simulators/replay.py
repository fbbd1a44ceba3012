"""Turns a CSV table (simulator output, SKAB, any file with a time column: monitor.wire.csvfile) into rows to
publish, in file order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from monitor.wire.csvfile import CsvTable
from simulators.live import Row


def choose_columns(table: CsvTable, sensors: Sequence[str] | None) -> list[int]:
    """Indices of the columns to publish: the named ones (found as the backtest finds them), or every column that
    is not a ground-truth label (monitor.wire.csvfile.LABEL_COLUMNS) and holds a number."""
    if sensors:
        found = {s: table.column_index(s) for s in sensors}
        missing = [s for s, i in found.items() if i is None]
        if missing:
            raise ValueError(f"no column(s) {missing} in the file; columns: {', '.join(table.columns)}")
        return [i for i in found.values() if i is not None]
    labels = set(table.columns) - set(table.sensor_columns())
    chosen = [
        i for i, name in enumerate(table.columns) if name not in labels and not np.isnan(table.values[:, i]).all()
    ]
    if not chosen:
        raise ValueError("the file has no numeric sensor columns")
    return chosen


def table_rows(
    table: CsvTable,
    unit: str | None,
    sensors: Sequence[str] | None = None,
    time_offset_s: float = 0.0,
) -> Iterator[Row]:
    """Rows in file order. With a unit column, ``unit`` selects that unit's rows (None: all units);
    without one, ``unit`` names the unit all rows belong to. ``time_offset_s`` shifts timestamps."""
    columns = choose_columns(table, sensors)
    names = [table.columns[i] for i in columns]
    if table.units is None and unit is None:
        raise ValueError("the file has no unit column: give --unit")
    values = table.values[:, columns].tolist()
    for n, (ts, row) in enumerate(zip(table.timestamps.tolist(), values, strict=True)):
        row_unit = unit if table.units is None else table.units[n]
        if table.units is not None and unit is not None and row_unit != unit:
            continue
        assert row_unit is not None
        yield Row(ts + time_offset_s, row_unit, {s: v for s, v in zip(names, row, strict=True) if v == v})
