"""Periods to leave out of training: past incidents from a label CSV or from alert records, so they never become
"normal".

API (no torch)::

    exclusion = read_exclusion("labels.csv")             # or an alerts.jsonl; -> Exclusion (CsvError / ValueError)
    exclusion = alert_exclusion([a, b], source="rec/", whole_lines=True)   # a recording's alert files, together
    mask = exclusion.mask(timestamps, unit)               # [T] bool: rows of ``unit`` inside one of its periods

Label CSV (monitor.wire.labels): each label is a period ``[start, end]`` of its unit, both ends included.

Alert records (monitor.result_files' ``alerts.jsonl``: one alert event per line): each episode (its ``alert_id``)
is a period from its ``started_at`` (when the evidence began, before it fired) to the ``ts`` of its ``resolved``
event. An episode still open at the end of the records runs to the end of the data. The events of one episode may
lie in several files (a recording rotates its files): ``alert_exclusion`` reads them together. Episodes of every
detector count (a sensor alert marks rows a model must not learn either).

A file is taken as alert records when its first non-blank character is ``{`` (JSON lines), else as a label CSV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.wire.csvfile import CsvError, open_text
from monitor.wire.labels import read_labels


@dataclass(frozen=True, slots=True)
class Period:
    """Rows of ``unit`` stamped in ``[start, end]`` are left out (``end`` may be infinite: to the end of the data)."""

    unit: str
    start: float
    end: float


@dataclass(frozen=True)
class Exclusion:
    """The periods one source names: a label file, an alerts file, or a recording's alert files."""

    source: str
    kind: str  # "labels" | "alerts"
    periods: tuple[Period, ...]

    def units(self) -> set[str]:
        return {p.unit for p in self.periods}

    def mask(self, timestamps: npt.NDArray[np.float64], unit: str | None) -> npt.NDArray[np.bool_]:
        """Rows inside a period of ``unit``; ``unit`` None (data without a unit column: one unit's history, whatever
        the records call it): inside any period."""
        inside = np.zeros(timestamps.shape, dtype=bool)
        for period in self.periods:
            if unit is None or period.unit == unit:
                inside |= (timestamps >= period.start) & (timestamps <= period.end)
        return inside


def _is_json_lines(path: Path) -> bool:
    with open_text(path) as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def read_exclusion(path: str | Path) -> Exclusion:
    """A label CSV or an alerts.jsonl as periods to leave out; CsvError / ValueError name the file and line."""
    file = Path(path)
    if _is_json_lines(file):
        return alert_exclusion([file], source=str(file))
    labels = read_labels(file)
    return Exclusion(str(file), "labels", tuple(Period(lab.unit, lab.start, lab.end) for lab in labels))


def alert_exclusion(paths: Sequence[Path], source: str, whole_lines: bool = False) -> Exclusion:
    """The alert episodes of ``paths`` read together (one episode's events may lie in several files); ``whole_lines``:
    a last line without its newline is ignored (a recording's file being written)."""
    from monitor.result_files import read_alerts  # the one reader of alerts.jsonl (monitor.alerts' payload)

    started: dict[str, tuple[str, float]] = {}
    resolved: dict[str, float] = {}
    for path in paths:
        try:
            events = read_alerts(path, whole_lines=whole_lines)
        except OSError as exc:
            raise CsvError(f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise CsvError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
        for event in events:
            unit, start = started.get(event.alert_id, (event.unit, event.started_at))
            started[event.alert_id] = (unit, min(start, event.started_at))
            if event.state == "resolved":
                resolved[event.alert_id] = max(event.ts, resolved.get(event.alert_id, -math.inf))
    periods = tuple(
        Period(unit, start, resolved.get(alert_id, math.inf))
        for alert_id, (unit, start) in sorted(started.items(), key=lambda item: item[1][1])
    )
    return Exclusion(source, "alerts", periods)
