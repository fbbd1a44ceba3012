"""The `seed` profile: the tutorial's sine-wave signals (../shared/seed), for continuity with it.

:func:`seed_signal` reproduces each synthetic series of the tutorial exactly, given the same
legacy seed (``np.random.seed(42)`` there; each series here draws from its own
``RandomState(seed)``, as if the tutorial had reseeded before it)::

    >>> from simulators.seed_profile import seed_signal
    >>> seed_signal("temperature").shape
    (500,)

The scenario profile ``seed`` streams the tutorial's multi-variable example (temperature,
pressure and flow rate) for any duration: sample i of a unit is the tutorial's row i, with the
sine continuing past its 1,000 rows and noise from the simulation's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Names as in the tutorial's DataFrame (temperature in K, pressure in bar, flow rate in m3/h).
SEED_SENSORS: tuple[str, ...] = ("temperature", "pressure", "flow_rate")
SEED_NOISE_SD: tuple[float, ...] = (10.0, 0.5, 5.0)
SEED_SENSOR_SCALES: dict[str, float] = {"temperature": 20.0, "pressure": 1.0, "flow_rate": 10.0}

# The tutorial's multi-variable example spans 1,000 rows with linspace(0, 10) and linspace(0, 15).
_ROWS = 1000


def seed_means(sample_index: FloatArray) -> FloatArray:
    """Noise-free multi-variable signals at the given row indices: [T] -> [T, 3]."""
    i = np.asarray(sample_index, dtype=np.float64)
    temperature = 350.0 + 50.0 * np.sin(i * 10.0 / (_ROWS - 1))
    pressure = 5.0 + 2.0 * np.cos(i * 10.0 / (_ROWS - 1))
    flow_rate = 100.0 + 20.0 * np.sin(i * 15.0 / (_ROWS - 1))
    out: FloatArray = np.stack([temperature, pressure, flow_rate], axis=-1)
    return out


def _temperature(r: np.random.RandomState) -> FloatArray:
    time = np.linspace(0, 50, 500)
    return 350 + 20 * np.sin(0.2 * time) + 5 * r.randn(len(time))


def _pressure(r: np.random.RandomState) -> FloatArray:
    time = np.linspace(0, 100, 1000)
    return 5 + 2 * np.sin(0.1 * time) + 0.5 * np.cos(0.3 * time) + 0.3 * r.randn(len(time))


def _multivariate(r: np.random.RandomState) -> FloatArray:
    n = _ROWS
    temperature = 350 + 50 * np.sin(np.linspace(0, 10, n)) + 10 * r.randn(n)
    pressure = 5 + 2 * np.cos(np.linspace(0, 10, n)) + 0.5 * r.randn(n)
    flow_rate = 100 + 20 * np.sin(np.linspace(0, 15, n)) + 5 * r.randn(n)
    return np.stack([temperature, pressure, flow_rate], axis=1)


def _forecast_temperature(r: np.random.RandomState) -> FloatArray:
    time = np.linspace(0, 50, 500)
    return 400 + 50 * np.sin(0.2 * time) + 10 * r.randn(len(time))


def _multistep_pressure(r: np.random.RandomState) -> FloatArray:
    return 5 + 2 * np.sin(0.1 * np.linspace(0, 100, 1000)) + 0.3 * r.randn(1000)


def _bilstm_normal(r: np.random.RandomState) -> FloatArray:
    return 400 + 30 * np.sin(0.1 * np.linspace(0, 100, 500)) + 5 * r.randn(500)


def _bilstm_test(r: np.random.RandomState) -> FloatArray:
    data = _bilstm_normal(r)
    data[200:250] += 50  # the tutorial's anomaly: a 50 K jump over rows 200-249
    return data


def _attention_temperature(r: np.random.RandomState) -> FloatArray:
    time = np.linspace(0, 50, 500)
    return 350 + 50 * np.exp(-0.1 * time) * np.sin(0.5 * time) + 5 * r.randn(500)


SEED_SIGNALS: dict[str, Callable[[np.random.RandomState], FloatArray]] = {
    "temperature": _temperature,  # RNN example: 350 + 20 sin(0.2 t) + 5 noise, 500 points
    "pressure": _pressure,  # LSTM example: 5 + 2 sin(0.1 t) + 0.5 cos(0.3 t) + 0.3 noise, 1,000 points
    "multivariate": _multivariate,  # preprocessing example: [1000, 3] temperature, pressure, flow_rate
    "forecast_temperature": _forecast_temperature,  # 400 + 50 sin(0.2 t) + 10 noise, 500 points
    "multistep_pressure": _multistep_pressure,  # Seq2Seq example, 1,000 points
    "bilstm_normal": _bilstm_normal,  # BiLSTM normal data, 500 points
    "bilstm_test": _bilstm_test,  # the same with +50 on rows 200-249
    "attention_temperature": _attention_temperature,  # damped oscillation, 500 points
}


def seed_signal(name: str, seed: int = 42) -> FloatArray:
    """One of the tutorial's synthetic series, exactly: [T] (or [1000, 3] for ``multivariate``)."""
    if name not in SEED_SIGNALS:
        raise ValueError(f"unknown seed signal {name!r}; valid: {', '.join(SEED_SIGNALS)}")
    return SEED_SIGNALS[name](np.random.RandomState(seed))
