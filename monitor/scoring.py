"""Scoring: due windows -> reconstruction and forecast-residual Scores, batched per model.

API (single-threaded: the scheduler thread owns one engine; the backtest calls it synchronously)::

    engine = ScoringEngine(
        units={"R1": UnitModels(sensors=("a", "b"), period_s=1.0, detector="lstm_ae", forecaster="lstm")},
        models={"lstm_ae": loaded_detector, "lstm": loaded_forecaster},   # models.serving.load_for_serving(...)
    )
    required_window_rows(units["R1"], models)  # rows a WindowJob must carry (UnitSpec.window_rows)
    out = engine.run(jobs)        # -> ScoringOutput(scores, forecasts, non_finite, judged); if it raises, no state
                                  #    changed; out.judged[name]: ModelVerdict of the model's complete windows
    engine.score(jobs)            # -> list[Score]: run(jobs).scores
    engine.to("cuda")             # move every model (OOM fallback: engine.to("cpu")); returns self
    engine.replace_models(models) # SIGHUP reload: validate, swap, keep the forecast state of unchanged forecasters
    engine.replace_models(models, units)   # ... with new UnitModels too (a promotion: the unit names other models)
    engine.shadow_only            # frozenset: models that only shadow (UnitModels.shadow_*), never active for a unit
    engine.failing_models         # frozenset: models whose latest complete windows came out NaN / inf (readiness)
    saved = engine.snapshot()     # the per-unit state run() changes (cheap: a dict copy) ...
    engine.restore(saved)         # ... put back: a batch rescored after a reload's rollback (monitor/probation.py)

The models are any ScoringModel (models.model_api, the model contract: torch, ONNX Runtime or numpy, or the
service's monitor.timed_models.TimedModel around one); their ``infer`` pads a batch itself, so nothing here
depends on the runtime.

One ``infer`` per model per call: the jobs of all units that share a model are stacked into one batch
``[B, model.window, S]`` (each job's newest ``model.window`` rows, columns permuted to the model's sensor order).

Reconstruction (detector "reconstruction") and forecast residual (detector "forecast"): each model's batch output
becomes Scores in monitor/model_scores.py, which says how; the engine keeps each unit's pending one-step forecast
(the forecast made at the window ending at row t-1, compared with row t) between calls.

Sensor health (detector "sensor", monitor.sensor_health): a unit whose UnitModels has a ``health`` spec gets one
sensor Score per job: silent, stuck and out-of-range sensors. Health-only records (``WindowJob.valid`` False: a
row the buffers skipped for a gap) reach only this detector: the models never see them.

Training envelope: every reconstruction and forecast Score lists in ``outside_envelope`` the sensors whose newest
value lies outside ``[min - m*span, max + m*span]`` of the scoring model's ``envelope`` (m = the unit's
``envelope_margin``; None or a model without an envelope: none), one vectorised comparison per model batch.

Scores come back in job order (reconstruction, then forecast, then sensor for the same job), so each (unit,
detector) stream is in event-time order for the AlertTracker. A non-finite score (a model output gone bad) is
dropped and counted in ``ScoringOutput.non_finite``: never a NaN into the alert stage.

Shadow models (UnitModels.shadow_detector / shadow_forecaster): a candidate scores the same jobs as the unit's
active models, in the same one ``infer`` per model (a shadow is just another model in the map: one more forward
per batch, not per unit). Its Scores carry ``shadow=True`` (the output stage keeps them apart: their own trackers,
never published); a shadow forecaster's forecasts are not in ``ScoringOutput.forecasts``, and its pending forecast
is kept per (unit, model) as every forecaster's is. A model that only shadows (``shadow_only``) is not judged
into ``judged`` or ``failing_models`` (readiness and a reload's probation are the active models'): when one of its
complete windows comes out NaN / inf it is stopped instead -- named in ``ScoringOutput.shadows_stopped``, scored
no more until a reload gives a new model of that name.

Failing models and the records run() returns: monitor/scoring_records.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from monitor.messages import Score, WindowJob
from monitor.model_scores import forecast_scores, reconstruction_scores
from monitor.scoring_records import EngineState, ModelVerdict, PendingForecast, ScoringOutput, UnitModels
from monitor.sensor_health import SensorHealth, envelope_bounds, outside_envelope

if TYPE_CHECKING:  # the model contract (models.model_api, no torch); for annotations only
    from models.device import ServingDevice
    from models.model_api import ScoringModel


def _permutation(unit_sensors: Sequence[str], model: ScoringModel, model_name: str) -> npt.NDArray[np.intp] | None:
    """Columns of the unit's window in the model's sensor order; None when the orders already agree."""
    if tuple(model.sensors) == tuple(unit_sensors):
        return None
    if sorted(model.sensors) != sorted(unit_sensors):
        raise ValueError(
            f"model {model_name!r} expects sensors {list(model.sensors)}, the unit has {list(unit_sensors)}"
        )
    index = {s: i for i, s in enumerate(unit_sensors)}
    return np.array([index[s] for s in model.sensors], dtype=np.intp)


class ScoringEngine:
    """Batched scoring of WindowJobs for every configured unit; see the module docstring."""

    def __init__(self, units: Mapping[str, UnitModels], models: Mapping[str, ScoringModel]) -> None:
        self._units = dict(units)
        self._models: dict[str, ScoringModel] = {}
        self._perm: dict[tuple[str, str], npt.NDArray[np.intp] | None] = {}
        self._pending: dict[tuple[str, str], PendingForecast] = {}
        self._bounds: dict[tuple[str, str], tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        self._health = SensorHealth(
            {unit: (spec.sensors, spec.health) for unit, spec in self._units.items() if spec.health is not None}
        )
        self._failing: frozenset[str] = frozenset()
        self._stopped: frozenset[str] = frozenset()
        self._shadow_only: frozenset[str] = frozenset()
        self.replace_models(models, units)

    @property
    def failing_models(self) -> frozenset[str]:
        """Models whose latest complete windows gave a NaN / inf output; see the module docstring."""
        return self._failing

    @property
    def models(self) -> Mapping[str, ScoringModel]:
        return self._models

    @property
    def units(self) -> Mapping[str, UnitModels]:
        return self._units

    @property
    def shadow_only(self) -> frozenset[str]:
        """Models that score only as a unit's shadow: judged apart (module docstring, "Shadow models")."""
        return self._shadow_only

    @property
    def stopped_shadows(self) -> frozenset[str]:
        """Shadow-only models stopped after a NaN / inf on a complete window, until a reload replaces them."""
        return self._stopped

    def snapshot(self) -> EngineState:
        """The state ``run`` changes, for ``restore`` (a batch to be scored again with other models)."""
        return EngineState(dict(self._pending), self._failing, self._stopped)

    def restore(self, state: EngineState) -> None:
        """Back to ``state`` (taken with ``snapshot``); call ``replace_models`` after it when the models change."""
        self._pending = dict(state.pending)
        self._failing = state.failing
        self._stopped = state.stopped

    def replace_models(self, models: Mapping[str, ScoringModel], units: Mapping[str, UnitModels] | None = None) -> None:
        """Validate and swap in a new model set, and with ``units`` new UnitModels for the same units (all or
        nothing; ValueError names the problem)."""
        if units is None:
            units = self._units
        elif set(units) != set(self._units):
            raise ValueError("a reload scores the same units")
        perm: dict[tuple[str, str], npt.NDArray[np.intp] | None] = {}
        bounds = {}
        for unit, spec in units.items():
            for role, name, shadow in spec.roles():
                model = models.get(name)
                what = f"shadow {role}" if shadow else role
                if model is None:
                    raise ValueError(f"unit {unit!r}: {what} {name!r} is not among the loaded models")
                if model.role != role:
                    raise ValueError(f"unit {unit!r}: model {name!r} is a {model.role}, configured as the {what}")
                perm[(unit, name)] = _permutation(spec.sensors, model, name)
                if model.envelope is not None and spec.envelope_margin is not None:
                    bounds[(unit, name)] = envelope_bounds(model.envelope, model.sensors, spec.envelope_margin)
        health_model = {unit: spec.detector or spec.forecaster or "sensor" for unit, spec in units.items()}
        self._health.set_envelopes(
            {unit: models[name].envelope if name in models else None for unit, name in health_model.items()}
        )
        active = {name for spec in units.values() for _, name, shadow in spec.roles() if not shadow}
        shadows = {name for spec in units.values() for _, name, shadow in spec.roles() if shadow}
        self._health_model = health_model
        self._bounds = bounds
        old = self._models
        self._models = dict(models)
        self._units = dict(units)
        self._perm = perm
        self._shadow_only = frozenset(shadows - active)
        # A forecast made by a model that has been replaced is not compared with the new model's threshold.
        for unit, name in list(self._pending):
            spec = self._units[unit]
            if name not in (spec.forecaster, spec.shadow_forecaster) or old.get(name) is not models.get(name):
                del self._pending[(unit, name)]
        self._failing = frozenset(
            name for name in self._failing if old.get(name) is models.get(name) and name not in self._shadow_only
        )
        self._stopped = frozenset(name for name in self._stopped if old.get(name) is models.get(name))

    def to(self, device: ServingDevice) -> ScoringEngine:
        """Move every model to ``device`` ("auto" | "cpu" | "cuda" | torch.device); returns self."""
        self._models = {name: model.to(device) for name, model in self._models.items()}
        return self

    def score(self, jobs: Sequence[WindowJob]) -> list[Score]:
        return self.run(jobs).scores

    def run(self, jobs: Sequence[WindowJob]) -> ScoringOutput:
        """Score a batch of jobs (any units, in arrival order); one ``infer`` per model."""
        out = ScoringOutput()
        # (job index, 0 reconstruction | 1 forecast, Score): sorted at the end into job order.
        keyed: list[tuple[int, int, Score]] = []
        by_model: dict[str, list[int]] = {}
        for i, job in enumerate(jobs):
            spec = self._units.get(job.unit)
            if spec is None:
                raise ValueError(f"job for unknown unit {job.unit!r}")
            if not job.valid:  # a health-only record: the sensor detector's, never the models'
                continue
            for _, name, shadow in spec.roles():
                if not (shadow and name in self._stopped):
                    by_model.setdefault(name, []).append(i)
        # Every forward first, state changes after: a run that raises (CUDA out of memory, say) leaves the
        # per-unit forecasts untouched, so the caller can retry the same jobs (in halves, or on the CPU).
        stacks = {name: self._stack(jobs, idx, name, self._models[name]) for name, idx in by_model.items()}
        # A model that overflows is judged on its outputs (failing_models, ModelVerdict): numpy's warning about it
        # would be noise on stderr, once per batch (or an exception where warnings are errors).
        with np.errstate(over="ignore", invalid="ignore"):
            results = {name: self._models[name].infer(stacks[name]) for name in by_model}
        outputs: dict[str, npt.NDArray[np.float64]] = {}  # model -> [B] each window's output, non-finite if bad
        for name, indices in by_model.items():
            model = self._models[name]
            result = results[name]
            bounds = [self._bounds.get((jobs[i].unit, name)) for i in indices]
            outside = outside_envelope(bounds, model.sensors, stacks[name])
            if model.role == "detector":
                out.non_finite += reconstruction_scores(jobs, indices, name, model, result, keyed, outside, self._units)
                outputs[name] = np.asarray(result.scores, dtype=np.float64)
            else:
                dropped, outputs[name] = forecast_scores(
                    jobs,
                    indices,
                    name,
                    model,
                    result,
                    keyed,
                    out.forecasts,
                    outside,
                    self._units,
                    self._perm,
                    self._pending,
                )
                out.non_finite += dropped
        out.judged, out.shadows_stopped = self._judge(stacks, outputs)
        for i, score in self._health.score(jobs, self._health_model):
            keyed.append((i, 2, score))
        keyed.sort(key=lambda k: (k[0], k[1]))
        out.scores = [s for _, _, s in keyed]
        return out

    def _judge(
        self, stacks: Mapping[str, npt.NDArray[np.float32]], outputs: Mapping[str, npt.NDArray[np.float64]]
    ) -> tuple[dict[str, ModelVerdict], dict[str, ModelVerdict]]:
        """Each active model's verdict on this call's complete windows (``failing_models`` updated from them), and
        the shadow-only models stopped for a non-finite output."""
        failing = set(self._failing)
        verdicts: dict[str, ModelVerdict] = {}
        stopped: dict[str, ModelVerdict] = {}
        for name, windows in stacks.items():
            # [B]: every sensor has a value somewhere in the window
            complete = np.asarray(np.isfinite(windows).any(axis=1), dtype=bool).all(axis=1)
            if not complete.any():
                continue
            judged = outputs[name][complete]
            bad = judged[~np.isfinite(judged)]
            verdict = ModelVerdict(int(judged.size), int(bad.size), float(bad[0]) if bad.size else math.nan)
            if name in self._shadow_only:
                if bad.size:
                    stopped[name] = verdict
                continue
            verdicts[name] = verdict
            if bad.size:
                failing.add(name)
            else:
                failing.discard(name)
        if failing != self._failing:
            self._failing = frozenset(failing)
        if stopped:
            self._stopped = self._stopped | frozenset(stopped)
        return verdicts, stopped

    def _stack(
        self, jobs: Sequence[WindowJob], indices: list[int], name: str, model: ScoringModel
    ) -> npt.NDArray[np.float32]:
        """[B, model.window, S] in the model's sensor order."""
        w = model.window
        windows = np.empty((len(indices), w, len(model.sensors)), dtype=np.float32)
        for b, i in enumerate(indices):
            job = jobs[i]
            if job.window.shape[0] < w:
                raise ValueError(
                    f"window of unit {job.unit!r} has {job.window.shape[0]} rows, model {name!r} needs {w}"
                )
            perm = self._perm[(job.unit, name)]
            tail = job.window[-w:]
            windows[b] = tail if perm is None else tail[:, perm]
        return windows
