"""The records of scoring: which models score a unit, what one ``ScoringEngine.run`` returns, what it changes.

    UnitModels(sensors, period_s, detector, forecaster, health, envelope_margin, shadow_detector, shadow_forecaster)
    required_window_rows(unit_models, models)   # rows a WindowJob must carry (UnitSpec.window_rows)
    ScoringOutput(scores, forecasts, non_finite, judged, shadows_stopped); out.extend(later)
    ModelVerdict(windows, non_finite, example)  # one model's complete windows in one run
    EngineState(pending, failing, stopped)      # engine.snapshot() / engine.restore(state)

Failing models: a window with a sensor that has no value at all scores NaN by design (models/inference.py), so
only *complete* windows (every sensor has a value somewhere in it) judge a model. A complete window's output is
non-finite when a detector's score is NaN / inf, or a forecaster's forecast is, or its forecast residual score
is while the forecast and the actual row it is compared with are finite (a scaler that explodes on a real
value). Each ``run`` reports this per model in ``ScoringOutput.judged`` (a ModelVerdict: complete windows,
non-finite ones, one such value), which is what a reload's probation watches. A model whose latest batch has a
complete window with a non-finite output is in ``failing_models`` until a batch of its complete windows comes out
finite; a replaced model starts clean. The set is replaced whole, never mutated, so another thread (the
readiness check) may read it at any time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from monitor.messages import Forecast, Score
from monitor.sensor_health import HealthSpec

if TYPE_CHECKING:  # the model contract (models.model_api, no torch); for annotations only
    from models.model_api import ScoringModel


@dataclass(frozen=True, slots=True)
class UnitModels:
    """Which models score one unit (keys into the engine's ``models``; converted from the unit's config)."""

    sensors: tuple[str, ...]  # the unit's sensors, in WindowJob column order
    period_s: float = 1.0
    detector: str | None = None
    forecaster: str | None = None
    health: HealthSpec | None = None  # the sensor detector's rules; None: no sensor Scores
    envelope_margin: float | None = 0.05  # outside_envelope margin, share of the training span; None: off
    shadow_detector: str | None = None  # candidate models scored beside the active ones (module docstring)
    shadow_forecaster: str | None = None

    def roles(self) -> list[tuple[str, str, bool]]:
        """(role, model name, shadow) of every model that scores this unit, active ones first."""
        named = (
            ("detector", self.detector, False),
            ("forecaster", self.forecaster, False),
            ("detector", self.shadow_detector, True),
            ("forecaster", self.shadow_forecaster, True),
        )
        return [(role, name, shadow) for role, name, shadow in named if name is not None]


@dataclass(frozen=True, slots=True)
class ModelVerdict:
    """One model's outputs on the complete windows of one ``run`` (see "Failing models" in the module docstring)."""

    windows: int  # complete windows the model scored
    non_finite: int = 0  # of them, with a NaN / inf output
    example: float = math.nan  # one such output (inf, -inf or nan); nan when there is none

    def plus(self, other: ModelVerdict) -> ModelVerdict:
        example = self.example if self.non_finite else other.example
        return ModelVerdict(self.windows + other.windows, self.non_finite + other.non_finite, example)


@dataclass(slots=True)
class ScoringOutput:
    scores: list[Score] = field(default_factory=list)
    forecasts: list[Forecast] = field(default_factory=list)
    non_finite: int = 0  # scores dropped because the model produced NaN / inf
    judged: dict[str, ModelVerdict] = field(default_factory=dict)  # model -> its complete windows in this run
    shadows_stopped: dict[str, ModelVerdict] = field(default_factory=dict)  # shadow-only models stopped in this run

    def extend(self, other: ScoringOutput) -> None:
        """Append a later run's output (a batch scored in parts)."""
        self.scores.extend(other.scores)
        self.forecasts.extend(other.forecasts)
        self.non_finite += other.non_finite
        for name, verdict in other.judged.items():
            mine = self.judged.get(name)
            self.judged[name] = verdict if mine is None else mine.plus(verdict)
        self.shadows_stopped.update(other.shadows_stopped)


@dataclass(frozen=True, slots=True)
class PendingForecast:
    """A unit's one-step forecast for its next row."""

    made_at: float  # end_ts of the window it was made from
    values: npt.NDArray[np.float32]  # [S] in model sensor order
    attention_steps: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EngineState:
    """What ``run`` changes: each unit's pending forecast and the failing models (both immutable values)."""

    pending: Mapping[tuple[str, str], PendingForecast]  # (unit, forecaster) -> its forecast for the unit's next row
    failing: frozenset[str]
    stopped: frozenset[str]  # shadow-only models stopped for a NaN / inf


def required_window_rows(unit: UnitModels, models: Mapping[str, ScoringModel]) -> int:
    """Rows each WindowJob of this unit must carry: the largest window among its models."""
    if unit.detector is None and unit.forecaster is None:
        raise ValueError("a unit needs a detector or a forecaster")
    return max(models[name].window for _, name, _ in unit.roles())
