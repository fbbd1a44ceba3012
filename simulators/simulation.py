"""Runs a scenario: parameters, disturbances, physics, noise and faults -> measurements and labels.

The simulation advances in fixed chunks of :data:`CHUNK_S` seconds, whether it runs offline
(:func:`simulate`) or streams to a broker (:class:`Simulation`'s :meth:`~Simulation.chunks`), so
both give identical numbers for the same scenario, seed and start time.

Random streams are split from one ``np.random.SeedSequence(seed)``: unit parameters,
disturbances, measurement noise and fault randomness each draw from their own generator, so
adding a fault does not change the noise of the other signals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from monitor.wire.labels import Label
from simulators import reactor
from simulators.faults import SENSOR_FAULT_KINDS, Fault, SensorFaultApplier, is_process_fault, ramp
from simulators.reactor import REACTOR_NOISE_SD, ReactorParams, ReactorState, StepInputs
from simulators.scenario import Scenario
from simulators.seed_profile import SEED_NOISE_SD, seed_means
from simulators.settling import reactor_tolerance, settle_labels

FloatArray = npt.NDArray[np.float64]

# 2026-01-01T00:00:00Z: the default start of offline runs, so output does not depend on the clock.
DEFAULT_START_EPOCH = 1767225600.0
# Simulated seconds per chunk (fewer for many units). The chunking depends only on the scenario,
# so offline and streamed runs draw the same random numbers in the same order.
CHUNK_S = 3600.0
_DAY_S = 86400.0
SCALAR_MAX_UNITS = 8


@dataclass(frozen=True)
class SimResult:
    """The output of an offline run.

    timestamps: [T] epoch seconds; data: [U, T, S] in sensor units, NaN where a dropout fault
    removed a reading; labels: one per injected fault, clipped to the simulated interval, process faults with
    their measured ``settled`` (simulators.settling).
    """

    scenario: Scenario
    timestamps: FloatArray
    units: tuple[str, ...]
    sensors: tuple[str, ...]
    data: FloatArray
    labels: tuple[Label, ...]
    period_s: float

    def unit_index(self, unit: str) -> int:
        try:
            return self.units.index(unit)
        except ValueError:
            raise ValueError(f"unknown unit {unit!r}; units: {', '.join(self.units[:10])}") from None

    def unit_data(self, unit: str) -> FloatArray:
        """One unit's measurements: [T, S]."""
        out: FloatArray = self.data[self.unit_index(unit)]
        return out

    def label_mask(self) -> npt.NDArray[np.bool_]:
        """[U, T] True where any ground-truth fault is active (start <= t < end)."""
        mask = np.zeros(self.data.shape[:2], dtype=bool)
        for label in self.labels:
            mask[self.unit_index(label.unit)] |= (self.timestamps >= label.start) & (self.timestamps < label.end)
        return mask


def fault_labels(scenario: Scenario, start_epoch: float, end_epoch: float | None = None) -> tuple[Label, ...]:
    """Ground-truth labels for the scenario's faults; with ``end_epoch``, clipped to the run (empty ones dropped)."""
    labels = []
    for fault in scenario.faults:
        start = start_epoch + fault.start_s
        end = start_epoch + fault.end_s
        if end_epoch is not None:
            if start >= end_epoch:
                continue
            end = min(end, end_epoch)
        labels.append(Label(fault.unit, fault.kind, start, end, fault.sensors))
    return tuple(labels)


class _Disturbances:
    """Slow, smooth per-unit disturbances: sums of random sines of absolute time (so chunks join up)."""

    def __init__(self, n_units: int, scale: float, rng: np.random.Generator) -> None:
        shape = (3, n_units)  # three components each
        self.scale = scale
        self.periods_s = rng.uniform(1800.0, 6 * 3600.0, size=(2, *shape))  # feed concentration, feed flow
        self.phases = rng.uniform(0.0, 2 * np.pi, size=(2, *shape))
        self.amplitudes = rng.uniform(0.003, 0.012, size=(2, *shape))  # relative, summed over 3
        self.day_phase = rng.uniform(-0.5, 0.5, size=n_units)  # each site's ambient lags a little
        self.ambient_K = rng.uniform(2.0, 4.0, size=n_units)

    def at(self, t_epoch: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(feed concentration factor, feed flow factor, ambient offset K), each [len(t), U]."""
        t = t_epoch[:, None, None]  # [T, 1, 1] against [3, U]
        waves = []
        for which in range(2):
            terms = self.amplitudes[which] * np.sin(2 * np.pi * t / self.periods_s[which] + self.phases[which])
            waves.append(1.0 + self.scale * terms.sum(axis=1))
        ambient = self.scale * self.ambient_K * np.sin(2 * np.pi * (t_epoch[:, None] / _DAY_S + self.day_phase))
        return waves[0], waves[1], ambient


class Simulation:
    """A scenario in progress: yields measurement chunks for as long as asked.

    >>> from simulators.scenario import parse_scenario
    >>> sim = Simulation(parse_scenario({"units": 2}), seed=1)
    >>> timestamps, data = next(sim.chunks())
    >>> data.shape  # [U, T, S]: one hour of two reactors at 1 s
    (2, 3600, 8)
    """

    def __init__(self, scenario: Scenario, seed: int | None = None, start_epoch: float = DEFAULT_START_EPOCH) -> None:
        self.scenario = scenario
        self.seed = seed if seed is not None else (scenario.seed or 0)
        self.start_epoch = float(start_epoch)
        self.units = scenario.units
        self.sensors = scenario.sensors
        self.period_s = scenario.period_s
        self._samples_per_step = round(scenario.step_s / scenario.period_s)
        # Shorter chunks for many units bound the memory of one chunk (about 256 unit-hours).
        chunk_s = CHUNK_S * min(1.0, 256.0 / len(scenario.units))
        self._chunk_samples = self._samples_per_step * max(1, int(np.ceil(chunk_s / scenario.step_s)))
        streams = np.random.SeedSequence(self.seed).spawn(4)
        rng_params, rng_dist, self._rng_noise, rng_faults = (np.random.default_rng(s) for s in streams)
        n = len(self.units)
        unit_index = {u: i for i, u in enumerate(self.units)}
        self._process_faults = [(unit_index[f.unit], f) for f in scenario.faults if f.kind not in SENSOR_FAULT_KINDS]
        sensor_faults = [(unit_index[f.unit], f) for f in scenario.faults if f.kind in SENSOR_FAULT_KINDS]
        self._sensor_faults = SensorFaultApplier(sensor_faults, self.sensors, rng_faults, scenario.period_s)
        if scenario.profile == "reactor":
            self._params: ReactorParams = reactor.sample_params(n, scenario.spread, rng_params)
            self._state: ReactorState = reactor.steady_state(self._params)
            self._noise_sd = np.asarray(REACTOR_NOISE_SD) * scenario.noise
        else:
            self._noise_sd = np.asarray(SEED_NOISE_SD) * scenario.noise
        self._disturbances = _Disturbances(n, scenario.disturbances, rng_dist)
        self._next_sample = 0
        # Up to this many units, each unit is integrated with Python floats (faster than numpy's
        # per-call overhead on tiny arrays); beyond, all units at once with numpy.
        self.scalar_max_units = SCALAR_MAX_UNITS

    def labels(self, end_epoch: float | None = None) -> tuple[Label, ...]:
        return fault_labels(self.scenario, self.start_epoch, end_epoch)

    def chunks(self) -> Iterator[tuple[FloatArray, FloatArray]]:
        """Endless (timestamps [T], data [U, T, S]) chunks, in order (CHUNK_S seconds each up to 256 units)."""
        while True:
            yield self._next_chunk()

    def _next_chunk(self) -> tuple[FloatArray, FloatArray]:
        n = self._chunk_samples
        index = self._next_sample + np.arange(n, dtype=np.float64)
        t_rel = index * self.period_s
        if self.scenario.profile == "reactor":
            data = self._reactor_chunk(t_rel)
        else:
            data = np.broadcast_to(seed_means(index), (len(self.units), n, 3)).copy()
        data += self._noise_sd * self._rng_noise.standard_normal(data.shape)
        self._sensor_faults.apply(t_rel, data)
        self._next_sample += n
        return self.start_epoch + t_rel, data

    def _process_modifiers(self, t_rel: FloatArray) -> dict[str, FloatArray]:
        """Process-fault effects on the step grid: each [steps, U]."""
        shape = (t_rel.shape[0], len(self.units))
        mods = {
            "ua_mult": np.ones(shape),
            "k_mult": np.ones(shape),
            "decomp_mult": np.zeros(shape),
            "feed_temp_add": np.zeros(shape),
            "valve_mode": np.zeros(shape),
            "stiction_band": np.zeros(shape),
        }
        for unit, fault in self._process_faults:
            active = (t_rel >= fault.start_s) & (t_rel < fault.end_s)
            if not active.any():
                continue
            if fault.kind == "cooling_degradation":
                mods["ua_mult"][:, unit] *= 1.0 - fault.magnitude * ramp(t_rel, fault, 0.5)
            elif fault.kind == "catalyst_deactivation":
                mods["k_mult"][:, unit] *= 1.0 - fault.magnitude * ramp(t_rel, fault, 0.5)
            elif fault.kind == "thermal_runaway":
                mods["decomp_mult"][:, unit] += fault.magnitude * ramp(t_rel, fault, 0.25)
            elif fault.kind == "feed_temp_step":
                mods["feed_temp_add"][:, unit] += np.where(active, fault.magnitude, 0.0)
            elif fault.kind == "valve_stuck":
                mods["valve_mode"][:, unit] = np.where(active, reactor.VALVE_STUCK, mods["valve_mode"][:, unit])
            elif fault.kind == "valve_stiction":
                sticky = active & (mods["valve_mode"][:, unit] != reactor.VALVE_STUCK)
                mods["valve_mode"][:, unit] = np.where(sticky, reactor.VALVE_STICKY, mods["valve_mode"][:, unit])
                mods["stiction_band"][:, unit] = np.where(active, fault.magnitude, mods["stiction_band"][:, unit])
        return mods

    def _feed_temp_add(self, t_rel: FloatArray) -> FloatArray:
        """Feed-temperature fault offsets at sample times: [T, U]."""
        out = np.zeros((t_rel.shape[0], len(self.units)))
        for unit, fault in self._process_faults:
            if fault.kind == "feed_temp_step":
                out[:, unit] += np.where((t_rel >= fault.start_s) & (t_rel < fault.end_s), fault.magnitude, 0.0)
        return out

    def _reactor_chunk(self, t_rel: FloatArray) -> FloatArray:
        """Integrate the chunk on the step grid; interpolate to sample times. Returns [U, T, 8] noise-free."""
        p, s = self._params, self._state
        m = self._samples_per_step
        steps = t_rel.shape[0] // m
        step_s = self.scenario.step_s
        t_steps = t_rel[::m]
        conc_f, flow_f, ambient = self._disturbances.at(self.start_epoch + t_steps)
        mods = self._process_modifiers(t_steps)
        feed_temp = p.feed_temp_K + ambient + mods["feed_temp_add"]
        coolant_in = p.coolant_in_K + 0.5 * ambient  # the tempered loop damps the ambient swing
        n_units = len(self.units)
        grid = np.empty((steps + 1, 4, n_units))  # CA, T, Tj, h at step boundaries
        held = np.empty((steps, n_units))  # coolant flow m3/s over each step
        step_inputs: dict[str, FloatArray] = {
            "feed_m3_s": p.feed_m3_s * flow_f,
            "feed_conc": p.feed_conc_kmol_m3 * conc_f,
            "feed_temp": feed_temp,
            "coolant_in": coolant_in,
            "ua_mult": mods["ua_mult"],
            "k_mult": mods["k_mult"],
            "decomp_mult": mods["decomp_mult"],
            "valve_mode": mods["valve_mode"].astype(np.int8),
            "stiction_band": mods["stiction_band"],
        }  # each [steps, U]
        if n_units <= self.scalar_max_units:
            for u in range(n_units):
                pu, su = p.unit(u), s.unit(u)
                columns = {name: values[:, u].tolist() for name, values in step_inputs.items()}
                rows = [StepInputs(*row) for row in zip(*columns.values(), strict=True)]
                unit_grid = grid[:, :, u]
                unit_held = held[:, u]
                for j in range(steps):
                    unit_grid[j] = (su.conc, su.temp, su.jacket, su.level)
                    unit_held[j] = reactor.integrate_step(pu, su, rows[j], step_s, reactor.SCALAR)
                s.set_unit(u, su)
        else:
            for j in range(steps):
                grid[j] = (s.conc, s.temp, s.jacket, s.level)
                inputs = StepInputs(**{name: values[j] for name, values in step_inputs.items()})
                held[j] = reactor.integrate_step(p, s, inputs, step_s, reactor.VECTOR)
        grid[steps] = (s.conc, s.temp, s.jacket, s.level)
        k = np.arange(t_rel.shape[0])
        frac = ((k % m) / m)[:, None, None]
        states = grid[k // m] * (1.0 - frac) + grid[k // m + 1] * frac  # [T, 4, U]
        # Measured feed signals are evaluated at sample times (the physics holds them per step).
        conc_fs, flow_fs, ambient_s = self._disturbances.at(self.start_epoch + t_rel)
        del conc_fs
        out = np.empty((len(self.units), t_rel.shape[0], 8))
        temp = states[:, 1, :]
        out[:, :, 0] = temp.T
        out[:, :, 1] = states[:, 2, :].T
        out[:, :, 2] = states[:, 0, :].T
        out[:, :, 3] = (p.feed_m3_s * flow_fs * 3600.0).T
        out[:, :, 4] = (p.feed_temp_K + ambient_s + self._feed_temp_add(t_rel)).T
        out[:, :, 5] = (held[k // m] * 3600.0).T
        out[:, :, 6] = reactor.pressure_bar(p, temp).T
        out[:, :, 7] = states[:, 3, :].T
        return out


def simulate(
    scenario: Scenario,
    duration_s: float,
    seed: int | None = None,
    start_epoch: float = DEFAULT_START_EPOCH,
) -> SimResult:
    """Simulate ``duration_s`` seconds offline. Deterministic in (scenario, seed, start_epoch).

    ``seed`` defaults to the scenario's ``seed`` (or 0). Returns a :class:`SimResult` with
    ``T = ceil(duration_s / period_s)`` samples starting at ``start_epoch``. With a process fault, the
    fault-free twin runs too (twice the time) to measure each process fault's ``settled``; live runs
    (:meth:`Simulation.labels`) cannot look ahead and leave ``settled`` at ``end``.
    """
    if not np.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration_s!r}")
    sim = Simulation(scenario, seed=seed, start_epoch=start_epoch)
    n = int(np.ceil(duration_s / scenario.period_s - 1e-9))
    times, blocks, have = [], [], 0
    for timestamps, data in sim.chunks():
        times.append(timestamps)
        blocks.append(data)
        have += timestamps.shape[0]
        if have >= n:
            break
    all_times = np.concatenate(times)[:n]
    all_data = np.concatenate(blocks, axis=1)[:, :n, :]
    end_epoch = sim.start_epoch + n * scenario.period_s
    data = np.ascontiguousarray(all_data)
    labels = sim.labels(end_epoch)
    if any(is_process_fault(label.kind) for label in labels):
        # The same run without its faults (same seed, start and noise) shows how long each process fault's
        # effect outlasts its label. All units are simulated: the vector integrator's substeps follow the
        # stiffest unit, so a twin of fewer units would not be exact.
        twin = Simulation(replace(scenario, faults=()), seed=sim.seed, start_epoch=sim.start_epoch)
        tolerance = reactor_tolerance(scenario.sensors)
        labels = settle_labels(
            labels, all_times, data, scenario.units, twin.chunks(), tolerance, end_epoch, scenario.period_s
        )
    return SimResult(
        scenario=scenario,
        timestamps=all_times,
        units=scenario.units,
        sensors=scenario.sensors,
        data=data,
        labels=labels,
        period_s=scenario.period_s,
    )


def with_faults(scenario: Scenario, *faults: Fault) -> Scenario:
    """The scenario with extra faults appended (handy in tests and benchmarks)."""
    return replace(scenario, faults=scenario.faults + tuple(faults))
