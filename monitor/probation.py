"""A reload's probation: the models a SIGHUP swapped in are watched on live windows, the previous ones kept.

API (pure bookkeeping: the scheduler thread owns at most one, and does the swapping; monitor/scheduler.py)::

    trial = Probation(fallback, on_trial=frozenset({"det"}), windows=100, seconds=60.0, started=time.monotonic())
    failure = trial.observe(out.judged)   # ScoringOutput.judged of a batch -> Failure | None
    trial.passed(time.monotonic())        # every model on trial scored `windows` complete windows, `seconds` gone by
    trial.fallback                        # the models to swap back on a failure (the last ones that passed)
    trial.fallback_units                  # and which of them scored each unit (a promotion names other models)
    trial.scored                          # model on trial -> complete windows it has scored so far

What fails a model on trial: one complete window (every sensor has a value in it) whose output came out NaN or
inf (``monitor.scoring_records.ModelVerdict``), in any batch before it has passed. The load-time probe
(models/artifacts.py) only scores windows at the training mean; weights that overflow away from it, or a scaler
that explodes on a real value, show only on live windows -- and a model that fails on the plant's own data is of
no use, so the first such window sends the service back to the models it had.

Why both bounds, whichever is later (SchedulerConfig.reload_probation_windows / reload_probation_s, 100 / 60 s):
the count makes each new model prove itself on real windows, however slowly its units report (100 rows is under
two minutes of one 1 Hz unit); the time keeps the fallback across several real batches when the count is reached
at once (a plant of many units, or a redelivered backlog, scores 100 windows in one batch). Keeping the fallback
costs one more copy of the models' weights (kilobytes to a few MB), so erring long is cheap; a model whose units
send nothing keeps its probation (and the fallback) until they do. After it passes, the fallback is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.scoring_records import ModelVerdict, UnitModels

if TYPE_CHECKING:
    from models.model_api import ScoringModel

PROBATION_WINDOWS = 100
PROBATION_S = 60.0


@dataclass(frozen=True, slots=True)
class Failure:
    """The model on trial that produced a non-finite output, and its verdict on that batch."""

    model: str
    verdict: ModelVerdict


@dataclass(slots=True)
class Probation:
    """The models of one reload on trial; see the module docstring."""

    fallback: Mapping[str, ScoringModel]
    on_trial: frozenset[str]
    windows: int
    seconds: float
    started: float  # time.monotonic() of the swap
    fallback_units: Mapping[str, UnitModels] | None = None  # which models scored each unit then (None: the same)
    scored: dict[str, int] = field(default_factory=dict)

    def observe(self, judged: Mapping[str, ModelVerdict]) -> Failure | None:
        """Count a batch's complete windows per model on trial; the first model with a non-finite one fails."""
        for name in sorted(self.on_trial):
            verdict = judged.get(name)
            if verdict is None:
                continue
            if verdict.non_finite:
                return Failure(name, verdict)
            self.scored[name] = self.scored.get(name, 0) + verdict.windows
        return None

    def passed(self, now: float) -> bool:
        return now - self.started >= self.seconds and all(
            self.scored.get(name, 0) >= self.windows for name in self.on_trial
        )
