"""One unit's recording of one kind: rotating files of whole lines, bounded by size and age.

API::

    files = RotatingFiles(root / "R1", "rows", ".csv", header="ts,unit,a,b\\n", limits=FileLimits(...))
    files.write(["1732590000.0,R1,1.5,2.25\\n", ...])   # whole lines; OSError on a failed write (nothing half-written)
    files.enforce(now)                                   # delete the oldest files beyond the size or age limit
    files.finish()                                       # at rotation and at a clean stop: fsync the current file
    files.on_disk                                        # bytes of this unit's files of this kind on disk

Names: ``<kind>-<UTC stamp YYYYmmddTHHMMSSZ><suffix>``; the stamp is the wall clock when the file was begun,
moved on by whole seconds where needed so that names sort in the order the files were written (two files begun in
one second, a clock stepped back, a previous run's stamps). A new file is begun at the first write after the
current one reached ``rotate_bytes`` (so a file exceeds it by less than one line) or is ``rotate_s`` old.

Whole lines only: each write is one ``os.write`` per file of complete lines, on a file opened for it and closed
after it (a thousand units must not hold a thousand descriptors). A write the kernel took only part of (a full
disk, a file size limit) is cut back to the last whole line; a file that cannot even be cut back is left and a new
one begun at the next write. So a process that dies leaves whole lines, save a write in flight when it was killed
(the kernel may stop a large write at a page boundary) or a power cut: at its next start the unit's newest file is
checked and an unterminated tail cut off, with a WARNING. ``read_table(path, whole_lines=True)``
(monitor/wire/csvfile.py) ignores such a tail too, for a recording being read while it is written.

Limits: after each write and at every ``enforce``, the unit's oldest files of this kind are deleted while their
total exceeds ``max_bytes`` (the current file is never deleted: it holds at most ``rotate_bytes`` plus a line) and
every file last written more than ``max_age_s`` ago is deleted. Not thread-safe: one writer thread owns it.
"""

from __future__ import annotations

import calendar
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
TAIL_CHUNK = 65536  # how far back from the end a start looks for the last newline of a cut file


@dataclass(frozen=True)
class FileLimits:
    rotate_bytes: int
    rotate_s: float
    max_bytes: int | None
    max_age_s: float | None


@dataclass
class _File:
    path: Path
    size: int
    written_at: float  # wall clock of its last write (its mtime, for files found at start)


def stamp_of(t: float) -> str:
    return time.strftime(STAMP_FORMAT, time.gmtime(t))


def time_of_stamp(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, STAMP_FORMAT))


class RotatingFiles:
    """The files of one unit and kind (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        kind: str,
        suffix: str,
        header: str | None,
        limits: FileLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.kind = kind
        self.suffix = suffix
        self._header = header.encode() if header else b""
        self._limits = limits
        self._clock = clock
        self._pattern = re.compile(rf"^{re.escape(kind)}-(\d{{8}}T\d{{6}}Z){re.escape(suffix)}$")
        self._files: list[_File] = []  # oldest first; the last one is current while _current is set
        self._current: _File | None = None
        self._begun_at = 0.0
        self._next_stamp = 0  # the smallest stamp (epoch s) a new file may take
        self._scanned = False

    @property
    def on_disk(self) -> int:
        return sum(f.size for f in self._files)

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self._files]

    def write(self, lines: Sequence[str]) -> None:
        """Append whole lines (each ends with a newline), rotating as due; OSError if the disk refuses them (the
        lines are lost, and the file holds whole lines still)."""
        self._scan()
        chunk: list[bytes] = []
        pending = 0
        for line in lines:
            data = line.encode()
            if self._current is None or self._rotation_due(pending):
                if chunk:
                    self._append(b"".join(chunk))
                    chunk, pending = [], 0
                self._rotate()
            chunk.append(data)
            pending += len(data)
        if chunk:
            self._append(b"".join(chunk))
        self.enforce(self._clock())

    def _rotation_due(self, pending: int) -> bool:
        assert self._current is not None
        if self._current.size + pending >= self._limits.rotate_bytes:
            return True
        return self._clock() - self._begun_at >= self._limits.rotate_s

    def _rotate(self) -> None:
        """End the current file (fsync: its rows survive a power cut from now on) and begin the next one."""
        self.finish()
        now = self._clock()
        stamp_t = max(int(now), self._next_stamp)
        self._next_stamp = stamp_t + 1
        path = self.directory / f"{self.kind}-{stamp_of(stamp_t)}{self.suffix}"
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            written = os.write(fd, self._header) if self._header else 0
        except OSError:
            written = -1
        finally:
            os.close(fd)
        if written != len(self._header):  # not even the header: never leave a file the reader refuses
            path.unlink(missing_ok=True)
            raise OSError(f"{path}: the header was not written whole (a full disk?)")
        entry = _File(path, written, now)
        self._files.append(entry)
        self._current = entry
        self._begun_at = now

    def _append(self, data: bytes) -> None:
        current = self._current
        assert current is not None
        try:
            fd = os.open(current.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:  # deleted under us: begin a new one at the next write
            self._files.remove(current)
            self._current = None
            raise
        try:
            try:
                written = os.write(fd, data)
            except OSError:
                written = -1
            if written != len(data):
                self._cut_back(fd, current)  # raises
        finally:
            os.close(fd)
        current.size += written
        current.written_at = self._clock()

    def _cut_back(self, fd: int, current: _File) -> None:
        """After a short or failed write: the file back to its last whole line, or given up."""
        try:
            os.ftruncate(fd, current.size)
        except OSError:
            self._current = None  # it may end in a partial line: never append to it again
            log.warning("recording: %s may end in a partial line (it could not be cut back)", current.path)
        raise OSError(f"{current.path}: the disk took only part of a write (full, or a size limit)")

    def finish(self) -> None:
        """fsync the current file and begin a new one at the next write (rotation, a clean stop)."""
        current, self._current = self._current, None
        if current is None:
            return
        try:
            fd = os.open(current.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def enforce(self, now: float) -> None:
        """Delete the oldest files beyond ``max_bytes``, and any last written more than ``max_age_s`` ago."""
        self._scan()
        limits = self._limits
        if self._current is not None and now - self._begun_at >= limits.rotate_s:
            self.finish()  # an idle unit's file ends too, and ages out like any other
        if limits.max_age_s is not None:
            for f in [f for f in self._files if f is not self._current and now - f.written_at > limits.max_age_s]:
                self._drop(f)
        if limits.max_bytes is not None:
            total = self.on_disk
            for f in list(self._files):
                if total <= limits.max_bytes or f is self._current:
                    break
                total -= f.size
                self._drop(f)

    def _drop(self, f: _File) -> None:
        self._files.remove(f)
        f.path.unlink(missing_ok=True)  # missing: someone tidied up before us

    def _scan(self) -> None:
        """Once, at the first write or enforce: the files a previous run left (for the limits, the next stamp),
        the newest one's unterminated tail cut off. OSError if the directory cannot be read (tried again later)."""
        if self._scanned:
            return
        found: list[_File] = []
        if self.directory.is_dir():
            for entry in os.scandir(self.directory):
                match = self._pattern.match(entry.name)
                if not match or not entry.is_file():
                    continue
                try:
                    stamp_t = time_of_stamp(match.group(1))
                except ValueError:  # not a date (rows-99999999T999999Z.csv): not one of ours
                    continue
                info = entry.stat()
                found.append(_File(Path(entry.path), info.st_size, info.st_mtime))
                self._next_stamp = max(self._next_stamp, stamp_t + 1)
        found.sort(key=lambda f: f.path.name)
        if found:
            self._repair(found[-1])
            if found[-1].size == 0:
                found[-1].path.unlink()
                found.pop()
        self._files = found
        self._scanned = True

    def _repair(self, f: _File) -> None:
        """Cut an unterminated last line (a write cut by a kill, or a power cut) off the file."""
        with open(f.path, "r+b") as handle:
            if f.size == 0:
                return
            start = max(0, f.size - TAIL_CHUNK)
            handle.seek(start)
            tail = handle.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            if cut < 0 and start > 0:
                return  # no newline in its last 64 KiB: not a file of lines, leave it alone
            keep = start + cut + 1  # 0 when not even its first line is whole: the file goes
            handle.truncate(keep)
        log.warning("recording: cut an unterminated last line off %s (%d bytes)", f.path, f.size - keep)
        f.size = keep
