"""The two stages before scoring: ingest (on paho's network thread) and buffers (their own thread).

Together with MqttLink they are the service's MQTT Source (monitor/sources.py): IngestStage puts each parsed
Reading in the Inbox, and the buffer thread drains the Inbox through the Source port, ``Inbox.readings()``.

API:
    inbox = Inbox(maxsize)                                  # bounded hand-off from paho's thread to the buffers
    inbox.readings() -> Iterator[Reading]                   # the Source port: what is queued now, in order
    ingest = IngestStage(parser, inbox, metrics)
    ingest.handle(topic, payload, received_at) -> bool     # the MqttLink handler: parse, count, put_nowait
    buffers = BufferStage(ring_buffers, inbox, job_queue, metrics, recorder=None)
                                                            # recorder: the rows' (monitor/recording), fed each
                                                            # closed row (RingBuffers(specs, keep_rows=True))
    buffers.handle(reading)                                 # one message: align, count it, queue jobs
    replay = buffers.replay(parser, journal_dir, scored_upto)   # at start: the journal back into the buffers
    threading.Thread(target=buffers.run, args=(stop,), name="buffers")   # until stop, then drains the inbox

Only the buffer thread touches the RingBuffers, so they need no lock.

Counting, one unit per counter: messages. Each readings message delivered by MQTT ends in exactly one of
plantwatch_readings_received_total{unit} (accepted: at least one value placed in the buffers, counted here on the
buffer thread after placing), plantwatch_readings_rejected_total{reason} (refused whole, by ingest or by the
buffers, once, under its first refused value's reason) or plantwatch_queue_dropped_total{queue="ingest"} (the inbox
was full); readings the clock guard still holds are in none yet. Values refused inside an accepted message (a
sensor already in its row, a value outside its sensor's limits) count in plantwatch_values_rejected_total{reason}.
A message whose every value is outside its limits reaches the buffers with no values (``Reading.out_of_range``:
its sensors are marked out of range there) and is refused whole, under ``out_of_range``.

Why the Inbox is a deque polled every POLL_S rather than a queue.Queue: a Queue wakes its blocked consumer
on every put, a thread switch per message that cost more CPU than parsing and buffering together (measured
with benchmarks/pipeline.py). deque.append / popleft are atomic under the GIL; the buffer thread drains
whatever arrived, then sleeps POLL_S, which adds at most POLL_S to the latency.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.buffers import ClosedRow, RingBuffers
from monitor.ingest import Parser
from monitor.journal import Journal, read_journal
from monitor.messages import REJECT_REASONS, Reading, Rejected, RejectReason, WindowJob
from monitor.metrics import Metrics
from monitor.scheduler import JobQueue

if TYPE_CHECKING:
    from monitor.recording import Recorder

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0  # at most one log line per reject reason in this interval
GAUGE_EVERY_S = 1.0
POLL_S = 0.002


class Inbox:
    """A bounded FIFO of Readings: paho's thread appends, the buffer thread drains; no locks, no wake-ups."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Reading] = deque()
        self.maxsize = maxsize

    def put_nowait(self, reading: Reading) -> bool:
        """False when full (the caller counts the drop). One producer, so the bound is exact."""
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(reading)
        return True

    def get_nowait(self) -> Reading | None:
        try:
            return self._items.popleft()
        except IndexError:
            return None

    def readings(self) -> Iterator[Reading]:
        """The Source port (monitor/sources.py): every reading queued, including those that arrive meanwhile."""
        reading = self.get_nowait()
        while reading is not None:
            yield reading
            reading = self.get_nowait()

    def __len__(self) -> int:
        return len(self._items)


class RateLimitedLog:
    """One WARNING per key per interval, with the number suppressed since the last one."""

    def __init__(self, interval_s: float = LOG_EVERY_S) -> None:
        self._interval_s = interval_s
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        self._next[key] = now + self._interval_s
        if suppressed:
            log.warning(msg + " (and %d more since the last report)", *args, suppressed)
        else:
            log.warning(msg, *args)


class IngestStage:
    """The MQTT message handler: never raises, never blocks.

    With a journal, an accepted message is written to it before ``handle`` returns (and paho acknowledges it), so
    a killed process cannot lose a reading the broker has let go of (monitor/journal.py)."""

    def __init__(self, parser: Parser, readings: Inbox, metrics: Metrics, journal: Journal | None = None) -> None:
        self._parser = parser
        self._readings = readings
        self._metrics = metrics
        self._journal = journal
        self._journal_failures = metrics.checkpoint_failures.labels("journal")
        self._rejected = {r: metrics.readings_rejected.labels(r) for r in REJECT_REASONS}
        self._dropped = metrics.queue_dropped.labels("ingest")
        self._log = RateLimitedLog()

    def handle(self, topic: str, payload: bytes, received_at: float) -> bool:
        """Returns True: the message is taken (queued, or refused and counted) and may be acknowledged."""
        result = self._parser.parse(topic, payload, received_at)
        if isinstance(result, Rejected):
            self._rejected[result.reason].inc()
            self._log.warning(
                result.reason, "refused a message on %r: %s: %s", topic[:128], result.reason, result.detail
            )
            return True
        if not self._readings.put_nowait(result):
            self._dropped.inc()
            self._log.warning("queue_full", "ingest queue full: dropped a reading of unit %s", result.unit)
            return True
        if self._journal is not None and not self._journal.append(topic, payload, received_at):
            self._journal_failures.inc()
            self._log.warning("journal", "cannot write the journal: a crash now would lose acknowledged readings")
        return True  # counted as received (or rejected) by the buffer stage, once it is placed (or refused)


@dataclass(slots=True)
class Replay:
    """What ``BufferStage.replay`` did: messages placed and refused, windows queued again, the priming windows."""

    placed: int = 0
    refused: int = 0
    rescored: int = 0
    primes: list[WindowJob] = field(default_factory=list)


class BufferStage:
    """Feeds readings into the ring buffers and queues the windows that became due."""

    def __init__(
        self,
        buffers: RingBuffers,
        readings: Inbox,
        jobs: JobQueue,
        metrics: Metrics,
        recorder: Recorder[ClosedRow] | None = None,
    ) -> None:
        self._buffers = buffers
        self._recorder = recorder
        self._readings = readings
        self._jobs = jobs
        self._metrics = metrics
        self._rejected = {r: metrics.readings_rejected.labels(r) for r in REJECT_REASONS}
        self._values_rejected = {r: metrics.values_rejected.labels(r) for r in REJECT_REASONS}
        self._table = metrics.per_unit
        self._fill_rows = [(unit, self._table.index[unit]) for unit in buffers.units]
        self._log = RateLimitedLog()
        self._next_gauges = 0.0

    def handle(self, reading: Reading) -> None:
        result = self._buffers.add(reading)
        index = self._table.index
        for unit in result.accepted:  # this message, or held ones the clock guard released
            self._table.count_received(index[unit])
        for rejection in result.refused:  # one per message refused whole
            reason: RejectReason = rejection.reason
            self._rejected[reason].inc()
            self._log.warning(reason, "refused a message of unit %s: %s: %s", reading.unit, reason, rejection.detail)
        for rejection in result.values_refused:
            self._values_rejected[rejection.reason].inc()
        for reason_name, count in result.skipped.items():
            self._metrics.windows_skipped.labels(reason_name).inc(count)
        for job in result.records:  # the jobs and the health-only records, in event-time order
            self._jobs.put(job)
        if self._recorder is not None:
            for row in result.rows:  # a bounded put: a full queue drops the row (counted), never waits
                self._recorder.put(row)
        if result.jobs:
            # The newest aligned row is the "actual" that dashboards draw against the forecasts (once per row).
            newest = result.jobs[-1]
            self._table.set_sensor_values(self._table.index[newest.unit], newest.window[-1])

    def replay(self, parser: Parser, journal_dir: Path, scored_upto: Mapping[str, float]) -> Replay:
        """At start, before any thread runs: the journal back into the buffers. Windows newer than the unit's mark
        (taken by the killed process, not scored) are queued for scoring; ``Replay.primes`` holds each unit's newest
        window that was scored, which primes the forecaster's state (its forecast for the next row)."""
        out = Replay()
        primes: dict[str, WindowJob] = {}
        for topic, payload, received_at in read_journal(journal_dir):
            reading = parser.parse(topic, payload, received_at)
            if isinstance(reading, Rejected):
                out.refused += 1
                continue
            result = self._buffers.add(reading)  # the clock guard's state is rebuilt too: a function of the readings
            out.placed += len(result.accepted)
            out.refused += len(result.refused)
            for job in result.records:
                if job.end_ts > scored_upto.get(job.unit, -math.inf):
                    # Taken again now: stamped so, the scheduler scores it as the backlog it is instead of dropping
                    # it as a window that waited while it fell behind.
                    self._jobs.put(dataclasses.replace(job, received_at=time.time()))
                    out.rescored += 1
                elif job.valid:
                    primes[job.unit] = job
        out.primes = list(primes.values())
        for result_name, count in (("placed", out.placed), ("refused", out.refused), ("rescored", out.rescored)):
            self._metrics.journal_replayed.labels(result_name).inc(count)
        return out

    def update_gauges(self) -> None:
        for unit, i in self._fill_rows:
            self._table.set_fill(i, self._buffers.fill(unit))
        self._metrics.queue_depth.labels("ingest").set(len(self._readings))
        self._metrics.queue_depth.labels("jobs").set(len(self._jobs))

    def run(self, stop: threading.Event) -> None:
        """Thread body: until ``stop``, then what is still queued (the intake is closed by then)."""
        while True:
            stopping = stop.is_set()
            for reading in self._readings.readings():
                try:
                    self.handle(reading)
                except Exception:
                    log.exception("buffering a reading of unit %s failed", reading.unit)
                    self._metrics.stage_errors.labels("buffers").inc()
            now = time.monotonic()
            if now >= self._next_gauges:
                self._next_gauges = now + GAUGE_EVERY_S
                self.update_gauges()
            if stopping:
                return
            stop.wait(POLL_S)
