"""Crash-only restarts: a journal of the readings taken from the broker, and the marks of what was scored.

API:
    journal = Journal(state_dir / "journal", retain_s=600.0)     # paho's thread appends, nothing else touches it
    journal.append(topic, payload, received_at) -> bool           # before the message is acknowledged; False: failed
    journal.close()
    for topic, payload, received_at in read_journal(state_dir / "journal"): ...   # oldest first (at start)
    marks = ScoredMarks(state_dir / "scored.json")                 # the scheduler's thread
    marks.load() -> {unit: end_ts}                                 # newest row scored per unit, as last saved
    marks.update(jobs); marks.save_due(idle) / marks.save()

Why a journal and not a snapshot of the ring buffers. The service acknowledges a reading once it is queued in
memory (mosquitto keeps at most 20 unacknowledged QoS 1 messages in flight per client, so acknowledging only after
scoring would stall the stream). What makes that safe against kill -9 is this journal: the message is written (one
``os.write`` to an ``O_APPEND`` file, so it is in the kernel's page cache, which a killed process cannot lose) before
the acknowledgement. A restarted service replays the journal through the same parser and buffers: the buffers come
back exactly as they were (the aligner is deterministic in the readings and their receive times), the windows that
had been scored (up to ``ScoredMarks``) are not scored again, and the ones that were acknowledged but not yet scored
are. So a restart scores from its first new reading and loses nothing that was acknowledged. What it does not cover:
a power cut or kernel crash loses what the page cache had not written back (no fsync: at a few thousand messages a
second, a sync per message is what the disk cannot do). The marks are saved whenever the scheduler is idle, and at
least every ``save_every_s`` under load; windows scored in that last interval before a kill are scored again
(counted in ``plantwatch_journal_replayed_total{result="rescored"}``): the alert trackers come back from their
retained state and alert ids are deterministic, so a window scored twice does not open a second episode.

Format. Segment files ``<start_ns>.log`` of records ``<received_at f64><topic_len u16><payload_len u32><crc32 u32>
<topic><payload>`` (little-endian; the CRC covers topic and payload). A new segment starts every ``rotate_s`` of
receive time; a segment whose successor started more than ``retain_s`` ago is deleted (retain_s: the longest span a
unit's ring buffer holds, so a replay refills every ring). Reading stops at the first torn or corrupt record of a
segment (a write cut short by a full disk) and goes on with the next segment.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from monitor.messages import WindowJob

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<dHII")
SUFFIX = ".log"


class Journal:
    """Append-only segments of accepted messages (see the module docstring). Owned by one thread."""

    def __init__(self, directory: Path, retain_s: float, rotate_s: float = 60.0) -> None:
        self.directory = directory
        self.retain_s = retain_s
        self.rotate_s = rotate_s
        directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._segment_start = -math.inf

    def append(self, topic: str, payload: bytes, received_at: float) -> bool:
        """Write one message; False (nothing raised) if the disk refused it."""
        try:
            if received_at >= self._segment_start + self.rotate_s or self._fd is None:
                self._rotate(received_at)
            assert self._fd is not None
            name = topic.encode()
            body = name + payload
            os.write(self._fd, _HEADER.pack(received_at, len(name), len(payload), zlib.crc32(body)) + body)
            return True
        except OSError:
            self.close()  # a fresh segment next time: a torn record ends only this one
            return False

    def _rotate(self, now: float) -> None:
        self.close()
        segments = _segments(self.directory)  # listed once: the newest name and the expiry both come from it
        newest_ns = int(segments[-1].stem) if segments else 0
        start_ns = max(int(now * 1e9), newest_ns + 1)  # names stay ordered if the clock steps back
        path = self.directory / f"{start_ns:020d}{SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment_start = now
        # Segment i holds records up to the start of segment i + 1: it can go once that start is older than retain_s.
        for older, newer in itertools.pairwise([*segments, path]):
            if int(newer.stem) / 1e9 < now - self.retain_s:
                older.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(f"*{SUFFIX}") if p.stem.isdigit())


def read_journal(directory: Path) -> Iterator[tuple[str, bytes, float]]:
    """Every intact record of every segment, oldest first: (topic, payload, received_at)."""
    if not directory.is_dir():
        return
    for path in _segments(directory):
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.error("cannot read journal segment %s: %s", path, exc)
            continue
        offset = 0
        while offset + _HEADER.size <= len(data):
            received_at, topic_len, payload_len, crc = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            end = start + topic_len + payload_len
            if end > len(data) or zlib.crc32(data[start:end]) != crc:
                log.warning("journal segment %s: torn record at byte %d, the rest is skipped", path, offset)
                break
            try:
                topic = data[start : start + topic_len].decode()
            except UnicodeDecodeError:
                break
            yield topic, data[start + topic_len : end], received_at
            offset = end


class ScoredMarks:
    """The newest row end time scored per unit, saved atomically (write, then rename) at most every ``save_every_s``."""

    def __init__(self, path: Path, save_every_s: float = 1.0) -> None:
        self.path = path
        self.save_every_s = save_every_s
        self.marks: dict[str, float] = {}
        self._next_save = 0.0
        self._dirty = False

    def load(self) -> dict[str, float]:
        """The saved marks ({} when none or unreadable: then every replayed window is scored again)."""
        try:
            raw = json.loads(self.path.read_text())
            self.marks = {str(u): float(ts) for u, ts in raw.items() if isinstance(ts, int | float)}
        except FileNotFoundError:
            self.marks = {}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring unreadable scoring marks %s: %s", self.path, exc)
            self.marks = {}
        return dict(self.marks)

    def update(self, jobs: Iterable[WindowJob]) -> None:
        for job in jobs:
            if job.end_ts > self.marks.get(job.unit, -math.inf):
                self.marks[job.unit] = job.end_ts
                self._dirty = True

    def save_due(self, idle: bool = False, now: float | None = None) -> bool | None:
        """Save if something changed and ``save_every_s`` has passed (at once when ``idle``: nothing is waiting to be
        scored, so the write costs no latency); None: not due, else whether it was written."""
        now = time.monotonic() if now is None else now
        if not self._dirty or (now < self._next_save and not idle):
            return None
        self._next_save = now + self.save_every_s
        return self.save()

    def save(self) -> bool:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.marks))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("cannot save scoring marks %s: %s", self.path, exc)
            return False
        self._dirty = False
        return True
