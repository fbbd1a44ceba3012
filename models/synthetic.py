"""Seeded synthetic data for tests and benchmarks: the seed's own signals and a multi-sensor set with faults.

numpy only. ``seed_signal(name)`` reproduces the signals of the seed tutorial's examples
(same formulas and lengths); ``fault_dataset`` makes correlated multi-sensor normal data
plus a copy with labelled faults injected (offset, drift, stuck-at, noise burst).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SeedSignal:
    """One of the seed's synthetic series and the sizes its example used."""

    name: str
    values: F64  # [T, 1]
    window: int
    kind: str  # the model kind the seed trains on it
    hyperparameters: dict[str, Any]
    horizon: int = 1


def seed_signal(name: str, seed: int = 42) -> SeedSignal:
    """The seed's examples: "rnn" (ex. 1), "lstm" / "gru" (ex. 2-3), "lstm_deep" (ex. 5),
    "seq2seq" (ex. 6), "attention_lstm" (ex. 8)."""
    rng = np.random.default_rng(seed)
    if name == "rnn":
        t = np.linspace(0, 50, 500)
        values = 350 + 20 * np.sin(0.2 * t) + 5 * rng.standard_normal(t.size)
        return SeedSignal(name, values[:, None], 20, "rnn", {"hidden_size": 32, "num_layers": 1})
    if name in ("lstm", "gru"):
        t = np.linspace(0, 100, 1000)
        values = 5 + 2 * np.sin(0.1 * t) + 0.5 * np.cos(0.3 * t) + 0.3 * rng.standard_normal(t.size)
        return SeedSignal(name, values[:, None], 50, name, {"hidden_size": 64, "num_layers": 2})
    if name == "lstm_deep":
        t = np.linspace(0, 50, 500)
        values = 400 + 50 * np.sin(0.2 * t) + 10 * rng.standard_normal(t.size)
        return SeedSignal(name, values[:, None], 30, "lstm", {"hidden_size": 128, "num_layers": 3, "dropout": 0.2})
    if name == "seq2seq":
        values = 5 + 2 * np.sin(0.1 * np.linspace(0, 100, 1000)) + 0.3 * rng.standard_normal(1000)
        return SeedSignal(name, values[:, None], 50, "seq2seq", {"hidden_size": 128, "num_layers": 2}, horizon=10)
    if name == "attention_lstm":
        t = np.linspace(0, 50, 500)
        values = 350 + 50 * np.exp(-0.1 * t) * np.sin(0.5 * t) + 5 * rng.standard_normal(500)
        return SeedSignal(name, values[:, None], 50, "attention_lstm", {"hidden_size": 128, "num_layers": 2})
    if name == "bilstm":
        values = 400 + 30 * np.sin(0.1 * np.linspace(0, 100, 500)) + 5 * rng.standard_normal(500)
        return SeedSignal(name, values[:, None], 50, "bilstm", {"hidden_size": 64, "num_layers": 2}, horizon=0)
    raise ValueError(f"unknown seed signal {name!r}")


SEED_SIGNALS: tuple[str, ...] = ("rnn", "lstm", "gru", "lstm_deep", "seq2seq", "attention_lstm", "bilstm")


def normal_process(n_rows: int, n_sensors: int = 5, seed: int = 0, start: int = 0, load_tau: float = 50.0) -> F64:
    """Correlated multi-sensor normal operation [n_rows, n_sensors], in plant-like units.

    Three hidden drivers (two incommensurate cycles and an AR(1) load with a time constant of
    ``load_tau`` rows) mixed into every sensor with fixed weights, plus independent measurement
    noise (10% of a sensor's spread).
    The mixing weights depend only on ``n_sensors``, so two calls with different ``seed`` or
    ``start`` are the same process (fresh data for calibration checks).
    """
    mix_rng = np.random.default_rng(12345 + n_sensors)
    weights = mix_rng.normal(0.0, 1.0, (3, n_sensors))
    levels = mix_rng.uniform(1.0, 400.0, n_sensors)
    spreads = mix_rng.uniform(0.5, 20.0, n_sensors)
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + n_rows, dtype=np.float64)
    phase = rng.uniform(0, 2 * np.pi, 2)
    load = np.empty(n_rows)
    phi = float(np.exp(-1.0 / load_tau))
    shocks = rng.normal(0.0, 0.5 * np.sqrt(1.0 - phi * phi), n_rows)  # stationary spread 0.5
    level = 0.0
    for i in range(n_rows):  # AR(1) is inherently sequential; n_rows is small
        level = phi * level + shocks[i]
        load[i] = level
    # The cycles' phases wander (a random walk of 0.02 rad per row), as real cycles do, so the
    # process never repeats exactly and calibration on later rows is not a replay of training rows.
    wander = np.cumsum(rng.normal(0.0, 0.02, (n_rows, 2)), axis=0)
    cycle_1 = np.sin(2 * np.pi * t / 200 + phase[0] + wander[:, 0])
    cycle_2 = np.sin(2 * np.pi * t / 73 + phase[1] + wander[:, 1])
    drivers = np.stack([cycle_1, cycle_2, load], axis=1)
    clean = drivers @ weights  # [T, S]
    clean /= np.abs(weights).sum(axis=0)  # each sensor's clean signal roughly within [-1, 1]
    noisy = clean + 0.1 * rng.standard_normal((n_rows, n_sensors))
    return levels + spreads * noisy


@dataclass(frozen=True)
class FaultSet:
    """Normal training data, and test data with labelled fault segments."""

    train: F64  # [T_train, S] normal
    test: F64  # [T_test, S] with faults
    labels: npt.NDArray[np.bool_]  # [T_test] row is inside a fault segment
    segments: list[tuple[int, int, int, str]]  # (start, end, sensor, fault kind), end exclusive


FAULT_KINDS: tuple[str, ...] = ("offset", "drift", "stuck", "noise")


def fault_dataset(
    n_train: int = 6000, n_test: int = 4000, n_sensors: int = 5, seed: int = 0, fault_len: int = 120, gap: int = 200
) -> FaultSet:
    """Normal data to train on, then a later stretch of the same process with faults injected.

    Faults (sizes in units of the sensor's normal spread): ``offset`` +1.0 step, ``drift`` ramp
    to +1.5, ``stuck`` frozen at the segment's first value, ``noise`` extra noise of 0.5. Each
    segment hits one sensor; segments are ``gap`` rows apart.
    """
    train = normal_process(n_train, n_sensors, seed=seed)
    test = normal_process(n_test, n_sensors, seed=seed + 1000, start=n_train)
    spread = np.std(train, axis=0)
    rng = np.random.default_rng(seed + 7)
    labels = np.zeros(n_test, dtype=bool)
    segments: list[tuple[int, int, int, str]] = []
    start = gap
    k = 0
    while start + fault_len + gap <= n_test:
        kind = FAULT_KINDS[k % len(FAULT_KINDS)]
        sensor = int(rng.integers(n_sensors))
        end = start + fault_len
        rows = slice(start, end)
        if kind == "offset":
            test[rows, sensor] += 1.0 * spread[sensor]
        elif kind == "drift":
            test[rows, sensor] += np.linspace(0.0, 1.5, fault_len) * spread[sensor]
        elif kind == "stuck":
            test[rows, sensor] = test[start, sensor]
        else:
            test[rows, sensor] += 0.5 * spread[sensor] * rng.standard_normal(fault_len)
        labels[rows] = True
        segments.append((start, end, sensor, kind))
        start = end + gap
        k += 1
    return FaultSet(train=train, test=test, labels=labels, segments=segments)
