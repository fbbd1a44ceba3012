"""Fixtures for the model tests: one torch thread (the test machine's cores are shared), tiny artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models.kinds import KINDS
from models.synthetic import normal_process
from models.train import train_model
from models.train_config import TrainConfig

SENSORS = ("s0", "s1", "s2", "s3", "s4")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def normal_data() -> np.ndarray:
    """[3000, 5] normal multi-sensor data."""
    return normal_process(3000, len(SENSORS), seed=11)


def tiny_config(kind: str, **overrides: object) -> TrainConfig:
    """The tiny training recipe of the model tests: window 16, hidden 8, 2 epochs (a pca has no sizes)."""
    params: dict[str, object] = {"kind": kind, "window": 16, "epochs": 2, "progress": False, "device": "cpu"}
    if KINDS[kind].network:
        params["hidden_size"] = 8
    if kind in ("lstm_ae",):
        params["latent_size"] = 4
    params.update(overrides)
    return TrainConfig(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def artifact_factory(tmp_path_factory: pytest.TempPathFactory, normal_data: np.ndarray):  # type: ignore[no-untyped-def]
    """Train (once per kind per session) a tiny artifact of ``kind`` on ``normal_data``; returns its path."""
    cache: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in cache:
            torch.set_num_threads(1)
            out = tmp_path_factory.mktemp(f"artifact-{kind}")
            cache[kind] = train_model(normal_data, SENSORS, out, tiny_config(kind), period_s=1.0)
        return cache[kind]

    return make
