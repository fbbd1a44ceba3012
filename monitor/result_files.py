"""The result files of the backtest and the demo: scores.csv and alerts.jsonl, written and read here only.

API::

    with FilesSink(out_dir) as files:            # a Sink (monitor/sinks.py): creates out_dir, truncates both files
        OutputStage(board, [files, ...], metrics)
    files.flush()                                # what was written so far, on disk (the demo, while it runs)
    scores = read_scores(out_dir / SCORES_FILE)  # {unit: {detector: ScoreSeries}}, each in time order
    events = read_alerts(out_dir / ALERTS_FILE)  # [AlertEvent], in file order

``scores.csv``: a header row, then one row per score: ``unit, ts, detector, model, score, threshold,
calibrated_threshold, top_sensor``. ``ts`` is event time (epoch seconds, 3 decimals), ``threshold`` the threshold in
force that the alert tracker compared the score with (the calibrated one moved by online adaptation, as in the
``<prefix>/scores/{unit}`` payload), ``top_sensor`` the sensor that contributed most ("" if none). Rows come in the
order the OutputStage hands them on: per batch, per scored row, per detector.

``alerts.jsonl``: one DESIGN.md alert payload (monitor.alerts.event_payload) per line, flushed as each one comes.
``shadow-alerts.jsonl`` (``FilesSink(out_dir, shadows=True)``: a unit has a shadow candidate): the same lines for
the shadows' would-be events, kept apart from the active models' (their ``model`` names the candidate).

The writer takes calls from one thread at a time, and a lock makes ``flush`` safe from another (the demo's feed
writes on paho's thread, its main loop flushes).
"""

from __future__ import annotations

import csv
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from monitor.alerts.event_payload import event_from_dict, event_to_dict
from monitor.messages import AlertEvent
from monitor.sinks import Sink
from monitor.wire.payloads import ScoredRow

log = logging.getLogger(__name__)

SCORES_FILE = "scores.csv"
ALERTS_FILE = "alerts.jsonl"
SHADOW_ALERTS_FILE = "shadow-alerts.jsonl"  # a shadow candidate's would-be events (monitor/shadow.py), same format
SCORE_COLUMNS = ("unit", "ts", "detector", "model", "score", "threshold", "calibrated_threshold", "top_sensor")
REQUIRED_COLUMNS = frozenset({"unit", "ts", "detector", "model", "score", "threshold"})


def score_cells(row: ScoredRow) -> list[list[str]]:
    """The scores.csv rows of one scored row (one per detector, columns SCORE_COLUMNS): the one encoder of the
    format, shared with the service's recording (monitor/recording)."""
    ts = f"{row.ts:.3f}"
    cells = []
    for detector, s in row.scores.items():
        cells.append(
            [
                row.unit,
                ts,
                detector,
                s.model,
                f"{s.score:.6g}",
                f"{s.threshold:.6g}",
                f"{s.calibrated_threshold:.6g}",
                row.top_sensor(detector),
            ]
        )
    return cells


def alert_line(event: AlertEvent) -> str:
    """One alerts.jsonl line (newline included): the one encoder of the format, shared with the recording."""
    return json.dumps(event_to_dict(event), allow_nan=False) + "\n"


class FilesSink(Sink):
    """Writes the scored rows to ``scores.csv`` and the alert events to ``alerts.jsonl`` in ``directory`` (and with
    ``shadows`` the shadow candidates' events to ``shadow-alerts.jsonl``)."""

    takes_forecasts = False

    def __init__(self, directory: Path, shadows: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.scores_path = directory / SCORES_FILE
        self.alerts_path = directory / ALERTS_FILE
        self.shadow_alerts_path = directory / SHADOW_ALERTS_FILE if shadows else None
        self._lock = threading.Lock()
        self._scores_file = open(self.scores_path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._shadow_file = None
        try:
            self._alerts_file = open(self.alerts_path, "w", encoding="utf-8")  # noqa: SIM115
            if self.shadow_alerts_path is not None:
                self._shadow_file = open(self.shadow_alerts_path, "w", encoding="utf-8")  # noqa: SIM115
        except BaseException:
            self._scores_file.close()
            raise
        self._scores = csv.writer(self._scores_file)
        self._scores.writerow(SCORE_COLUMNS)
        self.rows_written = 0
        self.events_written = 0

    def scored(self, rows: Sequence[ScoredRow]) -> None:
        with self._lock:
            for row in rows:
                cells = score_cells(row)
                self._scores.writerows(cells)
                self.rows_written += len(cells)

    def alert(self, event: AlertEvent) -> None:
        line = alert_line(event)
        with self._lock:
            self._alerts_file.write(line)
            self._alerts_file.flush()  # rare, and what someone watching the file waits for
            self.events_written += 1

    def shadow_alert(self, event: AlertEvent) -> None:
        if self._shadow_file is None:
            return
        line = alert_line(event)
        with self._lock:
            self._shadow_file.write(line)
            self._shadow_file.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._scores_file.closed:
                self._scores_file.flush()

    def close(self) -> None:
        with self._lock:
            self._scores_file.close()
            self._alerts_file.close()
            if self._shadow_file is not None:
                self._shadow_file.close()

    def __enter__(self) -> FilesSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class ScoreSeries:
    """One detector's scores of one unit, in time order: ts, score and threshold are [N] float64."""

    model: str
    ts: npt.NDArray[np.float64]
    score: npt.NDArray[np.float64]
    threshold: npt.NDArray[np.float64]


def read_scores(path: str | Path) -> dict[str, dict[str, ScoreSeries]]:
    """Read a scores.csv (the columns above; files without calibrated_threshold / top_sensor are read too);
    ValueError on a bad file."""
    path = Path(path)
    rows: dict[tuple[str, str], tuple[str, list[float], list[float], list[float]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = REQUIRED_COLUMNS - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a scores file, it lacks columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                ts, score, threshold = float(row["ts"]), float(row["score"]), float(row["threshold"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: ts, score and threshold must be numbers: {exc}") from exc
            key = (row["unit"], row["detector"])
            entry = rows.setdefault(key, (row["model"], [], [], []))
            entry[1].append(ts)
            entry[2].append(score)
            entry[3].append(threshold)
    result: dict[str, dict[str, ScoreSeries]] = {}
    for (unit, detector), (model, ts_list, score_list, threshold_list) in rows.items():
        ts_arr = np.asarray(ts_list, dtype=np.float64)
        order = np.argsort(ts_arr, kind="stable")
        result.setdefault(unit, {})[detector] = ScoreSeries(
            model,
            ts_arr[order],
            np.asarray(score_list, dtype=np.float64)[order],
            np.asarray(threshold_list, dtype=np.float64)[order],
        )
    return result


def read_alerts(path: str | Path, whole_lines: bool = False) -> list[AlertEvent]:
    """Read an alerts.jsonl (one alert payload per line, blank lines ignored); ValueError names the bad line.
    ``whole_lines``: a last line without its newline is ignored, with a WARNING (a recording's file being written)."""
    path = Path(path)
    events = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if whole_lines and not line.endswith("\n"):
                log.warning("%s: ignored line %d, the last: not whole (no newline: being written)", path, number)
                continue
            try:
                events.append(event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not an alert event: {exc}") from exc
    return events
