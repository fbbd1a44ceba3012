"""Ready windows from the front process to the scorer process: preallocated shared-memory slots, no pickling.

API (front process, the "feeder" thread)::

    slots = WindowSlots.create(n_slots, max_rows, units={"R1": ("a", "b")})   # owns the block; slots.close()
    writer = SlotWriter(slots, ready_send, free_recv)    # the two ends of multiprocessing.Pipe(duplex=False) x 2
    writer.send(jobs, timeout_s, prime=False) -> int     # jobs placed (waits up to timeout_s for free slots)
    writer.end()                                         # no more jobs: the scorer drains and stops

API (scorer process)::

    slots = WindowSlots.attach(name, n_slots, max_rows, units)
    reader = SlotReader(slots, ready_recv, free_send, on_primes=engine_run)
    reader.take(max_items, max_delay_s, timeout_s) -> list[WindowJob]   # the scheduler's JobQueue.take contract
    reader.ended                                         # threading.Event: the front sent end() (or went away)
    reader.orphaned                                      # True: it went away (killed); nothing more is taken

Why slots and pipes: a window is ``rows x sensors`` float32 written once into a slot of one shared block, and
only the slot's index (4 bytes) crosses a pipe; the scorer copies the window out and hands the index back on the
second pipe at once, so a slot is busy for microseconds, never for the length of a forward pass. Nothing is
pickled and no object is allocated per window in the front beyond the WindowJob the buffers made anyway.
``Connection.poll`` and ``recv_bytes`` wait without holding the GIL.

Slot layout: per slot a header (unit index, rows, flags valid / prime, end_ts, received_at, source_ts), the
unit's ``silent`` sensors and ``out_of_range`` sensors (with their refused values) as per-sensor arrays, and the
window itself ``[max_rows, max_sensors]``. Units and sensors travel as indices into the configuration's order,
which both processes read from the same config.

A prime (``send(..., prime=True)``) is a window the killed process had already scored (monitor/journal.py): the
scorer runs it only to restore its forecasters' state, through ``on_primes``, before any later window.
"""

from __future__ import annotations

import contextlib
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection

import numpy as np
import numpy.typing as npt

from monitor.messages import WindowJob
from monitor.shared_block import SharedBlock

END = -1  # the index that says "no more windows"

_HEADER = np.dtype(
    [
        ("unit", np.int32),
        ("rows", np.int32),
        ("valid", np.uint8),
        ("prime", np.uint8),
        ("pad", np.uint8, 6),
        ("end_ts", np.float64),
        ("received_at", np.float64),
        ("source_ts", np.float64),
    ]
)


class WindowSlots:
    """The shared block: ``n_slots`` window slots for the units of one configuration."""

    def __init__(self, block: SharedBlock, n_slots: int, max_rows: int, units: Mapping[str, Sequence[str]]) -> None:
        self.block = block
        self.n_slots = n_slots
        self.max_rows = max_rows
        self.units = tuple(units)
        self.unit_index = {unit: i for i, unit in enumerate(self.units)}
        self.sensors = [tuple(sensors) for sensors in units.values()]
        self.sensor_index = [{s: j for j, s in enumerate(sensors)} for sensors in self.sensors]
        self.width = _width(units)
        carve = block.carver()
        layout = self.layout(n_slots, max_rows, self.width)
        self.header = carve(*layout[0])
        self.silent = carve(*layout[1])
        self.out_of_range = carve(*layout[2])
        self.refused_value = carve(*layout[3])
        self.data = carve(*layout[4])

    @staticmethod
    def layout(n_slots: int, max_rows: int, width: int) -> list[tuple[npt.DTypeLike, tuple[int, ...]]]:
        return [
            (_HEADER, (n_slots,)),
            (np.bool_, (n_slots, width)),
            (np.bool_, (n_slots, width)),
            (np.float32, (n_slots, width)),
            (np.float32, (n_slots, max_rows, width)),
        ]

    @classmethod
    def create(cls, n_slots: int, max_rows: int, units: Mapping[str, Sequence[str]]) -> WindowSlots:
        block = SharedBlock.create(SharedBlock.size_of(cls.layout(n_slots, max_rows, _width(units))))
        return cls(block, n_slots, max_rows, units)

    @classmethod
    def attach(cls, name: str, n_slots: int, max_rows: int, units: Mapping[str, Sequence[str]]) -> WindowSlots:
        return cls(SharedBlock.attach(name), n_slots, max_rows, units)

    def write(self, slot: int, job: WindowJob, prime: bool) -> None:
        unit = self.unit_index[job.unit]
        rows = min(job.window.shape[0], self.max_rows)
        head = self.header[slot]
        head["unit"] = unit
        head["rows"] = rows
        head["valid"] = job.valid
        head["prime"] = prime
        head["end_ts"] = job.end_ts
        head["received_at"] = job.received_at
        head["source_ts"] = job.source_ts
        self.data[slot, :rows, : job.window.shape[1]] = job.window[-rows:]
        index = self.sensor_index[unit]
        silent = self.silent[slot]
        silent[:] = False
        for sensor in job.silent:
            silent[index[sensor]] = True
        out = self.out_of_range[slot]
        out[:] = False
        for sensor, value in job.out_of_range:
            out[index[sensor]] = True
            self.refused_value[slot, index[sensor]] = value

    def read(self, slot: int) -> tuple[WindowJob, bool]:
        """The slot's job (its window copied out) and whether it is a prime."""
        head = self.header[slot]
        unit = int(head["unit"])
        rows = int(head["rows"])
        sensors = self.sensors[unit]
        window = self.data[slot, :rows, : len(sensors)].copy()
        silent: tuple[str, ...] = ()
        out_of_range: tuple[tuple[str, float], ...] = ()
        if self.silent[slot].any():
            silent = tuple(s for s, flag in zip(sensors, self.silent[slot].tolist(), strict=False) if flag)
        if self.out_of_range[slot].any():
            values = self.refused_value[slot].tolist()
            flags = self.out_of_range[slot].tolist()
            out_of_range = tuple((s, float(values[j])) for j, s in enumerate(sensors) if flags[j])
        job = WindowJob(
            self.units[unit],
            float(head["end_ts"]),
            window,
            float(head["received_at"]),
            float(head["source_ts"]),
            valid=bool(head["valid"]),
            silent=silent,
            out_of_range=out_of_range,
        )
        return job, bool(head["prime"])

    def close(self) -> None:
        """Drop the views, then the mapping (the owner also unlinks the block)."""
        del self.header, self.silent, self.out_of_range, self.refused_value, self.data
        self.block.close()
        self.block.unlink()


def _width(units: Mapping[str, Sequence[str]]) -> int:
    return max((len(s) for s in units.values()), default=1)


def _indices(raw: bytes) -> list[int]:
    values = array("i")
    values.frombytes(raw)
    return values.tolist()


class SlotWriter:
    """The front's end: writes jobs into free slots and sends their indices (one thread uses it)."""

    def __init__(self, slots: WindowSlots, ready: Connection, free: Connection) -> None:
        self._slots = slots
        self._ready = ready
        self._free_conn = free
        self._free = list(range(slots.n_slots))

    def _collect(self, wait_s: float) -> None:
        """Take back the slots the scorer has freed, waiting up to ``wait_s`` for the first if none is free."""
        try:
            if not self._free and not self._free_conn.poll(wait_s):
                return
            while self._free_conn.poll(0):
                self._free.extend(_indices(self._free_conn.recv_bytes()))
        except (EOFError, OSError):  # the scorer is gone: nothing will be freed again (the caller checks it)
            return

    def send(self, jobs: Sequence[WindowJob], timeout_s: float, prime: bool = False) -> int:
        """Place ``jobs`` in order; waits up to ``timeout_s`` in all for free slots. Returns how many were placed."""
        deadline = time.monotonic() + timeout_s
        placed = 0
        while placed < len(jobs):
            self._collect(0.0 if self._free else max(0.0, deadline - time.monotonic()))
            if not self._free:
                break
            batch = []
            while self._free and placed < len(jobs):
                slot = self._free.pop()
                self._slots.write(slot, jobs[placed], prime)
                batch.append(slot)
                placed += 1
            self._ready.send_bytes(array("i", batch).tobytes())
        return placed

    def end(self) -> None:
        with contextlib.suppress(OSError):  # the scorer already went away
            self._ready.send_bytes(array("i", [END]).tobytes())


class SlotReader:
    """The scorer's end, with the take() of monitor.scheduler.JobQueue (the scheduler's one thread uses it)."""

    def __init__(
        self,
        slots: WindowSlots,
        ready: Connection,
        free: Connection,
        on_primes: Callable[[list[WindowJob]], object] | None = None,
    ) -> None:
        self._slots = slots
        self._ready = ready
        self._free = free
        self._on_primes = on_primes
        self.ended = threading.Event()
        # The front went away without an end mark (killed): what it sent is not scored here. A restarted service
        # rescores it from its journal, and two processes must not publish the same windows.
        self.orphaned = False

    def _receive(self, wait_s: float) -> list[int]:
        if self.ended.is_set():
            return []
        try:
            if not self._ready.poll(wait_s):
                return []
            indices: list[int] = []
            while True:
                indices.extend(_indices(self._ready.recv_bytes()))
                if not self._ready.poll(0):
                    break
        except (EOFError, OSError):  # the front process went away (killed)
            self.orphaned = True
            self.ended.set()
            return []
        if END in indices:
            indices = indices[: indices.index(END)]
            self.ended.set()
        return indices

    def take(self, max_items: int, max_delay_s: float, timeout_s: float) -> list[WindowJob]:
        """Wait up to ``timeout_s`` for a first window, then up to ``max_delay_s`` for ``max_items``; take them."""
        indices = self._receive(timeout_s)
        if indices and len(indices) < max_items and max_delay_s > 0:
            deadline = time.monotonic() + max_delay_s
            while len(indices) < max_items and not self.ended.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                indices.extend(self._receive(left))
        if not indices or self.orphaned:
            return []
        read = [self._slots.read(i) for i in indices]
        try:
            self._free.send_bytes(array("i", indices).tobytes())
        except (BrokenPipeError, OSError):
            self.ended.set()
        primes = [job for job, prime in read if prime]
        if primes and self._on_primes is not None:
            self._on_primes(primes)
        return [job for job, prime in read if not prime]

    def __len__(self) -> int:
        """Windows known to be waiting (0: none polled yet); the scheduler only asks whether it is idle."""
        try:
            return 1 if self._ready.poll(0) else 0
        except (EOFError, OSError):
            return 0
