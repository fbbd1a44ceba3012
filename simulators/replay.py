"""Turns a CSV table (simulator output, SKAB, any file with a time column) into rows to publish, in file order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from simulators.csvio import Table
from simulators.live import Row

# Columns that are ground truth, not sensors (SKAB's), left out unless asked for.
LABEL_COLUMNS = frozenset({"anomaly", "changepoint", "label", "labels", "is_anomaly"})


def choose_columns(table: Table, sensors: Sequence[str] | None) -> list[int]:
    """Indices of the columns to publish: the named ones, or every numeric non-label column."""
    if sensors:
        missing = [s for s in sensors if s not in table.columns]
        if missing:
            raise ValueError(f"no column(s) {missing} in the file; columns: {', '.join(table.columns)}")
        return [table.columns.index(s) for s in sensors]
    chosen = [
        i
        for i, name in enumerate(table.columns)
        if name.lower() not in LABEL_COLUMNS and not np.isnan(table.values[:, i]).all()
    ]
    if not chosen:
        raise ValueError("the file has no numeric sensor columns")
    return chosen


def table_rows(
    table: Table,
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
