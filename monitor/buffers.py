"""Per-unit ring buffers and the event-time aligner: readings in, complete windows out.

API (pure, single-threaded; the buffer thread and the backtest own one instance each)::

    buffers = RingBuffers({"R1": UnitSpec(sensors=("a", "b"), period_s=1.0, window_rows=64)})
    result = buffers.add(reading)      # -> AddResult(rejections, accepted, refused, values_refused, jobs, ...)
    result.accepted, result.refused    # per message: the unit of each one placed; one Rejected per one refused
                                       # whole (its first refused value's reason); a held one is in neither yet
    result.values_refused              # values refused inside accepted messages
    result.jobs                        # WindowJobs that became due, oldest first, window [W, S] float32 (a copy)
    result.records                     # what goes on to scoring, in event-time order: the jobs, and a health-only
                                       # WindowJob (valid=False) per gap-skipped row (see "Silence" below)
    result.rejections                  # Rejected per refused value: out_of_range (Reading.out_of_range, refused
                                       # by ingest's limits), late, duplicate, clock, and (what ingest should
                                       # have caught) unknown_unit, unknown_sensor, non_finite, schema
    result.skipped                     # {"gap": n}: closed rows whose window held an invalid row, not emitted
    result.rows                        # with RingBuffers(specs, keep_rows=True): each closed row that received a
                                       # value, as ClosedRow(unit, ts, values) (the service's recording)
    buffers.flush("R1")                # refuse held readings, close every open row (end of a CSV); None: all
    buffers.held("R1")                 # readings the clock guard holds now
    buffers.fill("R1")                 # 0..1, share of the ring holding closed rows (a metric)

Clock guard. With ``UnitSpec.max_clock_skew_s`` set (the service and the backtest set it from
limits.max_clock_skew_s), every reading first passes the unit's monitor.timeline.TimelineGuard: a reading ahead of
the unit's own cadence (or a first reading far from the receive clock) is held, not placed, so it can neither move
the watermark past the genuine stream nor become the unit's origin; held readings are placed once a few rows of
them agree and nothing contradicts them (a clock step, a replay), else refused as ``clock``. The backtest's
readings (received_at = ts) are never held.

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

A reading for a closed row is refused: ``duplicate`` if that sensor was observed in that row and the row is still in
the ring (a QoS 1 redelivery), else ``late``. The same sensor twice in an open row is a ``duplicate``; the first
value wins. A sensor missing from a closing row takes its last observed value for at most ``max_gap_periods`` rows
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

Out of range. A value ingest refused as outside its sensor's limits comes as ``Reading.out_of_range`` (monitor.
validation): each is one ``out_of_range`` rejection, listed before the message's other refused values (so a message
whose every value was out of range is refused whole under ``out_of_range``), and the sensor is missing for that row,
marked "out of range": the hold-over rule above applies (the models see the last good value, then the windows are
skipped), and a marked sensor settles its row like a value does (a row whose other sensors are in closes at once).
A value placed for the sensor in the same row wins over the mark. Per sensor the buffers keep the newest refused
value of a marked row: while the latest evidence is such a mark, no more than ``max_gap_periods`` rows old, every
record (WindowJob and health-only) names the sensor in ``out_of_range`` with that value, and not in ``silent``; a
value in range clears it at once; a sensor that stops reporting at all becomes ``silent`` once the mark is older
than the hold-over. A mark only counts for a row that is still open, or a new row at most one past the unit's
newest placed reading (so an out-of-range stream cannot hold rows open ahead of the unit's time); one for a closed
or passed row, or before the unit's first placed reading, is counted and forgotten. The door's verdict comes first:
a redelivered message of out-of-range values counts as ``out_of_range`` again, not as ``duplicate``.

Closed rows (``keep_rows``, monitor/recording): each row that closes with at least one value placed is handed on
as it was received, NaN for a sensor with no value in it (no hold-over: that is the aligner's stand-in, not data),
in closing order, which is row order per unit. Rows that close empty (a silence) are not: a recording shows the
silence as missing row times.

Memory per unit: the ring ``[capacity_rows, S]`` float32 plus row times and flags, preallocated, plus at most about
``max_lateness_s / period_s + 2`` open rows; it does not grow with traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitor.messages import Reading, Rejected, RejectReason, SkipReason, WindowJob, storable
from monitor.timeline import TimelineGuard

# Why a due window was not emitted (label set of plantwatch_windows_skipped_total{reason} for this stage).
SKIP_GAP: SkipReason = "gap"
# Event times beyond this (epoch seconds, about the year 5138) are refused: nothing real is that far out.
MAX_ABS_TS = 1e11


# After a reconnect the broker resends the QoS 1 messages the service had not acknowledged (mosquitto keeps up to
# max_inflight_messages = 20 in flight per client), and a reconnecting publisher resends its own unacknowledged
# ones: they land up to a few dozen rows behind the newest. Keeping that many closed rows lets the ring recognise
# them as duplicates instead of counting them as late. 64 rows x 8 sensors x 4 B is 2 KiB a unit.
REDELIVERY_MARGIN_ROWS = 64


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """How one unit's readings are aligned and windowed (converted from the unit's config by the caller).

    window_rows: rows in each WindowJob, the largest window of the unit's models (see scoring.required_window_rows).
    capacity_rows: ring size; None means ``window_rows + max(window_rows, REDELIVERY_MARGIN_ROWS)``. It bounds how
    far back a redelivery is recognised as a duplicate rather than late.
    """

    sensors: tuple[str, ...]
    period_s: float = 1.0
    origin_s: float | None = None  # a time on the row grid (only its phase counts); None: the first reading's
    max_lateness_s: float = 5.0
    max_gap_periods: int = 3
    window_rows: int = 64
    capacity_rows: int | None = None
    # Rows of a silence closed in bulk that yield a health record each after the first row past the hold-over
    # (the alert policy's fire_window: enough for k of n to fire); then one more for the span's last row.
    silent_rows: int = 5
    # The clock guard (monitor.timeline): a first reading may lag the receive clock by this much. None: no guard,
    # readings are judged by event time alone (the aligner's own tests).
    max_clock_skew_s: float | None = None

    def __post_init__(self) -> None:
        if not self.sensors:
            raise ValueError("a unit needs at least one sensor")
        if len(set(self.sensors)) != len(self.sensors):
            raise ValueError(f"sensor names must be unique, got {list(self.sensors)}")
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"period_s must be a positive number, got {self.period_s}")
        if self.origin_s is not None and not math.isfinite(self.origin_s):
            raise ValueError(f"origin_s must be a finite number, got {self.origin_s}")
        if not (math.isfinite(self.max_lateness_s) and self.max_lateness_s >= 0):
            raise ValueError(f"max_lateness_s must be >= 0, got {self.max_lateness_s}")
        if self.max_gap_periods < 0:
            raise ValueError(f"max_gap_periods must be >= 0, got {self.max_gap_periods}")
        if self.window_rows < 1:
            raise ValueError(f"window_rows must be >= 1, got {self.window_rows}")
        if self.capacity_rows is not None and self.capacity_rows < self.window_rows:
            raise ValueError(f"capacity_rows {self.capacity_rows} is smaller than window_rows {self.window_rows}")
        if self.silent_rows < 0:
            raise ValueError(f"silent_rows must be >= 0, got {self.silent_rows}")
        skew = self.max_clock_skew_s
        if skew is not None and not (math.isfinite(skew) and skew >= 0):
            raise ValueError(f"max_clock_skew_s must be >= 0, got {self.max_clock_skew_s}")

    @property
    def capacity(self) -> int:
        if self.capacity_rows is not None:
            return self.capacity_rows
        return self.window_rows + max(self.window_rows, REDELIVERY_MARGIN_ROWS)


@dataclass(frozen=True, slots=True)
class ClosedRow:
    """An aligned row as it closed: its event time (the unit's row grid) and the values placed in it, config sensor
    order, NaN where a sensor had none. ``values`` is the row's own list, handed over (nothing else holds it)."""

    unit: str
    ts: float
    values: list[float]


@dataclass(slots=True)
class AddResult:
    """What one ``add`` (or ``flush``) produced.

    Per message (a Reading): each one placed or refused lands in exactly one of ``accepted`` (its unit) and
    ``refused`` (one Rejected, the reason of its first refused value); a held one (monitor.timeline) in neither
    until a later call places or refuses it. Per value: ``rejections`` lists every refused value, ``values_refused``
    those refused inside accepted messages."""

    rejections: list[Rejected] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    refused: list[Rejected] = field(default_factory=list)
    values_refused: list[Rejected] = field(default_factory=list)
    jobs: list[WindowJob] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    # Everything due for scoring, in event-time order per unit: every job above, and the health-only records.
    records: list[WindowJob] = field(default_factory=list)
    rows: list[ClosedRow] = field(default_factory=list)  # only with keep_rows (see the module docstring)

    def merge(self, other: AddResult) -> None:
        self.rejections.extend(other.rejections)
        self.accepted.extend(other.accepted)
        self.refused.extend(other.refused)
        self.values_refused.extend(other.values_refused)
        self.jobs.extend(other.jobs)
        self.records.extend(other.records)
        self.rows.extend(other.rows)
        for reason, n in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n


class _OpenRow:
    """A row still receiving readings."""

    __slots__ = ("count", "marks", "newest_ts", "observed", "received_at", "values")

    def __init__(self, n_sensors: int) -> None:
        self.values = [math.nan] * n_sensors
        self.observed = [False] * n_sensors
        self.count = 0  # sensors observed; + len(marks): sensors settled (the row is complete when all are)
        self.marks: dict[int, float] | None = None  # sensor index -> newest value refused as out of range
        self.received_at = -math.inf
        self.newest_ts = -math.inf


class _Unit:
    """One unit's aligner and ring. Not thread-safe: owned by one thread."""

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
        self.open: dict[int, _OpenRow] = {}
        self.max_ts = -math.inf
        # Phase of the row grid in [0, period): configured, or set by the first reading placed (see the docstring).
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
        self.guard = (
            None
            if spec.max_clock_skew_s is None
            else TimelineGuard(spec.period_s, spec.max_lateness_s, spec.max_clock_skew_s, self.n_sensors)
        )

    # --- placing ---------------------------------------------------------------------------------------------
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
        row: _OpenRow | None = None
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
                    row = self.open[k] = _OpenRow(self.n_sensors)
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
            if reading.ts > row.newest_ts:
                row.newest_ts = reading.ts
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
            row = self.open[k] = _OpenRow(self.n_sensors)
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
        row.newest_ts = max(row.newest_ts, reading.ts)
        return True

    def drain_held(self, out: AddResult) -> None:
        """The end of the input: held readings can no longer be confirmed; refuse them."""
        if self.guard is not None:
            for r in self.guard.drain():
                self.refuse(r, "clock", f"ts {r.ts:.3f} is off the unit's timeline (end of input)", out)

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

    def close_row(self, k: int, row: _OpenRow | None, out: AddResult) -> None:
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
            source_ts = row.newest_ts if row is not None else row_ts
            job = WindowJob(self.name, row_ts, self.window(w), received_at, source_ts, out_of_range=self.flagged())
            out.jobs.append(job)
            out.records.append(job)
        elif self.rows_closed >= w:
            out.skipped[SKIP_GAP] = out.skipped.get(SKIP_GAP, 0) + 1
            self.health_record(k, row, slot, out)

    def health_record(self, k: int, row: _OpenRow | None, slot: int, out: AddResult) -> None:
        """The health-only record of gap-skipped row k (ring slot ``slot``): its newest row, its silent sensors and
        its out-of-range ones (a sensor out of range is not also silent)."""
        row_ts = self.row_ts(k)  # the row time of close_row's jobs: the unit's own grid
        received_at = row.received_at if row is not None else self.last_received_at
        source_ts = row.newest_ts if row is not None else row_ts
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


def _refuse_unknown_unit(reading: Reading, out: AddResult) -> None:
    rejected = Rejected("unknown_unit", f"unit {reading.unit!r}", None)
    out.rejections.append(rejected)
    out.refused.append(rejected)


class RingBuffers:
    """Every configured unit's aligner and ring buffer (see the module docstring)."""

    def __init__(self, specs: Mapping[str, UnitSpec], keep_rows: bool = False) -> None:
        """``keep_rows``: hand each closed row on in ``AddResult.rows`` (the recording; see the module docstring)."""
        self._units = {name: _Unit(name, spec, keep_rows) for name, spec in specs.items()}

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self._units)

    def spec(self, unit: str) -> UnitSpec:
        return self._units[unit].spec

    def add(self, reading: Reading) -> AddResult:
        """Place one reading; returns the refused values, the windows that became due and the skipped count."""
        out = AddResult()
        state = self._units.get(reading.unit)
        if state is None:
            _refuse_unknown_unit(reading, out)
            return out
        state.add(reading, out)
        return out

    def add_many(self, readings: Iterable[Reading]) -> AddResult:
        """``add`` for each reading, results merged (the backtest's path)."""
        out = AddResult()
        for reading in readings:
            state = self._units.get(reading.unit)
            if state is None:
                _refuse_unknown_unit(reading, out)
                continue
            state.add(reading, out)
        return out

    def flush(self, unit: str | None = None) -> AddResult:
        """Close every open row of one unit (or of all units): the end of the input."""
        out = AddResult()
        names = self._units if unit is None else [unit]
        for name in names:
            self._units[name].drain_held(out)
            self._units[name].close_due(out, flush=True)
        return out

    def held(self, unit: str) -> int:
        """Readings of the unit the clock guard holds now (neither placed nor refused yet)."""
        guard = self._units[unit].guard
        return 0 if guard is None else guard.held

    def fill(self, unit: str) -> float:
        """Share (0..1) of the unit's ring holding closed rows."""
        return self._units[unit].fill()

    def watermark(self, unit: str) -> float:
        """The unit's watermark in event time (-inf before its first reading)."""
        state = self._units[unit]
        return state.max_ts - state.spec.max_lateness_s
