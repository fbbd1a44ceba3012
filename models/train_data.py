"""What `plantwatch train` trains on: the rows of one or several units, from a CSV or a recording directory, in a
time range, with past incidents left out. No torch.

API::

    rows = load_training_rows(TrainingSelection(data=Path("rec/"), units=("all",), exclude=(Path("labels.csv"),)))
    rows.values, rows.timestamps, rows.sensors, rows.units, rows.period_s   # -> models.train.train_model
    rows.notes        # what was read and left out, one line each (the command prints them)
    rows.selection    # the same for the manifest (training.selection)

Steps, per unit, in this order:

1. Read: ``data`` is a CSV, or a directory: every ``*.csv`` under it (recursively), sorted by their first
   timestamp, each read with monitor.wire.csvfile's reader, a unit's rows concatenated and put in time order
   (stable). Files without a data row, and score files (monitor.result_files' scores.csv header), are skipped; a
   last line without its newline is ignored (a file being written). A recording written by the service
   (monitor/recording) is such a directory: ``<dir>/<unit>/rows-<stamp>.csv``, ``scores-<stamp>.csv`` and
   ``alerts-<stamp>.jsonl``.
2. Units: the one unit of the data, ``--unit X``, or ``--units all`` / ``--units A,B``.
3. Range: rows with ``time_from <= ts < time_to`` are kept (either bound optional), before anything else.
4. Exclusions (models.exclusions): rows of a unit inside a period named by a label CSV or alert records are left
   out. In a directory, its ``alerts*.jsonl`` files are excluded by default (``keep_alert_periods`` turns it off).
5. Pieces: where rows were left out inside a unit's range, and where consecutive rows lie more than
   ``max_gap + 1`` periods apart (the recorder was stopped; longer than models.train_rows's forward fill), the unit's
   rows are cut (models.segments.UnitRows.breaks): no training window spans the cut.

Errors (a unit not in the data, no rows left, units sampling at different periods) are CsvError (a ValueError)
with one line naming the file or the unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.exclusions import alert_exclusion, read_exclusion
from models.segments import UnitRows
from monitor.wire.csvfile import CsvError, CsvTable, open_text, read_table

FloatArray = npt.NDArray[np.float64]
# The columns that make a CSV a score file (monitor.result_files.REQUIRED_COLUMNS), not sensor data.
SCORE_FILE_COLUMNS = frozenset({"detector", "model", "score", "threshold"})
ALERT_FILE_PATTERN = "alerts*.jsonl"
PERIOD_TOLERANCE = 1e-6  # relative: units sampling at the same period


@dataclass(frozen=True)
class TrainingSelection:
    """What the command was asked for (the options of `plantwatch train`)."""

    data: Path
    sensors: Sequence[str] | None = None
    units: Sequence[str] | None = None  # None: the data's only unit; ("all",): every unit; else these
    time_from: float | None = None
    time_to: float | None = None
    exclude: Sequence[Path] = ()
    keep_alert_periods: bool = False
    max_gap: int = 5  # rows: models.train_config.TrainConfig.max_gap


@dataclass
class TrainingRows:
    """The rows to train on, unit after unit (see models.segments)."""

    values: FloatArray  # [T, S]
    timestamps: FloatArray  # [T]
    sensors: tuple[str, ...]
    units: tuple[UnitRows, ...]
    period_s: float
    notes: list[str] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Series:
    unit: str | None
    timestamps: FloatArray
    values: FloatArray


def _is_score_file(path: Path) -> bool:
    """Whether the CSV's header is a scores file's (not sensor data), judged before its rows are read."""
    with open_text(path) as handle:
        header = handle.readline()
    delimiter = ";" if header.count(";") > header.count(",") else ","
    return {name.strip() for name in header.split(delimiter)} >= SCORE_FILE_COLUMNS


def _tables(data: Path) -> tuple[list[CsvTable], list[str]]:
    """The data tables of ``data`` (a file, or every CSV under a directory) by first timestamp, and notes."""
    if not data.is_dir():
        return [read_table(data)], []
    paths = sorted(data.rglob("*.csv"))
    if not paths:
        raise CsvError(f"{data}: no *.csv file in the directory")
    tables, skipped = [], []
    for path in paths:
        if _is_score_file(path):
            skipped.append(path.name)
            continue
        table = read_table(path, whole_lines=True)  # a recording being written: its files' last line may be torn
        if table.timestamps.size == 0:
            skipped.append(path.name)
            continue
        tables.append(table)
    if not tables:
        raise CsvError(f"{data}: no *.csv file with data rows")
    tables.sort(key=lambda t: (float(t.timestamps.min()), str(t.path)))
    notes = [f"read {len(tables)} CSV files under {data}"]
    if skipped:
        notes[0] += f" (skipped {len(skipped)} without data rows or holding scores: {', '.join(skipped[:5])})"
    return tables, notes


def _chosen_units(tables: list[CsvTable], wanted: Sequence[str] | None, data: Path) -> list[str | None]:
    with_units = [t for t in tables if t.units is not None]
    if with_units and len(with_units) != len(tables):
        raise CsvError(f"{data}: some files have a 'unit' column and some do not")
    if not with_units:
        if wanted is not None:
            raise CsvError(f"{data}: has no 'unit' column, so --unit / --units {','.join(wanted)} cannot be applied")
        return [None]
    present = sorted({u for t in with_units for u in (t.units or ())})
    if wanted is None:
        if len(present) > 1:
            raise CsvError(
                f"{data}: holds units {', '.join(present)}: choose one with --unit, or several with --units "
                "(all, or a comma-separated list)"
            )
        return list(present)
    if list(wanted) == ["all"]:
        return list(present)
    missing = [u for u in wanted if u not in present]
    if missing:
        raise CsvError(f"{data}: no rows of unit {missing[0]!r} (units: {', '.join(present) or 'none'})")
    return list(dict.fromkeys(wanted))


def _read_units(tables: list[CsvTable], units: list[str | None], sensors: Sequence[str]) -> list[_Series]:
    """Each unit's rows of every table, in the tables' order, then in time order (stable)."""
    chosen = list(sensors)
    series = []
    for unit in units:
        parts = [t.for_unit(chosen, unit) for t in tables if unit is None or unit in (t.units or ())]
        ts = np.concatenate([p.timestamps for p in parts])
        values = np.concatenate([p.values for p in parts])
        order = np.argsort(ts, kind="stable")
        series.append(_Series(unit, ts[order], values[order]))
    return series


def _period(ts: FloatArray) -> float:
    steps = np.diff(ts)
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 1.0


def _name(unit: str | None) -> str:
    return unit if unit is not None else "(no unit column)"


def _describe_time(value: float | None) -> str | None:
    if value is None:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat().replace("+00:00", "Z")


def load_training_rows(selection: TrainingSelection) -> TrainingRows:
    """Read, select and cut the training rows (the module docstring's steps); CsvError says what is wrong."""
    tables, notes = _tables(selection.data)
    units = _chosen_units(tables, selection.units, selection.data)
    sensors = tuple(selection.sensors) if selection.sensors is not None else tables[0].sensor_columns()
    if not sensors:
        raise CsvError(f"{tables[0].path}: no sensor columns")
    series = _read_units(tables, units, sensors)

    # 3. the time range, before anything else
    low = -np.inf if selection.time_from is None else selection.time_from
    high = np.inf if selection.time_to is None else selection.time_to
    if low >= high:
        raise CsvError(f"--from must be before --to ({_describe_time(low)} is not before {_describe_time(high)})")
    in_range_counts = {}
    for s in series:
        keep = (s.timestamps >= low) & (s.timestamps < high)
        in_range_counts[s.unit] = (int(keep.sum()), int(keep.size))
        s.timestamps, s.values = s.timestamps[keep], s.values[keep]
    if selection.time_from is not None or selection.time_to is not None:
        kept = sum(k for k, _ in in_range_counts.values())
        total = sum(n for _, n in in_range_counts.values())
        detail = ", ".join(f"{_name(u)} {k} of {n}" for u, (k, n) in in_range_counts.items())
        begin, end = _describe_time(selection.time_from) or "start", _describe_time(selection.time_to) or "end"
        notes.append(f"time range [{begin}, {end}): kept {kept} of {total} rows ({detail})")

    # 4. exclusions: the named files, then a recording's own alert files
    exclusions = [read_exclusion(path) for path in selection.exclude]
    if selection.data.is_dir():
        alert_files = sorted(selection.data.rglob(ALERT_FILE_PATTERN))
        files = f"{len(alert_files)} alert file{'' if len(alert_files) == 1 else 's'}"
        if alert_files and not selection.keep_alert_periods:
            exclusions.append(alert_exclusion(alert_files, source=f"the {files} in {selection.data}", whole_lines=True))
            notes.append(
                f"leaving out the alert episodes recorded in {selection.data} ({files}, alerts*.jsonl), by default: "
                "--keep-alert-periods trains on them too"
            )
        elif alert_files:
            notes.append(f"keeping the periods of the {files} in {selection.data}")
    removed = [np.zeros(s.timestamps.shape, dtype=bool) for s in series]
    records = []
    for exclusion in exclusions:
        per_unit = {}
        for i, s in enumerate(series):
            inside = exclusion.mask(s.timestamps, s.unit)
            per_unit[_name(s.unit)] = int(inside.sum())
            removed[i] |= inside
        total = sum(per_unit.values())
        detail = ", ".join(f"{u} {n}" for u, n in per_unit.items() if n) or "none of the units trained"
        what = f"{exclusion.kind}, {len(exclusion.periods)} period{'' if len(exclusion.periods) == 1 else 's'}"
        notes.append(f"excluded {total} rows by {exclusion.source} ({what}: {detail})")
        records.append(
            {"source": exclusion.source, "kind": exclusion.kind, "periods": len(exclusion.periods), "rows": per_unit}
        )

    if len(exclusions) > 1:
        notes.append(f"excluded {sum(int(r.sum()) for r in removed)} rows in all (a row named twice counted once)")

    # 5. cut each unit where rows were left out inside it, or where the recording stopped
    periods = []
    pieces: list[UnitRows] = []
    gap_breaks = {}
    for s, gone in zip(series, removed, strict=True):
        kept_rows = np.flatnonzero(~gone)
        if kept_rows.size == 0:
            raise CsvError(f"unit {_name(s.unit)}: no rows left after the time range and the exclusions")
        ts = s.timestamps[kept_rows]
        period = _period(ts)
        periods.append(period)
        cut_rows = np.flatnonzero(np.diff(kept_rows) > 1) + 1
        cut_gaps = np.flatnonzero(np.diff(ts) > (selection.max_gap + 1) * period) + 1
        gap_breaks[_name(s.unit)] = int(np.setdiff1d(cut_gaps, cut_rows).size)
        breaks = tuple(int(b) for b in np.union1d(cut_rows, cut_gaps))
        pieces.append(UnitRows(s.unit if s.unit is not None else "", int(kept_rows.size), breaks))
        s.timestamps, s.values = ts, s.values[kept_rows]
    if max(periods) - min(periods) > PERIOD_TOLERANCE * max(periods):
        listing = ", ".join(f"{_name(s.unit)} {p:g} s" for s, p in zip(series, periods, strict=True))
        raise CsvError(f"the units sample at different periods ({listing}): a fleet model needs one period")
    if any(gap_breaks.values()):
        detail = ", ".join(f"{u} {n}" for u, n in gap_breaks.items() if n)
        notes.append(f"cut at time gaps longer than {selection.max_gap + 1} periods (no window spans one): {detail}")
    for s, piece in zip(series, pieces, strict=True):
        span_h = (s.timestamps[-1] - s.timestamps[0] + periods[0]) / 3600.0
        notes.append(
            f"unit {_name(s.unit)}: {piece.rows} rows, {span_h:.1f} h from {_describe_time(float(s.timestamps[0]))}"
            f" in {len(piece.breaks) + 1} piece{'s' if piece.breaks else ''}"
        )
    return TrainingRows(
        values=np.concatenate([s.values for s in series]),
        timestamps=np.concatenate([s.timestamps for s in series]),
        sensors=tuple(sensors),
        units=tuple(pieces),
        period_s=periods[0],
        notes=notes,
        selection={
            "data": str(selection.data),
            "from": selection.time_from,
            "to": selection.time_to,
            "exclusions": records,
            "gap_breaks": gap_breaks,
        },
    )
