"""The recording's writers: per kind a bounded queue and a writer thread, per unit its rotating files.

API::

    rows = row_recorder(cfg, metrics)          # None unless recording.path is set and recording.rows is on
    rows.start(); rows.put(closed_row)         # the buffer thread: never blocks, never raises (drops are counted)
    rows.stop(timeout_s) -> bool               # writes what is queued, fsyncs the current files
    results = results_recording(cfg, metrics)  # a Sink (alerts, and scores with recording.scores); None if off
    OutputStage(board, [mqtt_sink, results], ...); results.start(); ...; results.stop(timeout_s)

Off the hot path: ``put`` appends to a deque under its bound (one producer per kind: the buffer thread for rows,
the scheduler thread for scores and alerts), and the writer thread takes what is queued every ``recording.flush_s``,
encodes it and writes each unit's lines with one write per file (monitor/recording/files.py). A full queue drops
the new record and counts it in ``plantwatch_recording_dropped_total{kind}``; a failed write, open, delete or
encoding counts one ``plantwatch_recording_errors_total{kind}`` per unit and cycle, its records lost, logged at most
once a minute per kind; nothing reaches ingest or scoring. ``plantwatch_recording_bytes{kind}`` is what the kind's
files hold on disk, all units together.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from monitor.buffers.results import ClosedRow
from monitor.config import PlantwatchConfig, RecordingConfig
from monitor.messages import AlertEvent
from monitor.metrics import Metrics
from monitor.recording.files import FileLimits, RotatingFiles
from monitor.result_files import SCORE_COLUMNS, alert_line, score_cells
from monitor.sinks import Sink
from monitor.wire.payloads import ScoredRow

log = logging.getLogger("monitor.recording")

LOG_EVERY_S = 60.0  # at most one WARNING per kind in this interval
ENFORCE_EVERY_S = 10.0  # how often the age and size limits are checked for units that wrote nothing
MB = 1_000_000


class _OfUnit(Protocol):
    @property
    def unit(self) -> str: ...


T = TypeVar("T", bound=_OfUnit)


class Recorder(Generic[T]):
    """One kind of record for every unit (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        settings: RecordingConfig,
        units: Iterable[str],
        suffix: str,
        header: Callable[[str], str | None],
        encode: Callable[[str, Sequence[T]], list[str]],
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert settings.path is not None
        self.kind = kind
        self._encode = encode
        self._flush_s = settings.flush_s
        self._maxsize = settings.queue
        self._queue: deque[T] = deque()
        self._clock = clock
        limits = FileLimits(
            rotate_bytes=int(settings.rotate_mb * MB),
            rotate_s=settings.rotate_s,
            max_bytes=None if settings.max_mb is None else int(settings.max_mb * MB),
            max_age_s=settings.max_age_s,
        )
        root = Path(settings.path)
        self.files = {
            unit: RotatingFiles(root / unit, kind, suffix, header(unit), limits, clock=clock) for unit in units
        }
        self._dropped = metrics.recording_dropped.labels(kind)
        self._errors = metrics.recording_errors.labels(kind)
        self._bytes = metrics.recording_bytes.labels(kind)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_log = 0.0
        self._unlogged = 0
        self._next_enforce = 0.0

    def put(self, item: T) -> None:
        """Queue one record; a full queue drops it (counted). Never blocks, never raises."""
        if len(self._queue) >= self._maxsize:
            self._dropped.inc()
            return
        self._queue.append(item)

    def __len__(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"recording-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Write what is queued and fsync the current files; False if that missed the deadline."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("recording %s: the writer did not finish before the deadline", self.kind)
            return False
        return True

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                self.write_queued()
            except Exception as exc:  # whatever a cycle meets, the writer goes on (and the service never sees it)
                self._failed(f"a writer cycle failed: {exc!r}")
            if stopping:
                self._finish()
                return
            self._stop.wait(self._flush_s)

    def write_queued(self) -> None:
        """One cycle of the writer thread: what is queued now, to each unit's files; then the limits if due."""
        by_unit: dict[str, list[T]] = {}
        for _ in range(len(self._queue)):
            item = self._queue.popleft()
            by_unit.setdefault(item.unit, []).append(item)
        for unit, items in by_unit.items():
            files = self.files.get(unit)
            if files is None:
                continue  # not a configured unit: the buffers and the engine make none
            try:
                files.write(self._encode(unit, items))
            except Exception as exc:  # a full disk, a permission, a bad value: counted, never raised
                self._failed(f"{len(items)} record(s) of unit {unit} not written: {exc}")
        now = self._clock()
        if now >= self._next_enforce:
            self._next_enforce = now + ENFORCE_EVERY_S
            for unit, files in self.files.items():
                try:
                    files.enforce(now)
                except Exception as exc:
                    self._failed(f"unit {unit}: cannot apply the limits: {exc}")
        self._bytes.set(sum(files.on_disk for files in self.files.values()))

    def _finish(self) -> None:
        for unit, files in self.files.items():
            try:
                files.finish()
            except OSError as exc:
                self._failed(f"unit {unit}: cannot sync its file: {exc}")

    def _failed(self, message: str) -> None:
        self._errors.inc()
        now = time.monotonic()
        if now < self._next_log:
            self._unlogged += 1
            return
        self._next_log = now + LOG_EVERY_S
        more = f" (and {self._unlogged} more error(s) since the last report)" if self._unlogged else ""
        self._unlogged = 0
        log.warning("recording %s: %s%s", self.kind, message, more)


# --- the three kinds: file names, headers and lines ---


def _cell(value: float) -> str:
    return "" if value != value else repr(value)  # NaN: an empty cell; repr: the float exactly


def encode_rows(unit: str, rows: Sequence[ClosedRow]) -> list[str]:
    """``ts,unit,<sensor...>`` lines: the row's event time (epoch s, to the microsecond) and its values."""
    return [f"{round(r.ts, 6)!r},{unit}," + ",".join(_cell(v) for v in r.values) + "\n" for r in rows]


def encode_scores(unit: str, rows: Sequence[ScoredRow]) -> list[str]:
    """scores.csv lines (monitor/result_files.py writes the same, with the same csv dialect)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    lines = []
    for row in rows:
        for cells in score_cells(row):
            writer.writerow(cells)
            lines.append(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
    return lines


def encode_alerts(unit: str, events: Sequence[AlertEvent]) -> list[str]:
    return [alert_line(event) for event in events]


def _scores_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(SCORE_COLUMNS)
    return buffer.getvalue()


def row_recorder(cfg: PlantwatchConfig, metrics: Metrics) -> Recorder[ClosedRow] | None:
    """The aligned rows' recorder (the front process, fed by the buffer thread); None when not recording rows."""
    settings = cfg.recording
    if settings.path is None or not settings.rows:
        return None
    sensors = {u.name: tuple(u.sensors) for u in cfg.units}
    return Recorder(
        "rows",
        settings,
        sensors,
        ".csv",
        lambda unit: ",".join(("ts", "unit", *sensors[unit])) + "\n",
        encode_rows,
        metrics,
    )


class ResultsRecording(Sink):
    """The scoring side's recording, a Sink beside MQTT: alert events, and scored rows when ``recording.scores``."""

    takes_forecasts = False

    def __init__(
        self,
        alerts: Recorder[AlertEvent] | None,
        scores: Recorder[ScoredRow] | None,
        shadow_alerts: Recorder[AlertEvent] | None = None,
    ) -> None:
        self._alerts = alerts
        self._scores = scores
        self._shadow_alerts = shadow_alerts
        self.takes_scores = scores is not None
        self.recorders: list[Recorder[AlertEvent] | Recorder[ScoredRow]] = [
            r for r in (alerts, scores, shadow_alerts) if r is not None
        ]

    def alert(self, event: AlertEvent) -> None:
        if self._alerts is not None:
            self._alerts.put(event)

    def shadow_alert(self, event: AlertEvent) -> None:
        if self._shadow_alerts is not None:
            self._shadow_alerts.put(event)

    def scored(self, rows: Sequence[ScoredRow]) -> None:
        if self._scores is not None:
            for row in rows:
                self._scores.put(row)

    def start(self) -> None:
        for recorder in self.recorders:
            recorder.start()

    def stop(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all([r.stop(max(0.1, deadline - time.monotonic())) for r in self.recorders])


def results_recording(cfg: PlantwatchConfig, metrics: Metrics) -> ResultsRecording | None:
    """The alerts' and scores' recorders as one Sink (the scoring side); None when it would record nothing."""
    settings = cfg.recording
    if settings.path is None or not (settings.alerts or settings.scores):
        return None
    units = [u.name for u in cfg.units]
    alerts = (
        Recorder("alerts", settings, units, ".jsonl", lambda unit: None, encode_alerts, metrics)
        if settings.alerts
        else None
    )
    scores = (
        Recorder("scores", settings, units, ".csv", lambda unit: _scores_header(), encode_scores, metrics)
        if settings.scores
        else None
    )
    # The shadow candidates' would-be events (monitor/shadow.py), apart: for the units with a shadow at start.
    shadowed = [u.name for u in cfg.units if u.shadow is not None]
    shadow_alerts = (
        Recorder("shadow-alerts", settings, shadowed, ".jsonl", lambda unit: None, encode_alerts, metrics)
        if settings.alerts and shadowed
        else None
    )
    return ResultsRecording(alerts, scores, shadow_alerts)
