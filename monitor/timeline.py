"""Per-unit clock guard in front of the aligner: a reading off the unit's own timeline is held, never placed.

API (pure, owned by one unit's aligner in monitor.buffers.aligner)::

    guard = TimelineGuard(period_s=1.0, max_lateness_s=5.0, max_clock_skew_s=120.0, n_sensors=8)
    guard.consistent(reading) -> bool        # True: place it (the aligner then judges late / duplicate)
    guard.advance(reading) -> list[Reading]  # it was placed: the main timeline moves on; returns held readings
                                             # it contradicts (refuse them under "clock")
    guard.hold(reading) -> (released, refused)   # an inconsistent reading: held; released: an adopted candidate's
                                             # readings (place them, in this order); refused: readings to refuse
    guard.drain() -> list[Reading]           # the end of the input: every held reading (to refuse)
    guard.held                               # readings held now

Why. The aligner's watermark is the newest event time placed minus the lateness, so one reading stamped 100 s
ahead (within the parser's max_clock_skew_s) would make every genuine reading behind it ``late``, and a first
reading stamped ts = 1.0 would become the unit's origin (the next genuine one then closes 1.8e9 empty rows).

The main timeline is the newest placed reading (its ts and received_at: the anchor). A reading is consistent when
``ts <= anchor_ts + (received_at - anchor_received_at) + tol``, ``tol = max(max_lateness_s, period_s)``: event
time may advance as fast as the receive clock, plus a jump no larger than the lateness (which cannot make a
genuine reading late). A fast replay or a redelivered backlog advances ts by about one period per message, a
unit that resumes after a silence advances both clocks alike: both stay consistent. Anything older than the
anchor is consistent (the aligner refuses it as late or duplicate). Before the unit's first placed reading,
a reading is consistent when ``-max_clock_skew_s <= ts - received_at <= tol``: close to the receive clock.

An inconsistent reading is held. Held readings that agree with each other (each within ``tol`` behind and the
same rule ahead of the newest of them) form a candidate timeline; at most MAX_CANDIDATES, of at most
``CANDIDATE_ROWS * n_sensors`` readings each. A candidate is adopted when its readings cover CANDIDATE_ROWS
distinct rows while the main timeline placed nothing since it began: its readings are released in event-time
order, its newest becomes the anchor. Any reading the main timeline places contradicts every candidate: their
readings are refused. So a gateway with a bad clock interleaved with a genuine stream is never followed (it
costs its own readings, each counted as ``clock``), while a legitimate clock step, a historical replay into a
fresh service, a first reading far from the clock (ts = 1.0) followed by more of its kind, or a gap inside a fast
backlog are followed after CANDIDATE_ROWS rows (their first rows wait that long).

Limits, on purpose: a source whose readings run ahead faster than the receive clock (a replay) is followed, so a
burst of CANDIDATE_ROWS rows in a timeline of its own with no main-timeline reading among them is adopted; the
backtest (received_at = ts) never holds anything. A clock stepping back is not followed: its readings are
consistent and the aligner refuses them as ``late`` until its time catches up (event time never goes back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from monitor.messages import Reading

# Distinct rows a candidate timeline needs before it is adopted: one reading (or one row's per-sensor messages,
# which arrive in a burst) is never enough, and a clock step or a replay is followed within a few periods.
CANDIDATE_ROWS = 3
# Candidate timelines held at once: a far-off reading interleaved with a replay into a fresh service must not
# evict the replay's candidate. A third evicts the oldest.
MAX_CANDIDATES = 2


@dataclass(slots=True)
class _Candidate:
    first_ts: float
    newest_ts: float
    newest_received_at: float
    readings: list[Reading] = field(default_factory=list)
    rows: set[int] = field(default_factory=set)


class TimelineGuard:
    """One unit's main timeline and its held candidates (see the module docstring)."""

    def __init__(self, period_s: float, max_lateness_s: float, max_clock_skew_s: float, n_sensors: int) -> None:
        self.period_s = period_s
        self.tol = max(max_lateness_s, period_s)
        self.max_clock_skew_s = max_clock_skew_s
        self.max_held_per_candidate = CANDIDATE_ROWS * max(1, n_sensors)
        self.anchor_ts = -math.inf
        self.anchor_received_at = -math.inf
        self.started = False  # whether the main timeline has placed a reading
        self.candidates: list[_Candidate] = []

    @property
    def held(self) -> int:
        return sum(len(c.readings) for c in self.candidates)

    def consistent(self, reading: Reading) -> bool:
        if not self.started:
            return -self.max_clock_skew_s <= reading.ts - reading.received_at <= self.tol
        return reading.ts <= self._reach(self.anchor_ts, self.anchor_received_at, reading)

    def _reach(self, ts: float, received_at: float, reading: Reading) -> float:
        """The newest event time a timeline at (ts, received_at) allows for ``reading``: its pace plus the tolerance."""
        return ts + (reading.received_at - received_at) + self.tol

    def advance(self, reading: Reading) -> list[Reading]:
        """``reading`` was placed: it moves the anchor, and contradicts every candidate (returned, to refuse)."""
        self.started = True
        if reading.ts > self.anchor_ts:
            self.anchor_ts = reading.ts
            self.anchor_received_at = reading.received_at
        return self._drop_all()

    def hold(self, reading: Reading) -> tuple[list[Reading], list[Reading]]:
        """Hold an inconsistent reading; returns (released, refused)."""
        refused: list[Reading] = []
        cand = next((c for c in self.candidates if self._fits(c, reading)), None)
        if cand is None:
            if len(self.candidates) >= MAX_CANDIDATES:
                refused.extend(self.candidates.pop(0).readings)
            cand = _Candidate(reading.ts, reading.ts, reading.received_at)
            self.candidates.append(cand)
        elif len(cand.readings) >= self.max_held_per_candidate:
            return [], [reading]  # the hold is bounded: repeats of rows already held add nothing
        cand.readings.append(reading)
        cand.rows.add(math.floor((reading.ts - cand.first_ts) / self.period_s + 0.5))
        if reading.ts > cand.newest_ts:
            cand.newest_ts = reading.ts
            cand.newest_received_at = reading.received_at
        if len(cand.rows) < CANDIDATE_ROWS:
            return [], refused
        # Adopted: nothing of the main timeline was placed since it began (that would have dropped it).
        self.candidates.remove(cand)
        refused.extend(self._drop_all())
        self.started = True
        self.anchor_ts = cand.newest_ts
        self.anchor_received_at = cand.newest_received_at
        released = sorted(cand.readings, key=lambda r: r.ts)  # stable: arrival order within one ts
        return released, refused

    def drain(self) -> list[Reading]:
        return self._drop_all()

    def _fits(self, cand: _Candidate, reading: Reading) -> bool:
        return cand.newest_ts - self.tol <= reading.ts <= self._reach(cand.newest_ts, cand.newest_received_at, reading)

    def _drop_all(self) -> list[Reading]:
        if not self.candidates:
            return []
        dropped = [r for c in self.candidates for r in c.readings]
        self.candidates.clear()
        return dropped
