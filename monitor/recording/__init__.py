"""History from the service: the aligned rows, scores and alert episodes of each unit, recorded to rotating files.

Off unless ``recording.path`` is set (monitor/config/service.py RecordingConfig). What it writes, per unit::

    <recording.path>/<unit>/rows-<stamp>.csv      header ts,unit,<the unit's sensors, config order>; a line per
                                                  aligned row that received a value (ts: the row's event time,
                                                  epoch s; an empty cell: no value for that sensor in that row)
    <recording.path>/<unit>/alerts-<stamp>.jsonl  the backtest's alerts.jsonl lines (monitor/result_files.py)
    <recording.path>/<unit>/scores-<stamp>.csv    the backtest's scores.csv (recording.scores: off by default)
    <recording.path>/<unit>/shadow-alerts-<stamp>.jsonl   the alerts.jsonl lines of the unit's shadow candidate's
                                                  would-be events (monitor/shadow.py; units with a shadow at start)

``<stamp>`` is ``YYYYmmddTHHMMSSZ`` (UTC, when the file was begun); within a unit and kind, names sort in the order
the files were written, and every start of the service begins new files. A rows file is read by
``monitor.wire.csvfile.read_table``; with ``whole_lines=True`` a last line without its newline (the file is being
written, or a write was cut by a kill or a power cut) is ignored with a WARNING instead of read or refused.

Where: rows in the front process, where the buffers close them (monitor/stages.py BufferStage hands each
``AddResult.rows`` to the recorder); scores and alerts where they are computed, as a Sink beside MQTT (the scoring
side, monitor/scoring_side.py). Rows the journal replays at a start (monitor/journal.py) were recorded by the process
that took them, and are not recorded again. Bounds, rotation, the writer threads and what a failure costs:
monitor/recording/files.py and monitor/recording/recorder.py.

API::

    rows = row_recorder(cfg, metrics)            # Recorder of ClosedRows, or None
    results = results_recording(cfg, metrics)    # ResultsRecording (a Sink), or None
    recorded_files(root, "R1", "rows")           # a unit's files of a kind, oldest first
"""

from __future__ import annotations

from pathlib import Path

from monitor.recording.recorder import Recorder, ResultsRecording, results_recording, row_recorder

SUFFIXES = {"rows": ".csv", "scores": ".csv", "alerts": ".jsonl", "shadow-alerts": ".jsonl"}


def recorded_files(root: str | Path, unit: str, kind: str = "rows") -> list[Path]:
    """The unit's recorded files of ``kind`` under ``root``, oldest first (their names sort so)."""
    directory = Path(root) / unit
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"{kind}-*{SUFFIXES[kind]}"))


__all__ = ["SUFFIXES", "Recorder", "ResultsRecording", "recorded_files", "results_recording", "row_recorder"]
