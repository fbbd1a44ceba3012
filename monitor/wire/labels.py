"""Ground truth: the one label record and its CSV (the simulator writes it; backtest, report and demo read it).

API::

    write_labels(labels, "labels.csv") -> rows written
    labels = read_labels("labels.csv")      # -> [Label]; CsvError (a ValueError) names the file and line

File: a header ``unit,kind,start,end,settled,sensors`` (``settled`` and ``sensors`` optional: files without them
read as before), one row per fault; ``start``, ``end`` and ``settled`` are epoch seconds or ISO 8601
(monitor.wire.timestamps, no zone = UTC) with ``start <= end <= settled``; an empty ``settled`` means ``end``.
``sensors`` the sensors the fault acts on, ``;``-joined (empty: the process, not a sensor). The writer always
writes every column.

``settled`` is when the plant was back to normal after the fault: a label ends with the fault's cause, and a
process fault's effect outlasts it (the simulator measures how long: simulators.settling). The evaluation
counts alarms raised in ``(end + tolerance, settled]`` apart, neither false nor detections (monitor.evaluation).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from monitor.wire.csvfile import CsvError, open_text
from monitor.wire.timestamps import parse_time

LABEL_HEADER: tuple[str, ...] = ("unit", "kind", "start", "end", "settled", "sensors")
_REQUIRED = frozenset(LABEL_HEADER[:4])  # unit, kind, start, end; settled and sensors may be absent


@dataclass(frozen=True, slots=True)
class Label:
    """One injected or recorded fault of one unit, from ``start`` to ``end`` (epoch seconds).

    The simulator's fault is active on ``[start, end)`` (simulators.faults); the evaluation counts a row stamped
    at ``end`` as faulty too (monitor.evaluation): one row at most, and it keeps a fault that ends on a row whole.
    ``settled`` (>= end) is when the plant was back to normal; not given (NaN), it is ``end``: no settling span.
    """

    unit: str
    kind: str
    start: float
    end: float
    sensors: tuple[str, ...] = ()
    settled: float = math.nan

    def __post_init__(self) -> None:
        # NaN stands for "not given" so that `settled` is always a number once the label exists.
        if math.isnan(self.settled):
            object.__setattr__(self, "settled", self.end)
        elif not self.settled >= self.end:
            raise ValueError(f"label {self.unit} {self.kind}: settled {self.settled} is before its end {self.end}")


def write_labels(labels: Iterable[Label], path: str | Path) -> int:
    """Write ground-truth labels; returns the number of label rows."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LABEL_HEADER)
        for label in labels:
            times = (f"{t:.3f}" for t in (label.start, label.end, label.settled))
            writer.writerow([label.unit, label.kind, *times, ";".join(label.sensors)])
            count += 1
    return count


def read_labels(path: str | Path) -> list[Label]:
    """Read a label CSV (see the module docstring); CsvError names the file and the bad line."""
    file = Path(path)
    with open_text(file) as f:
        reader = csv.DictReader(f)
        missing = _REQUIRED - {name.strip() for name in reader.fieldnames or ()}
        if missing:
            raise CsvError(f"{file}: label file lacks columns {sorted(missing)}")
        return [_label(file, line, row) for line, row in enumerate(reader, start=2) if any(row.values())]


def _label(file: Path, line: int, raw: dict[str | None, str | None]) -> Label:
    row = {(key or "").strip(): (value or "").strip() for key, value in raw.items() if isinstance(value, str)}
    if not row["unit"]:
        raise CsvError(f"{file}:{line}: no unit")
    try:
        start, end = parse_time(row["start"]), parse_time(row["end"])
    except ValueError as exc:
        raise CsvError(f"{file}:{line}: start and end must be epoch seconds or ISO 8601: {exc}") from None
    if not (math.isfinite(start) and math.isfinite(end) and end >= start):
        raise CsvError(f"{file}:{line}: need start <= end, got {start}, {end}")
    settled_text = row.get("settled", "")
    try:
        settled = parse_time(settled_text) if settled_text else end
    except ValueError as exc:
        raise CsvError(f"{file}:{line}: settled must be empty, epoch seconds or ISO 8601: {exc}") from None
    if not settled >= end:
        raise CsvError(f"{file}:{line}: need end <= settled, got {end}, {settled}")
    sensors = tuple(s.strip() for s in row.get("sensors", "").split(";") if s.strip())
    return Label(row["unit"], row["kind"], start, end, sensors, settled)
