"""The models as the service scores them: each ``infer`` timed into the inference-time and batch-size histograms.

API:
    models = timed(loaded, metrics)   # {name: TimedModel}: what monitor/scoring_side.py hands the ScoringEngine
    TimedModel(model, metrics)        # a ScoringModel (models.model_api) around one; ``wrapped`` is the model

The wrapper implements the model contract explicitly (each property the model's own): the engine, the scheduler
and the probation see a ScoringModel like any other. What it adds is measured around the whole ``infer`` (the
model's padding of the batch included): ``plantwatch_inference_seconds{model}`` and
``plantwatch_batch_size_windows`` (the windows given, not the padded batch). The backtest scores unwrapped models.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from monitor.metrics import Metrics

if TYPE_CHECKING:
    from models.device import ServingDevice
    from models.model_api import F32, InferenceResult, ScoringModel


class TimedModel:
    """A ScoringModel whose ``infer`` feeds the inference-time and batch-size histograms; the rest is the model's.

    The time is the whole ``infer`` (the batch padding inside it included, models.model_api.padded_infer), the
    batch size the windows given."""

    def __init__(self, model: ScoringModel, metrics: Metrics | None) -> None:
        self._model = model
        self._metrics = metrics
        self._seconds = metrics.inference_seconds.labels(model.name) if metrics is not None else None

    @property
    def wrapped(self) -> ScoringModel:
        return self._model

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def kind(self) -> str:
        return self._model.kind

    @property
    def role(self) -> str:
        return self._model.role

    @property
    def sensors(self) -> tuple[str, ...]:
        return self._model.sensors

    @property
    def window(self) -> int:
        return self._model.window

    @property
    def horizon(self) -> int:
        return self._model.horizon

    @property
    def period_s(self) -> float:
        return self._model.period_s

    @property
    def device(self) -> object:
        return self._model.device

    @property
    def threshold(self) -> float:
        return self._model.threshold

    @property
    def resolve_level(self) -> float:
        return self._model.resolve_level

    @property
    def critical_level(self) -> float:
        return self._model.critical_level

    @property
    def envelope(self) -> dict[str, Any] | None:
        return self._model.envelope

    def infer(self, windows: npt.ArrayLike) -> InferenceResult:
        start = time.perf_counter()
        result = self._model.infer(windows)
        if self._seconds is not None and self._metrics is not None:
            self._seconds.observe(time.perf_counter() - start)
            self._metrics.batch_size.observe(len(np.asarray(windows)))
        return result

    def residual_score(self, forecast: npt.ArrayLike, actual: npt.ArrayLike) -> tuple[F32, F32]:
        return self._model.residual_score(forecast, actual)

    def to(self, device: ServingDevice) -> TimedModel:
        return TimedModel(self._model.to(device), self._metrics)


def timed(models: Mapping[str, ScoringModel], metrics: Metrics | None) -> dict[str, ScoringModel]:
    """Every model wrapped for timing."""
    return {name: TimedModel(model, metrics) for name, model in models.items()}
