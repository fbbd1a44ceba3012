"""RingBuffers: every configured unit's aligner and ring buffer: readings in, complete windows out.

API (pure, single-threaded; the buffer thread and the backtest own one instance each)::

    buffers = RingBuffers({"R1": UnitSpec(sensors=("a", "b"), period_s=1.0, window_rows=64)})
    result = buffers.add(reading)      # -> AddResult(rejections, accepted, refused, values_refused, jobs, ...)
    result.accepted, result.refused    # per message: the unit of each one placed; one Rejected per one refused
                                       # whole (its first refused value's reason); a held one is in neither yet
    result.values_refused              # values refused inside accepted messages
    result.jobs                        # WindowJobs that became due, oldest first, window [W, S] float32 (a copy)
    result.records                     # what goes on to scoring, in event-time order: the jobs, and a health-only
                                       # WindowJob (valid=False) per gap-skipped row (monitor.buffers.ring, "Silence")
    result.rejections                  # Rejected per refused value: out_of_range (Reading.out_of_range, refused
                                       # by ingest's limits), late, duplicate, clock, and (what ingest should
                                       # have caught) unknown_unit, unknown_sensor, non_finite, schema
    result.skipped                     # {"gap": n}: closed rows whose window held an invalid row, not emitted
    result.rows                        # with RingBuffers(specs, keep_rows=True): each closed row that received a
                                       # value, as ClosedRow(unit, ts, values) (the service's recording)
    buffers.flush("R1")                # refuse held readings, close every open row (end of a CSV); None: all
    buffers.held("R1")                 # readings the clock guard holds now
    buffers.fill("R1")                 # 0..1, share of the ring holding closed rows (a metric)

The rules (what is held, refused, placed, closed, windowed, skipped) live with the per-unit classes:
monitor.buffers.aligner (the clock guard, late and duplicate, out of range) and monitor.buffers.ring (the row grid,
hold-over, silence, closed rows, memory). Apart from them because this is the multi-unit face the buffer stage
(monitor.stages) and the backtest call: it routes each reading to its unit and refuses an unknown one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from monitor.buffers.aligner import UnitAligner
from monitor.buffers.results import AddResult
from monitor.buffers.unit_spec import UnitSpec
from monitor.messages import Reading, Rejected


def _refuse_unknown_unit(reading: Reading, out: AddResult) -> None:
    rejected = Rejected("unknown_unit", f"unit {reading.unit!r}", None)
    out.rejections.append(rejected)
    out.refused.append(rejected)


class RingBuffers:
    """Every configured unit's aligner and ring buffer (see the module docstring)."""

    def __init__(self, specs: Mapping[str, UnitSpec], keep_rows: bool = False) -> None:
        """``keep_rows``: hand each closed row on in ``AddResult.rows`` (the recording; monitor.buffers.ring,
        "Closed rows")."""
        self._units = {name: UnitAligner(name, spec, keep_rows) for name, spec in specs.items()}

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
