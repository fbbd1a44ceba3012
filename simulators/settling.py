"""How long a process fault's effect outlasts its label: the run against its fault-free twin.

A label ends with the fault's cause (the valve frees, the feed temperature steps back), but the plant takes
minutes to hours to recover from what the fault did to it. The simulator knows the plant it would have had: the
same scenario without faults, with the same seed, start and noise (simulators.simulation draws parameters,
disturbances, noise and fault randomness from separate streams, and the faults draw nothing the plant uses), so
``faulty - twin`` is exactly 0 before a unit's first fault and afterwards is the fault's effect alone, noise-free.

API (simulators.simulation.simulate calls it when a run has a process fault)::

    labels = settle_labels(labels, timestamps, data, units, twin_chunks, tolerance, end_epoch, period_s)

Rule (the control engineer's settling time: the time after which the error reaches and stays within a band):
a process fault's ``settled`` is the first sample time from which every sensor of its unit stays within
``tolerance`` of the twin until the cap, where the cap is the start of the unit's next fault (whose effect would
mix in) or the end of the data. The band must be seen held for at least :data:`HOLD_S`; a unit back in it for
less before the cap is taken as not yet settled (``settled`` = the cap, a lower bound). A unit that never left
the band after ``end`` has ``settled = end``. Sensor faults act on the measurement only (the process and the
controller never see them): their ``settled`` is their ``end``, unchanged.

The band (:func:`reactor_tolerance`): :data:`TOLERANCE_FRACTION` of each sensor's fault scale
(simulators.reactor.REACTOR_FAULT_SCALE, "a typical change an operator would notice", the size of the
catalogue's default bias). A quarter of it is 1.7 to 3.3 times each sensor's measurement noise sd, so a
difference inside the band is what a single reading of the normal plant can show, and one outside it is a
visibly different plant. A tighter band (the noise sd itself) would make the spans longer and excuse more
alarms; this one errs on the side of counting them false.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from monitor.wire.labels import Label
from simulators.faults import REACTOR_SENSOR_SCALES, is_process_fault

FloatArray = npt.NDArray[np.float64]

TOLERANCE_FRACTION = 0.25  # of each sensor's fault scale
HOLD_S = 300.0  # the band must be seen held this long before the cap to count as settled


class TwinMismatch(RuntimeError):
    """The twin differs from the run before any fault: the random streams no longer line up."""


def reactor_tolerance(sensors: Sequence[str]) -> FloatArray:
    """The band per sensor, in its own units (reactor sensors)."""
    return np.asarray([TOLERANCE_FRACTION * REACTOR_SENSOR_SCALES[s] for s in sensors], dtype=np.float64)


def settle_labels(
    labels: Sequence[Label],
    timestamps: FloatArray,
    data: FloatArray,
    units: Sequence[str],
    twin_chunks: Iterable[tuple[FloatArray, FloatArray]],
    tolerance: FloatArray,
    end_epoch: float,
    period_s: float,
) -> tuple[Label, ...]:
    """The labels with ``settled`` measured for process faults (see the module docstring).

    timestamps [T] and data [U, T, S] are the faulty run; twin_chunks yields (timestamps [n], data [U, n, S]) of
    the fault-free twin from the same start, in order (simulators.simulation.Simulation.chunks).
    """
    index = {u: i for i, u in enumerate(units)}
    watched = sorted({index[lab.unit] for lab in labels if is_process_fault(lab.kind)})
    if not watched:
        return tuple(labels)
    first_fault: dict[int, float] = {}
    for lab in labels:
        first_fault[index[lab.unit]] = min(first_fault.get(index[lab.unit], np.inf), lab.start)
    off = _off_band(timestamps, data, watched, twin_chunks, tolerance, first_fault, units)
    rows_of = {u: row for row, u in enumerate(watched)}
    out = []
    for lab in labels:
        if is_process_fault(lab.kind):
            cap = _cap(lab, labels, end_epoch)
            lab = replace(lab, settled=_settled(lab.end, cap, timestamps, off[rows_of[index[lab.unit]]], period_s))
        out.append(lab)
    return tuple(out)


def _off_band(
    timestamps: FloatArray,
    data: FloatArray,
    watched: list[int],
    twin_chunks: Iterable[tuple[FloatArray, FloatArray]],
    tolerance: FloatArray,
    first_fault: dict[int, float],
    units: Sequence[str],
) -> npt.NDArray[np.bool_]:
    """[len(watched), T]: True where some sensor of the unit is outside the band around the twin."""
    n = timestamps.shape[0]
    off = np.zeros((len(watched), n), dtype=bool)
    done = 0
    for twin_ts, twin in twin_chunks:
        take = min(twin_ts.shape[0], n - done)
        if not np.array_equal(twin_ts[:take], timestamps[done : done + take]):
            raise TwinMismatch("the twin's timestamps differ from the run's")
        diff = data[watched, done : done + take] - twin[watched, :take]  # [W, take, S]
        for row, unit in enumerate(watched):
            clean = twin_ts[:take] < first_fault[unit]
            if np.any(diff[row, clean] != 0.0):
                raise TwinMismatch(f"{units[unit]}: the twin differs from the run before its first fault")
        off[:, done : done + take] = np.any(np.abs(diff) > tolerance, axis=-1)
        done += take
        if done >= n:
            break
    return off


def _cap(lab: Label, labels: Sequence[Label], end_epoch: float) -> float:
    """The start of the unit's next fault still active after this one ends (its effect would mix in), or the end."""
    later = [g.start for g in labels if g is not lab and g.unit == lab.unit and g.end > lab.end]
    return max(lab.end, min([end_epoch, *later]))


def _settled(end: float, cap: float, timestamps: FloatArray, off: npt.NDArray[np.bool_], period_s: float) -> float:
    """The first sample time in [end, cap] from which the unit stays in the band (module docstring)."""
    first, stop = np.searchsorted(timestamps, [end, cap], side="left")
    outside = np.flatnonzero(off[first:stop])
    if outside.size == 0:
        return end
    back = float(timestamps[first + outside[-1]]) + period_s  # the sample after the last one outside
    if cap - back < HOLD_S:
        return cap  # not seen back in the band long enough: a lower bound
    return max(end, back)
