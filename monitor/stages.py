"""The two stages before scoring: ingest (on paho's network thread) and buffers (their own thread).

API:
    inbox = Inbox(maxsize)                                  # bounded hand-off from paho's thread to the buffers
    ingest = IngestStage(parser, inbox, metrics)
    ingest.handle(topic, payload, received_at) -> bool     # the MqttLink handler: parse, count, put_nowait
    buffers = BufferStage(ring_buffers, inbox, job_queue, metrics)
    buffers.handle(reading)                                 # one message: align, count it, queue jobs
    threading.Thread(target=buffers.run, args=(stop,), name="buffers")   # until stop, then drains the inbox

Only the buffer thread touches the RingBuffers, so they need no lock.

Counting, one unit per counter: messages. Each readings message delivered by MQTT ends in exactly one of
plantwatch_readings_received_total{unit} (accepted: at least one value placed in the buffers, counted here on the
buffer thread after placing), plantwatch_readings_rejected_total{reason} (refused whole, by ingest or by the
buffers, once, under its first refused value's reason) or plantwatch_queue_dropped_total{queue="ingest"} (the inbox
was full); readings the clock guard still holds are in none yet. Values refused inside an accepted message (a
sensor already in its row) count in plantwatch_values_rejected_total{reason}.

Why the Inbox is a deque polled every POLL_S rather than a queue.Queue: a Queue wakes its blocked consumer
on every put, a thread switch per message that cost more CPU than parsing and buffering together (measured
with benchmarks/pipeline.py). deque.append / popleft are atomic under the GIL; the buffer thread drains
whatever arrived, then sleeps POLL_S, which adds at most POLL_S to the latency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from monitor.buffers import RingBuffers
from monitor.ingest import Parser
from monitor.messages import REJECT_REASONS, Reading, Rejected, RejectReason
from monitor.metrics import Metrics
from monitor.scheduler import JobQueue

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
    """The MQTT message handler: never raises, never blocks."""

    def __init__(self, parser: Parser, readings: Inbox, metrics: Metrics) -> None:
        self._parser = parser
        self._readings = readings
        self._metrics = metrics
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
        return True  # counted as received (or rejected) by the buffer stage, once it is placed (or refused)


class BufferStage:
    """Feeds readings into the ring buffers and queues the windows that became due."""

    def __init__(self, buffers: RingBuffers, readings: Inbox, jobs: JobQueue, metrics: Metrics) -> None:
        self._buffers = buffers
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
        if result.jobs:
            # The newest aligned row is the "actual" that dashboards draw against the forecasts (once per row).
            newest = result.jobs[-1]
            self._table.set_sensor_values(self._table.index[newest.unit], newest.window[-1])

    def update_gauges(self) -> None:
        for unit, i in self._fill_rows:
            self._table.set_fill(i, self._buffers.fill(unit))
        self._metrics.queue_depth.labels("ingest").set(len(self._readings))
        self._metrics.queue_depth.labels("jobs").set(len(self._jobs))

    def run(self, stop: threading.Event) -> None:
        """Thread body: until ``stop``, then what is still queued (the intake is closed by then)."""
        while True:
            stopping = stop.is_set()
            reading = self._readings.get_nowait()
            while reading is not None:
                try:
                    self.handle(reading)
                except Exception:
                    log.exception("buffering a reading of unit %s failed", reading.unit)
                    self._metrics.stage_errors.labels("buffers").inc()
                reading = self._readings.get_nowait()
            now = time.monotonic()
            if now >= self._next_gauges:
                self._next_gauges = now + GAUGE_EVERY_S
                self.update_gauges()
            if stopping:
                return
            stop.wait(POLL_S)
