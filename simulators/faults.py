"""The fault catalogue: sensor faults (applied to measurements) and process faults (inside the physics).

A fault is active on the half-open interval ``[start, start + duration)`` in seconds from the
start of the simulation; a sample at time t is faulty when start <= t < end. Every fault
becomes one ground-truth ``Label`` (monitor.wire.labels: ``unit,kind,start,end,settled,sensors``, epoch seconds;
``settled``, when the plant is back to normal, is measured for process faults by simulators.settling).

Sensor faults change only their own sensors; the process and the controller never see them:
  bias      value + magnitude (sensor units)
  drift     value + magnitude * (t - start + period) / duration (a ramp that reaches magnitude on the
            last faulty sample, and already moves the first)
  stuck     the last good value before start, held (magnitude unused)
  spikes    +-magnitude on about 2 % of samples, random signs
  noise     value + magnitude * N(0, 1)
  dropout   no reading at all: NaN offline, nothing published live (magnitude unused)

Process faults act on the reactor model and show in whichever signals the physics moves
(their ``sensors`` in the label are the ones expected to move most):
  cooling_degradation   jacket UA falls to (1 - magnitude) of clean, linearly over the first half
  valve_stuck           the coolant valve freezes where it is (magnitude unused)
  valve_stiction        the valve sticks until the command moves by magnitude (fraction of travel)
  feed_temp_step        feed temperature + magnitude K
  catalyst_deactivation reaction rate falls to (1 - magnitude) of nominal over the first half
  thermal_runaway       a contaminant switches on the product's decomposition (magnitude = its
                        strength, 1 = 400 kW at 350 K) over the first quarter; the heat outruns
                        the cooling and temperature and pressure accelerate
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.reactor import REACTOR_FAULT_SCALE, REACTOR_SENSORS

FloatArray = npt.NDArray[np.float64]

SENSOR_FAULT_KINDS: tuple[str, ...] = ("bias", "drift", "stuck", "spikes", "noise", "dropout")
PROCESS_FAULT_KINDS: tuple[str, ...] = (
    "cooling_degradation",
    "valve_stuck",
    "valve_stiction",
    "feed_temp_step",
    "catalyst_deactivation",
    "thermal_runaway",
)
FAULT_KINDS: tuple[str, ...] = SENSOR_FAULT_KINDS + PROCESS_FAULT_KINDS

# Default magnitude of a sensor fault, as a multiple of the sensor's fault scale.
_SENSOR_MAGNITUDE_SCALE: dict[str, float] = {
    "bias": 1.0,
    "drift": 2.0,
    "stuck": 0.0,
    "spikes": 4.0,
    "noise": 1.0,
    "dropout": 0.0,
}
PROCESS_DEFAULT_MAGNITUDE: dict[str, float] = {
    "cooling_degradation": 0.6,
    "valve_stuck": 0.0,
    "valve_stiction": 0.04,
    "feed_temp_step": 15.0,
    "catalyst_deactivation": 0.5,
    "thermal_runaway": 1.0,
}
# The reactor sensors each process fault moves most (the label's `sensors`).
PROCESS_FAULT_SENSORS: dict[str, tuple[str, ...]] = {
    "cooling_degradation": ("reactor_temp_K", "jacket_temp_K", "coolant_flow_m3_h", "pressure_bar"),
    "valve_stuck": ("coolant_flow_m3_h", "reactor_temp_K", "jacket_temp_K"),
    "valve_stiction": ("coolant_flow_m3_h", "reactor_temp_K", "jacket_temp_K"),
    "feed_temp_step": ("feed_temp_K", "reactor_temp_K", "coolant_flow_m3_h", "jacket_temp_K"),
    "catalyst_deactivation": ("concentration_kmol_m3", "coolant_flow_m3_h", "jacket_temp_K"),
    "thermal_runaway": ("reactor_temp_K", "pressure_bar", "jacket_temp_K", "concentration_kmol_m3"),
}
# Default sensor of a sensor fault on a reactor unit when the scenario names none.
DEFAULT_FAULT_SENSOR = "reactor_temp_K"
SPIKE_PROBABILITY = 0.02


def is_process_fault(kind: str) -> bool:
    return kind in PROCESS_FAULT_KINDS


def default_magnitude(kind: str, sensor_scales: dict[str, float], sensors: tuple[str, ...]) -> float:
    """A fault's magnitude when the scenario gives none (sensor faults: in the first sensor's units)."""
    if kind in PROCESS_DEFAULT_MAGNITUDE:
        return PROCESS_DEFAULT_MAGNITUDE[kind]
    scale = sensor_scales.get(sensors[0], 1.0) if sensors else 1.0
    return _SENSOR_MAGNITUDE_SCALE[kind] * scale


REACTOR_SENSOR_SCALES: dict[str, float] = dict(zip(REACTOR_SENSORS, REACTOR_FAULT_SCALE, strict=True))


@dataclass(frozen=True)
class Fault:
    """One injected fault. ``start_s`` is seconds after the simulation start."""

    kind: str
    unit: str
    start_s: float
    duration_s: float
    magnitude: float
    sensors: tuple[str, ...]

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


def ramp(t_s: FloatArray, fault: Fault, fraction: float) -> FloatArray:
    """0 before the fault, rising linearly to 1 over ``fraction`` of its duration, 1 after; 0 again after the end."""
    rise_s = max(fault.duration_s * fraction, 1e-9)
    progress = np.clip((t_s - fault.start_s) / rise_s, 0.0, 1.0)
    active = (t_s >= fault.start_s) & (t_s < fault.end_s)
    out: FloatArray = np.where(active, progress, 0.0)
    return out


class SensorFaultApplier:
    """Applies the sensor faults of a simulation chunk by chunk (so a streamed run equals an offline one).

    It remembers the value a ``stuck`` fault holds across chunk boundaries and draws spikes and
    noise from its own generator, in chunk order.
    """

    def __init__(
        self,
        faults: list[tuple[int, Fault]],
        sensors: tuple[str, ...],
        rng: np.random.Generator,
        period_s: float = 1.0,
    ) -> None:
        """faults: (unit index, fault) pairs, sensor faults only, in scenario order."""
        self._faults = faults
        self._period_s = period_s
        self._sensor_index = {name: i for i, name in enumerate(sensors)}
        self._rng = rng
        self._stuck_values: dict[int, FloatArray] = {}
        self._previous_row: FloatArray | None = None  # [U, S] clean row before the current chunk

    def apply(self, t_s: FloatArray, data: FloatArray) -> None:
        """Apply in place. t_s: [T] seconds since start; data: [U, T, S] clean measurements."""
        clean_last = data[:, -1, :].copy()
        clean = data.copy() if any(f.kind == "stuck" for _, f in self._faults) else data
        for number, (unit, fault) in enumerate(self._faults):
            active = (t_s >= fault.start_s) & (t_s < fault.end_s)
            if not active.any():
                continue
            columns = np.asarray([self._sensor_index[name] for name in fault.sensors], dtype=np.intp)
            rows = np.flatnonzero(active)
            block = data[unit][np.ix_(rows, columns)]  # [n, k]
            if fault.kind == "bias":
                block = block + fault.magnitude
            elif fault.kind == "drift":
                block = (
                    block + (fault.magnitude * (t_s[rows] - fault.start_s + self._period_s) / fault.duration_s)[:, None]
                )
            elif fault.kind == "stuck":
                if number not in self._stuck_values:
                    first = int(rows[0])
                    if first > 0:
                        held = clean[unit, first - 1, columns]
                    elif self._previous_row is not None:
                        held = self._previous_row[unit, columns]
                    else:
                        held = clean[unit, 0, columns]
                    self._stuck_values[number] = np.asarray(held, dtype=np.float64).copy()
                block = np.broadcast_to(self._stuck_values[number], block.shape).copy()
            elif fault.kind == "spikes":
                hit = self._rng.random(block.shape) < SPIKE_PROBABILITY
                sign = np.where(self._rng.random(block.shape) < 0.5, -1.0, 1.0)
                block = block + hit * sign * fault.magnitude
            elif fault.kind == "noise":
                block = block + fault.magnitude * self._rng.standard_normal(block.shape)
            elif fault.kind == "dropout":
                block = np.full_like(block, np.nan)
            else:  # pragma: no cover - the scenario validator admits only known kinds
                raise ValueError(f"not a sensor fault: {fault.kind!r}")
            data[unit][np.ix_(rows, columns)] = block
        self._previous_row = clean_last
