"""UnitRing: one unit's row grid and ring buffer: rows close in order, hold-over, windows, health records.

API (single-threaded; monitor.buffers.aligner.UnitAligner extends it with the placing of readings, and
monitor.buffers.ring_buffers.RingBuffers holds one per unit)::

    ring.row_of(ts), ring.row_ts(k)    # the unit's row grid
    ring.passed(k), ring.slot_of(k)    # whether the watermark passed row k; the ring slot of closed row k
    ring.close_due(out, flush)         # close rows in order while the next one is complete or passed (or, on
                                       # flush, while any is open), into out (a monitor.buffers.results.AddResult)
    ring.window(w), ring.fill()        # a copy of the newest w closed rows; share of the ring holding closed rows

Why apart from the aligner: what a closed row becomes (its ring slot, the hold-over, a window or a skipped gap, a
health record, a recorded row) does not depend on how the readings got into it; the aligner owns the door (the
clock guard, late and duplicate, out-of-range marks) and calls close_due after each message.

Alignment. Each unit has its own row grid ``origin + k * period_s``: the origin is ``UnitSpec.origin_s`` when set,
else the phase (``ts mod period_s``) of the unit's first accepted reading, fixed from then on, so the rows of a
source sampling on its own grid carry its readings' times (a 180 s source sampling at 80 s past the epoch grid
would otherwise be stamped 80 s off). A reading's event time ``ts`` goes to row ``k = floor((ts - origin) /
period_s + 0.5)`` (row time ``origin + k * period_s``). A unit's watermark is ``max ts seen - max_lateness_s``;
row ``k`` is passed by the watermark when ``origin + (k + 0.5) * period_s <= watermark``, so a reading that is at
most ``max_lateness_s`` older than the newest one never lands in a passed row. Rows close strictly in order: the
next row closes when all its sensors are in or when the watermark passes it. Waiting for the earlier rows is what
makes a stream shuffled within the lateness produce exactly the rows of the in-order stream (on the same grid: with
no configured origin, a jittered source's grid follows whichever reading comes first).

Closing. A sensor missing from a closing row takes its last observed value for at most ``max_gap_periods`` rows
in a row; beyond that the row is invalid. Rows that never received anything (a silent period) close as empty rows,
under the same hold-over rule, once the watermark passes them. A closed row whose last ``window_rows`` rows are all
valid yields a WindowJob; one whose window holds an invalid row is counted in ``skipped["gap"]`` (scoring
fabricated data produces false alarms). Warm-up rows (fewer than ``window_rows`` closed so far) are neither.

Silence. Each gap-skipped row also yields a health-only record in ``records`` (a WindowJob with ``valid=False``,
``window`` its newest row only, ``silent`` the sensors past their hold-over): the sensor detector
(monitor.sensor_health) alerts on it, the models never see it. A row whose sensors are all back but whose window
still holds an invalid row is such a record with no silent sensor: the sensor is back, and the alert can resolve.
A long silence closed in bulk yields its first row past the hold-over and ``silent_rows`` more one by one (enough
for an alert's k of n to fire) and one record for the span's last row, not one per missed row.

Out of range. A row closes with the marks the aligner set (monitor.buffers.aligner, "Out of range"); the ring keeps
per sensor the newest refused value of a marked row and its age, names the sensor in every record's
``out_of_range`` while that mark is at most ``max_gap_periods`` rows old, and clears it at the sensor's first value.

Closed rows (``keep_rows``, monitor/recording): each row that closes with at least one value placed is handed on
as it was received, NaN for a sensor with no value in it (no hold-over: that is the aligner's stand-in, not data),
in closing order, which is row order per unit. Rows that close empty (a silence) are not: a recording shows the
silence as missing row times.

Memory per unit: the ring ``[capacity_rows, S]`` float32 plus row times and flags, preallocated, plus at most about
``max_lateness_s / period_s + 2`` open rows; it does not grow with traffic.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from monitor.buffers.results import SKIP_GAP, AddResult, ClosedRow
from monitor.buffers.unit_spec import UnitSpec
from monitor.messages import WindowJob


class OpenRow:
    """A row still receiving readings."""

    __slots__ = ("count", "marks", "observed", "received_at", "source_ts", "values")

    def __init__(self, n_sensors: int) -> None:
        self.values = [math.nan] * n_sensors
        self.observed = [False] * n_sensors
        self.count = 0  # sensors observed; + len(marks): sensors settled (the row is complete when all are)
        self.marks: dict[int, float] | None = None  # sensor index -> newest value refused as out of range
        self.received_at = -math.inf
        self.source_ts = -math.inf  # the newest Reading.source_time placed in the row


class UnitRing:
    """One unit's row grid and ring (the placing of readings: UnitAligner). Not thread-safe: owned by one thread."""

    def __init__(self, name: str, spec: UnitSpec, keep_rows: bool = False) -> None:
        self.name = name
        self.spec = spec
        self.keep_rows = keep_rows
        self.n_sensors = len(spec.sensors)
        self.index = {s: i for i, s in enumerate(spec.sensors)}
        cap = spec.capacity
        self.cap = cap
        self.values = np.full((cap, self.n_sensors), np.nan, dtype=np.float32)  # [cap, S]
        self.row_k = np.full(cap, -1, dtype=np.int64)  # row index k of each slot, -1 empty
        self.valid = np.zeros(cap, dtype=bool)  # [cap]
        self.observed = np.zeros((cap, self.n_sensors), dtype=bool)  # [cap, S] received (not held over)
        self.head = 0  # next slot to write
        self.rows_closed = 0
        self.closed_upto: int | None = None  # k of the newest closed row
        self.open: dict[int, OpenRow] = {}
        self.max_ts = -math.inf
        # Phase of the row grid in [0, period): configured, or set by the first reading placed ("Alignment").
        self.phase: float | None = None if spec.origin_s is None else spec.origin_s % spec.period_s
        # Per sensor: last observed value and rows since it was observed (huge = never, so no hold-over before the
        # first value). Python lists: this is touched per row per sensor, where numpy scalars cost more.
        self.last_values: list[float] = [math.nan] * self.n_sensors
        self.age: list[int] = [1 << 40] * self.n_sensors
        self.valid_run = 0  # consecutive valid rows ending at the newest closed row
        # Per sensor: the newest out-of-range value of a closed row (NaN: none since its last good value) and rows
        # since that row; ``marked`` is whether any is set, so the common path skips them.
        self.bad_values: list[float] = [math.nan] * self.n_sensors
        self.bad_age: list[int] = [0] * self.n_sensors
        self.marked = False
        self.last_received_at = -math.inf

    # --- the grid ------------------------------------------------------------------------------------------
    def row_of(self, ts: float) -> int:
        # Before the grid is fixed, ts is placed on the grid it would fix (its own phase): row_of(ts) is exact.
        phase = self.phase if self.phase is not None else ts % self.spec.period_s
        return math.floor((ts - phase) / self.spec.period_s + 0.5)

    def row_ts(self, k: float) -> float:
        """Event time of row k (k + 0.5: the end of its bucket)."""
        return (self.phase or 0.0) + k * self.spec.period_s

    def passed(self, k: int) -> bool:
        """Whether the watermark has passed row k."""
        return self.row_ts(k + 0.5) <= self.max_ts - self.spec.max_lateness_s

    def slot_of(self, k: int) -> int | None:
        """Ring slot holding closed row k, if it is still in the ring."""
        if self.closed_upto is None or k > self.closed_upto:
            return None
        back = self.closed_upto - k
        if back >= min(self.rows_closed, self.cap):
            return None
        slot = (self.head - 1 - back) % self.cap
        return slot if self.row_k[slot] == k else None

    # --- closing ---------------------------------------------------------------------------------------------
    def close_due(self, out: AddResult, flush: bool) -> None:
        """Close rows in order while the next one is complete or passed (or, on flush, while any is open)."""
        while True:
            if self.closed_upto is not None:
                nxt = self.closed_upto + 1
            elif self.open:
                nxt = min(self.open)
            else:
                return
            row = self.open.get(nxt)
            if row is not None:
                if row.count == self.n_sensors or flush or self.passed(nxt):
                    del self.open[nxt]
                    self.close_row(nxt, row, out)
                    continue
                return
            # Row nxt never received anything: close the silent span the watermark (or the flush) has passed.
            next_open = min(self.open) if self.open else None
            if flush:
                if next_open is None:
                    return
                last = next_open - 1
            else:
                watermark = self.max_ts - self.spec.max_lateness_s
                last = math.floor((watermark - (self.phase or 0.0)) / self.spec.period_s - 0.5)
                if next_open is not None:
                    last = min(last, next_open - 1)
            if last < nxt:
                return
            self.close_empty_span(nxt, last - nxt + 1, out)

    def close_empty_span(self, first_k: int, n_rows: int, out: AddResult) -> None:
        # Rows one by one while a hold-over may still apply, and silent_rows more (each a health record), then the
        # rest in bulk (a long silence must not cost a loop over every missed period).
        one_by_one = min(n_rows, self.spec.max_gap_periods + 1 + self.spec.silent_rows)
        for j in range(one_by_one):
            self.close_row(first_k + j, None, out)
        rest = n_rows - one_by_one
        if rest <= 0:
            return
        self.age = [a + rest for a in self.age]
        # Marks need nothing here: the one_by_one rows above (more than max_gap) have expired every one.
        self.valid_run = 0
        write = min(rest, self.cap)
        last_k = first_k + n_rows - 1
        for j in range(write):  # at most capacity slots, oldest first
            k = last_k - write + 1 + j
            slot = self.head
            self.values[slot] = np.nan
            self.observed[slot] = False
            self.valid[slot] = False
            self.row_k[slot] = k
            self.head = (slot + 1) % self.cap
        before = self.rows_closed
        self.rows_closed += rest
        self.closed_upto = last_k
        # Every one of these rows ends a window holding an invalid row; warm-up rows are not counted.
        counted = self.rows_closed - max(before, self.spec.window_rows - 1)
        if counted > 0:
            out.skipped[SKIP_GAP] = out.skipped.get(SKIP_GAP, 0) + counted
            # One health record for the span's end: the sensor alert stays firing through the silence.
            self.health_record(last_k, None, (self.head - 1) % self.cap, out)

    def close_row(self, k: int, row: OpenRow | None, out: AddResult) -> None:
        if self.keep_rows and row is not None and row.count > len(row.marks or ()):  # a value was placed in it
            out.rows.append(ClosedRow(self.name, self.row_ts(k), row.values))
        slot = self.head
        n = self.n_sensors
        max_gap = self.spec.max_gap_periods
        last, age = self.last_values, self.age
        if row is not None and row.count == n and not row.marks:  # the common case: a complete row
            vals = row.values
            obs = row.observed
            self.last_values = list(vals)
            self.age = [0] * n
            valid = True
            if self.marked:  # every sensor is back in range
                self.bad_values = [math.nan] * n
                self.marked = False
        else:
            vals = [math.nan] * n
            obs = [False] * n
            valid = True
            marks = row.marks if row is not None else None
            track = self.marked or bool(marks)  # out-of-range bookkeeping, only while there is any
            bad, bad_age = self.bad_values, self.bad_age
            for i in range(n):
                if row is not None and row.observed[i]:
                    vals[i] = last[i] = row.values[i]
                    obs[i] = True
                    age[i] = 0
                    if track:
                        bad[i] = math.nan  # a value in range: the sensor is back
                else:
                    age[i] += 1  # missing, out of range or not: the hold-over applies alike
                    if age[i] <= max_gap:
                        vals[i] = last[i]
                    else:
                        valid = False
                    if track:
                        if marks and i in marks:
                            bad[i] = marks[i]
                            bad_age[i] = 0
                        else:
                            bad_age[i] += 1
                            if bad_age[i] > max_gap:  # no word since the mark: silent from now on
                                bad[i] = math.nan
            if track:
                self.marked = any(v == v for v in bad)  # NaN != NaN
        self.values[slot] = vals
        self.observed[slot] = obs
        self.valid[slot] = valid
        self.row_k[slot] = k
        self.head = (slot + 1) % self.cap
        self.rows_closed += 1
        self.closed_upto = k
        self.valid_run = self.valid_run + 1 if valid else 0
        w = self.spec.window_rows
        if self.valid_run >= w:
            row_ts = self.row_ts(k)
            received_at = row.received_at if row is not None else self.last_received_at
            source_ts = row.source_ts if row is not None else row_ts
            job = WindowJob(self.name, row_ts, self.window(w), received_at, source_ts, out_of_range=self.flagged())
            out.jobs.append(job)
            out.records.append(job)
        elif self.rows_closed >= w:
            out.skipped[SKIP_GAP] = out.skipped.get(SKIP_GAP, 0) + 1
            self.health_record(k, row, slot, out)

    def health_record(self, k: int, row: OpenRow | None, slot: int, out: AddResult) -> None:
        """The health-only record of gap-skipped row k (ring slot ``slot``): its newest row, its silent sensors and
        its out-of-range ones (a sensor out of range is not also silent)."""
        row_ts = self.row_ts(k)  # the row time of close_row's jobs: the unit's own grid
        received_at = row.received_at if row is not None else self.last_received_at
        source_ts = row.source_ts if row is not None else row_ts
        max_gap = self.spec.max_gap_periods
        sensors = self.spec.sensors
        silent = tuple(s for s, a, b in zip(sensors, self.age, self.bad_values, strict=True) if a > max_gap and b != b)
        window = self.values[slot : slot + 1].copy()
        record = WindowJob(
            self.name, row_ts, window, received_at, source_ts, valid=False, silent=silent, out_of_range=self.flagged()
        )
        out.records.append(record)

    def flagged(self) -> tuple[tuple[str, float], ...]:
        """(sensor, newest refused value) of the sensors out of range now, config order."""
        if not self.marked:
            return ()
        return tuple((s, v) for s, v in zip(self.spec.sensors, self.bad_values, strict=True) if v == v)

    def window(self, w: int) -> npt.NDArray[np.float32]:
        """A copy of the newest w closed rows, oldest first: [w, S] float32."""
        start = self.head - w
        if start >= 0:
            return self.values[start : self.head].copy()
        return np.concatenate((self.values[start:], self.values[: self.head]))

    def fill(self) -> float:
        return min(self.rows_closed, self.cap) / self.cap
