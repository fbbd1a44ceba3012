"""Tiny trained artifacts for the pipeline tests (trained once per session on synthetic normal data)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.kit import train_tiny

SENSORS = ("temp", "flow", "level")
PERIOD_S = 1.0


def normal_data(n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """[n_rows, 3] smooth coupled signals with noise: what a healthy unit looks like here."""
    t = np.arange(n_rows, dtype=np.float64)
    base = np.sin(2 * np.pi * t / 60.0)
    temp = 350.0 + 2.0 * base + rng.normal(0, 0.1, n_rows)
    flow = 10.0 + 0.5 * np.cos(2 * np.pi * t / 60.0) + rng.normal(0, 0.05, n_rows)
    level = 2.0 + 0.1 * base + rng.normal(0, 0.01, n_rows)
    return np.stack([temp, flow, level], axis=1)


@dataclass(frozen=True)
class Artifacts:
    detector: Path
    forecaster: Path
    attention: Path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Artifacts]:
    root = tmp_path_factory.mktemp("artifacts")
    data = normal_data(1500, np.random.default_rng(0))
    # POT at 1e-5 per window: the default 1 % quantile is crossed by ~1 % of normal windows, and since
    # neighbouring windows overlap those crossings cluster and pass a 3-of-5 rule many times a day.
    common = {"epochs": 3, "train_step": 2, "calibration": "pot", "target_far": 1e-5}

    def train(kind: str, name: str, window: int, **sizes: Any) -> Path:
        return train_tiny(data, SENSORS, root / name, kind, name=name, window=window, **common, **sizes)

    yield Artifacts(
        detector=train("lstm_ae", "det", 16, hidden_size=16, latent_size=4),
        forecaster=train("lstm", "fc", 12, hidden_size=16, num_layers=1),
        attention=train("attention_lstm", "att", 10, hidden_size=8, num_layers=1),
    )
