"""CSV export of a simulation: the data file every plantwatch tool reads (monitor.wire.csvfile).

Data files: comma-separated, header ``timestamp,unit,<sensor>...``, one row per (time, unit), ordered by time then
unit; ``timestamp`` is epoch seconds; a dropout is written ``nan``. The labels of a run are written by
monitor.wire.labels.write_labels; both are read back with monitor.wire (``simulators`` re-exports the calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulators.simulation import SimResult


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
