"""UnitAligner: one unit's door: each reading checked, held by the clock guard, refused or placed in an open row.

API (single-threaded; monitor.buffers.ring_buffers.RingBuffers holds one per unit)::

    unit = UnitAligner("R1", spec, keep_rows=False)   # spec: monitor.buffers.unit_spec.UnitSpec
    unit.add(reading, out)      # placed, refused or held; the rows that became due closed into out (an AddResult)
    unit.drain_held(out)        # the end of the input: the readings still held are refused as ``clock``
    unit.guard                  # the unit's monitor.timeline.TimelineGuard; None without max_clock_skew_s

Why apart from the ring (monitor.buffers.ring.UnitRing, which it extends): the door's rules (what is off the
clock, late, a duplicate, out of range) are about messages, the ring's about rows; a row closes the same way
whichever door filled it.

Clock guard. With ``UnitSpec.max_clock_skew_s`` set (the service and the backtest set it from
limits.max_clock_skew_s), every reading first passes the unit's monitor.timeline.TimelineGuard: a reading ahead of
the unit's own cadence (or a first reading far from the receive clock) is held, not placed, so it can neither move
the watermark past the genuine stream nor become the unit's origin; held readings are placed once a few rows of
them agree and nothing contradicts them (a clock step, a replay), else refused as ``clock``. The backtest's
readings (received_at = ts) are never held.

Placing. A reading goes to its row on the unit's grid (monitor.buffers.ring, "Alignment"). A reading for a closed
row is refused: ``duplicate`` if that sensor was observed in that row and the row is still in the ring (a QoS 1
redelivery), else ``late``. The same sensor twice in an open row is a ``duplicate``; the first value wins.

Out of range. A value ingest refused as outside its sensor's limits comes as ``Reading.out_of_range`` (monitor.
validation): each is one ``out_of_range`` rejection, listed before the message's other refused values (so a message
whose every value was out of range is refused whole under ``out_of_range``), and the sensor is missing for that row,
marked "out of range": the ring's hold-over rule applies (the models see the last good value, then the windows are
skipped), and a marked sensor settles its row like a value does (a row whose other sensors are in closes at once).
A value placed for the sensor in the same row wins over the mark. Per sensor the buffers keep the newest refused
value of a marked row: while the latest evidence is such a mark, no more than ``max_gap_periods`` rows old, every
record (WindowJob and health-only) names the sensor in ``out_of_range`` with that value, and not in ``silent``; a
value in range clears it at once; a sensor that stops reporting at all becomes ``silent`` once the mark is older
than the hold-over. A mark only counts for a row that is still open, or a new row at most one past the unit's
newest placed reading (so an out-of-range stream cannot hold rows open ahead of the unit's time); one for a closed
or passed row, or before the unit's first placed reading, is counted and forgotten. The door's verdict comes first:
a redelivered message of out-of-range values counts as ``out_of_range`` again, not as ``duplicate``.
"""

from __future__ import annotations

import math

from monitor.buffers.results import AddResult
from monitor.buffers.ring import OpenRow, UnitRing
from monitor.buffers.unit_spec import UnitSpec
from monitor.messages import Reading, Rejected, RejectReason, storable
from monitor.timeline import TimelineGuard

# Event times beyond this (epoch seconds, about the year 5138) are refused: nothing real is that far out.
MAX_ABS_TS = 1e11


class UnitAligner(UnitRing):
    """One unit's aligner: the door in front of its ring (see the module docstring). Not thread-safe."""

    def __init__(self, name: str, spec: UnitSpec, keep_rows: bool = False) -> None:
        super().__init__(name, spec, keep_rows)
        self.guard = (
            None
            if spec.max_clock_skew_s is None
            else TimelineGuard(spec.period_s, spec.max_lateness_s, spec.max_clock_skew_s, self.n_sensors)
        )

    # --- placing ---------------------------------------------------------------------------------------------
    def add(self, reading: Reading, out: AddResult) -> None:
        """One message: placed, refused, or held by the clock guard (see AddResult for the accounting)."""
        if not -MAX_ABS_TS < reading.ts < MAX_ABS_TS:  # also NaN; keeps row indices far inside int64
            self.refuse(reading, "schema", f"event time {reading.ts!r} out of range", out)
            return
        guard = self.guard
        if guard is None or guard.consistent(reading):
            self.admit(reading, out)
            return
        released, refused = guard.hold(reading)
        for r in refused:
            self.refuse(r, "clock", f"ts {r.ts:.3f} is off the unit's timeline", out)
        for r in released:
            self.admit(r, out)

    def admit(self, reading: Reading, out: AddResult) -> None:
        """Place one message and account for it; a placed one advances the clock guard's timeline."""
        first = len(out.rejections)
        if self.place(reading, out):
            out.accepted.append(self.name)
            out.values_refused.extend(out.rejections[first:])
            if self.guard is not None:
                for r in self.guard.advance(reading):
                    self.refuse(r, "clock", f"ts {r.ts:.3f} is off the unit's timeline", out)
        elif len(out.rejections) > first:
            out.refused.append(out.rejections[first])
        else:  # no values at all (the parser refuses these; the backtest's CSV row may have none)
            out.refused.append(Rejected("schema", f"{self.name}: no values", self.name))

    def refuse(self, reading: Reading, reason: RejectReason, detail: str, out: AddResult) -> None:
        """Refuse a whole message: one Rejected per value, and one for the message."""
        rejected = Rejected(reason, f"{self.name}: {detail}", self.name)
        out.rejections.extend([rejected] * max(1, len(reading.values)))
        out.refused.append(rejected)

    def place(self, reading: Reading, out: AddResult) -> bool:
        """Place a message's values; False when none was placed (each refused value is in out.rejections)."""
        k = self.row_of(reading.ts)
        closed = (self.closed_upto is not None and k <= self.closed_upto) or self.passed(k)
        marked = bool(reading.out_of_range) and self.mark(reading, k, closed, out)
        row: OpenRow | None = None
        for sensor, value in reading.values.items():
            i = self.index.get(sensor)
            if i is None:
                out.rejections.append(Rejected("unknown_sensor", f"{self.name}: sensor {sensor!r}", self.name))
                continue
            if not storable(value):  # the parser's rule; here for the backtest's CSV readings, which skip it
                out.rejections.append(Rejected("non_finite", f"{self.name}.{sensor}: {value!r}", self.name))
                continue
            if closed:
                slot = self.slot_of(k)
                reason: RejectReason = "duplicate" if slot is not None and self.observed[slot, i] else "late"
                out.rejections.append(Rejected(reason, f"{self.name}.{sensor} at ts {reading.ts}", self.name))
                continue
            if row is None:
                row = self.open.get(k)
                if row is None:
                    row = self.open[k] = OpenRow(self.n_sensors)
            if row.observed[i]:
                out.rejections.append(Rejected("duplicate", f"{self.name}.{sensor} at ts {reading.ts}", self.name))
                continue
            row.values[i] = float(value)
            row.observed[i] = True
            row.count += 1
            if row.marks is not None and row.marks.pop(i, None) is not None:
                row.count -= 1  # it was settled by its mark already; the value wins
            if reading.received_at > row.received_at:
                row.received_at = reading.received_at
            if reading.source_time > row.source_ts:
                row.source_ts = reading.source_time
        if row is None:
            # Nothing placed: neither the watermark nor the grid's phase changes; a row settled by marks closes.
            if marked:
                self.close_due(out, flush=False)
            return False
        if self.phase is None:
            self.phase = reading.ts % self.spec.period_s
        if reading.ts > self.max_ts:
            self.max_ts = reading.ts
        self.last_received_at = max(self.last_received_at, reading.received_at)
        self.close_due(out, flush=False)
        return True

    def mark(self, reading: Reading, k: int, closed: bool, out: AddResult) -> bool:
        """Count each out-of-range value and mark its sensor in row k where that row can still take it (see
        "Out of range" in the module docstring); True when row k was marked. The caller closes what is due."""
        for sensor, value in reading.out_of_range:
            out.rejections.append(
                Rejected("out_of_range", f"{self.name}.{sensor}: {value!r} outside its limits", self.name)
            )
        if closed or self.max_ts == -math.inf:
            return False
        row = self.open.get(k)
        if row is None:
            if k > self.row_of(self.max_ts) + 1:
                return False
            row = self.open[k] = OpenRow(self.n_sensors)
        for sensor, value in reading.out_of_range:
            i = self.index.get(sensor)
            if i is None or row.observed[i]:  # a value in range for this row came first: it wins
                continue
            if row.marks is None:
                row.marks = {}
            if i not in row.marks:
                row.count += 1
            row.marks[i] = float(value)
        # The message arrived for this row: the row's times are its arrival, as for a value.
        row.received_at = max(row.received_at, reading.received_at)
        row.source_ts = max(row.source_ts, reading.source_time)
        return True

    def drain_held(self, out: AddResult) -> None:
        """The end of the input: held readings can no longer be confirmed; refuse them."""
        if self.guard is not None:
            for r in self.guard.drain():
                self.refuse(r, "clock", f"ts {r.ts:.3f} is off the unit's timeline (end of input)", out)
