"""What the buffers hand back: AddResult (one add or flush) and ClosedRow (a row as it closed, for the recording).

API::

    result = buffers.add(reading)              # monitor.buffers.ring_buffers.RingBuffers -> AddResult
    result.accepted, result.refused, result.values_refused, result.rejections, result.jobs, result.records,
    result.skipped, result.rows                # (the fields' rules: monitor.buffers.ring_buffers)
    total.merge(result)                        # the backtest and flush add results up
    ClosedRow(unit, ts, values)                # with keep_rows: monitor.recording writes these

Apart so that the consumers (the buffer stage, the recording, the backtest) import the records without the
aligner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.messages import Rejected, SkipReason, WindowJob

# Why a due window was not emitted (label set of plantwatch_windows_skipped_total{reason} for this stage).
SKIP_GAP: SkipReason = "gap"


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
    rows: list[ClosedRow] = field(default_factory=list)  # only with keep_rows (monitor.buffers.ring, "Closed rows")

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
