"""The one recipe for the small models that tests and benchmarks train: quiet, on the CPU, in seconds.

    config = tiny_config("lstm_ae", window=16, epochs=8)           # a TrainConfig: TINY, then the overrides
    path = train_tiny(data, sensors, out_dir, "lstm", name="fc", hidden_size=16)   # trains; the artifact's path
    train_tiny(..., **SEED_SIZES)                                   # the kind's seed sizes (what production runs)

TINY is small enough for a test to train several models in a couple of seconds on one shared core; each caller
overrides what its case needs (a window, more epochs for a model that must tell a fault from noise, POT at a
lower false-alarm rate where alerts are counted). ``None`` for a size means the kind's seed size
(models.kinds.KINDS), as in TrainConfig. ``threads``: torch's thread count for this process from then on (1 by
default: the test machine's cores are shared; None leaves it as it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

if TYPE_CHECKING:
    from models.train_config import TrainConfig

TINY: dict[str, Any] = {"window": 16, "hidden_size": 8, "epochs": 2, "progress": False, "device": "cpu"}
TINY_LATENT = 4  # lstm_ae only
SEED_SIZES: dict[str, Any] = {"hidden_size": None, "num_layers": None, "latent_size": None}


def tiny_config(kind: str = "lstm_ae", **overrides: Any) -> TrainConfig:
    from models.train_config import TrainConfig  # imported when a config is made, not when the kit is

    params: dict[str, Any] = {"kind": kind, **TINY}
    if kind == "lstm_ae":
        params["latent_size"] = TINY_LATENT
    params.update(overrides)
    return TrainConfig(**params)


def train_tiny(
    data: npt.ArrayLike,
    sensors: Sequence[str],
    out_dir: Path,
    kind: str = "lstm_ae",
    *,
    period_s: float = 1.0,
    threads: int | None = 1,
    **overrides: Any,
) -> Path:
    """Train ``tiny_config(kind, **overrides)`` on normal ``data`` [T, S]; the artifact's directory."""
    import torch

    from models.train import train_model

    if threads is not None:
        torch.set_num_threads(threads)
    return train_model(data, sensors, out_dir, tiny_config(kind, **overrides), period_s=period_s)
