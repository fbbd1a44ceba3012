"""A model's batch output -> Scores: the reconstruction and forecast-residual detectors of the ScoringEngine.

API (called by the engine, monitor/scoring.py, once per model per ``run``, with the engine state they read or
change)::

    dropped = reconstruction_scores(jobs, indices, name, model, result, keyed, outside, units)
    dropped, outputs = forecast_scores(jobs, indices, name, model, result, keyed, forecasts, outside, units,
                                       perm_of, pending_of)   # pending_of: (unit, forecaster) -> PendingForecast

``keyed`` collects (job index, 0 reconstruction | 1 forecast, Score), sorted by the engine into job order; a
non-finite score is dropped and counted, never handed on.

Reconstruction (detector "reconstruction"): score and per-sensor errors straight from the detector.

Forecast residual (detector "forecast"): the forecaster's one-step-ahead forecast made at the window ending at
row t-1 is kept per unit and compared, with ``model.residual_score``, against row t's actual values when row t's
job arrives (a forecast made before the actual was known). Each job also yields a new Forecast ``[H, S]``
(``monitor.messages.Forecast``) for publishing. The first job of a unit, and a job whose previous row was not
scored (a gap, or windows the scheduler skipped), gives no forecast Score: there is no forecast for that row.
Forecast Scores carry ``attention_steps`` when the forecaster has attention: the rows it weighed most, as steps
back from the scored row (1 = the row before it). A shadow forecaster's forecasts are not published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from monitor.messages import Detector, Forecast, Score, WindowJob
from monitor.scoring_records import PendingForecast, UnitModels

if TYPE_CHECKING:  # the model contract (models.model_api, no torch); for annotations only
    from models.model_api import InferenceResult, ScoringModel

ATTENTION_TOP_STEPS = 3


Levels = tuple[float, float, float]  # threshold, resolve level, critical level: read once per batch


def _levels(model: ScoringModel) -> Levels:
    return float(model.threshold), model.resolve_level, model.critical_level


def _model_score(
    job: WindowJob,
    detector: Detector,
    name: str,
    levels: Levels,
    value: float,
    errors: dict[str, float],
    outside: tuple[str, ...],
    shadow: bool,
    attention_steps: tuple[int, ...] = (),
) -> Score:
    """One model's Score of one job, with the model's calibrated ``levels``."""
    return Score(
        job.unit,
        detector,
        name,
        job.end_ts,
        value,
        levels[0],
        errors,
        job.received_at,
        job.source_ts,
        attention_steps,
        outside_envelope=outside,
        resolve_level=levels[1],
        critical_level=levels[2],
        shadow=shadow,
    )


def reconstruction_scores(
    jobs: Sequence[WindowJob],
    indices: list[int],
    name: str,
    model: ScoringModel,
    result: InferenceResult,
    keyed: list[tuple[int, int, Score]],
    outside: list[tuple[str, ...]],
    units: Mapping[str, UnitModels],
) -> int:
    """Reconstruction Scores into ``keyed``; returns the scores dropped as non-finite."""
    scores = np.asarray(result.scores, dtype=np.float64)  # [B]
    errors = np.asarray(result.sensor_errors, dtype=np.float64)  # [B, S]
    sensors, levels = model.sensors, _levels(model)
    dropped = 0
    for b, i in enumerate(indices):
        value = float(scores[b])
        if not math.isfinite(value):
            dropped += 1
            continue
        job = jobs[i]
        shadow = units[job.unit].shadow_detector == name
        per_sensor = dict(zip(sensors, errors[b].tolist(), strict=True))
        keyed.append((i, 0, _model_score(job, "reconstruction", name, levels, value, per_sensor, outside[b], shadow)))
    return dropped


def forecast_scores(
    jobs: Sequence[WindowJob],
    indices: list[int],
    name: str,
    model: ScoringModel,
    result: InferenceResult,
    keyed: list[tuple[int, int, Score]],
    forecasts_out: list[Forecast],
    outside: list[tuple[str, ...]],
    units: Mapping[str, UnitModels],
    perm_of: Mapping[tuple[str, str], npt.NDArray[np.intp] | None],
    pending_of: dict[tuple[str, str], PendingForecast],
) -> tuple[int, npt.NDArray[np.float64]]:
    """Forecast Scores into ``keyed``, the new forecasts into ``forecasts_out`` and ``pending_of``; (scores dropped
    as non-finite, [B] each window's output for the engine's verdicts)."""
    forecasts = np.asarray(result.forecasts, dtype=np.float32)  # [B, H, S] model order
    # A window's output for _judge: its first non-finite forecast value, else its residual score when that is
    # non-finite although forecast and actual are finite (the model's scale overflowing), else 0.
    flat = forecasts.reshape(len(indices), -1).astype(np.float64)
    bad_forecast = ~np.isfinite(flat)
    judged = np.where(bad_forecast.any(axis=1), flat[np.arange(len(indices)), bad_forecast.argmax(axis=1)], 0.0)
    attention = None if result.attention is None else np.asarray(result.attention)  # [B, W]
    pairs_forecast: list[npt.NDArray[np.float32]] = []
    pairs_actual: list[npt.NDArray[np.float32]] = []
    pairs_meta: list[tuple[int, int, PendingForecast]] = []
    for b, i in enumerate(indices):
        job = jobs[i]
        spec = units[job.unit]
        perm = perm_of[(job.unit, name)]
        actual = job.window[-1] if perm is None else job.window[-1, perm]  # [S] model order
        pending = pending_of.get((job.unit, name))
        if pending is not None and abs(job.end_ts - pending.made_at - spec.period_s) < 0.5 * spec.period_s:
            pairs_forecast.append(pending.values)
            pairs_actual.append(actual)
            pairs_meta.append((b, i, pending))
        steps: tuple[int, ...] = ()
        if attention is not None:
            w = attention.shape[1]
            top = np.argsort(-attention[b], kind="stable")[:ATTENTION_TOP_STEPS]
            # Index j of the window ending at row t-1 is (w - j) rows before row t, the row scored next.
            steps = tuple(int(w - j) for j in top)
        pending_of[(job.unit, name)] = PendingForecast(job.end_ts, forecasts[b, 0].copy(), steps)
        if spec.shadow_forecaster == name:
            continue  # a shadow's forecasts are never published
        values = forecasts[b] if perm is None else forecasts[b][:, np.argsort(perm)]
        forecasts_out.append(Forecast(job.unit, name, job.end_ts, spec.period_s, values.copy(), job.received_at))
    if not pairs_meta:
        return 0, judged
    paired_forecast, paired_actual = np.stack(pairs_forecast), np.stack(pairs_actual)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is judged below, not a warning on stderr
        score, per_sensor = model.residual_score(paired_forecast, paired_actual)
    inputs_finite: list[bool] = np.logical_and(
        np.isfinite(paired_forecast).all(axis=1), np.isfinite(paired_actual).all(axis=1)
    ).tolist()
    for p, (b, _, _) in enumerate(pairs_meta):
        if inputs_finite[p] and not math.isfinite(float(score[p])) and math.isfinite(judged[b]):
            judged[b] = float(score[p])
    sensors, levels = model.sensors, _levels(model)
    dropped = 0
    for p, (b, i, pending) in enumerate(pairs_meta):
        value = float(score[p])
        if not math.isfinite(value):
            dropped += 1
            continue
        job = jobs[i]
        shadow = units[job.unit].shadow_forecaster == name
        errors = dict(zip(sensors, per_sensor[p].astype(np.float64).tolist(), strict=True))
        made = _model_score(job, "forecast", name, levels, value, errors, outside[b], shadow, pending.attention_steps)
        keyed.append((i, 1, made))
    return dropped, judged
