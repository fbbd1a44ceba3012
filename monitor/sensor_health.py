"""The sensor detector: per-unit sensor health (silent, stuck, spikes, out of range) as Scores of detector "sensor".

API (pure, single-threaded; the ScoringEngine owns one and calls it from ``run``, so the live service and the
backtest get the same Scores)::

    health = SensorHealth({"R1": (("temp", "flow"), HealthSpec(limits={"temp": (0.0, 900.0)}))})
    health.set_envelopes({"R1": model.envelope})     # the unit's detector's training envelope, or None
    health.score(jobs, {"R1": "lstm_ae"})            # -> [(job index, Score)], one per job of a unit with health
    envelope_bounds(envelope, sensors, k)            # (lo [S], hi [S]): [min - k*span, max + k*span], NaN: none
    outside_envelope(bounds, sensors, windows)       # per window of a batch: the sensors outside their bounds

Rules, each giving every sensor a badness (1.0 is the line: above it the sensor is unhealthy):

- ``silent``: the job names it in ``WindowJob.silent`` (no value for longer than the unit's hold-over; the buffers
  emit a health-only record for such rows, see monitor.buffers.ring): badness ``SILENT_BADNESS``.
- ``stuck``: over the newest ``stuck_rows`` rows of a valid window (0: every row it carries, the unit's longest
  model window; never more than it carries), the sensor's standard deviation is below ``stuck_std_ratio *
  min_window_std`` of the envelope (the smallest window std seen in training): badness ``limit / std``, capped at
  ``STUCK_BADNESS``. A sensor whose training history was flat (``min_window_std == 0``) is never stuck. Without a
  ``min_window_std`` for the sensor (no envelope: artifacts from before envelopes) the exact-constant rule applies
  when ``stuck_constant``: the same value in every one of those rows is stuck (badness ``STUCK_BADNESS``).
  Health-only records carry one row: no stuck test.
- ``spikes``: over the same rows, a value that leaves and comes back: the steps into and out of row t have
  opposite signs and both exceed ``spike_k`` times the envelope's ``step_scale`` (the robust spread of the
  sensor's row-to-row steps in training, models/envelope.py) and its ``max_step`` (the largest step in training,
  where the envelope has one): a quantised sensor flipping by one quantum, as it did in training, is no spike
  however small its jitter makes the step scale. A step change (one big step) is not a spike; a
  single out-and-back is, so the badness is ``SPIKE_BADNESS`` for one spike in the rows and ``SPIKE_STEP`` more
  for each further one (critical at three), capped at ``RANGE_CAP``; a spike stays in view while it is in the
  rows, so the alert resolves once they are clean. No spike test for a sensor without a positive ``step_scale``
  (artifacts from before it, a quantised or flat sensor). Needs 3 rows or more.
- ``out_of_range``: the job names the sensor in ``WindowJob.out_of_range``: ingest refused its value as outside
  the configured physical limits ``[min, max]`` (monitor.validation), so the window holds the hold-over value or
  NaN, never the refused one, and the buffers carry that value here (a sensor so named is never also ``silent``).
  Also the newest window value outside those limits (a job built without ingest: unreachable through the
  buffers), or, with an envelope, outside ``[min - k*span, max + k*span]`` of the training range (``k =
  envelope_range_k``, span = max - min; a sensor with span 0 gets no envelope bound). Limits: badness ``1.5 +
  excess / (hi - lo)``, capped at ``RANGE_CAP`` (critical once beyond half the interval's width; a refused value
  without limits in this spec: 1.5; such a sensor is not tested for ``stuck``: its newest rows are held-over
  copies). Envelope: badness grows continuously with the distance beyond [min, max], 1.0
  at the widened bound (see ``_envelope_badness``), capped at ``RANGE_CAP``.

A sensor's badness is its largest; the Score's ``score`` is the worst sensor's, ``threshold`` 1.0, ``resolve_level``
``RESOLVE_LEVEL``, ``critical_level`` ``CRITICAL_LEVEL``, ``sensor_errors`` every sensor's badness (the top
sensor of an alert is the culprit) and ``reason`` the top sensor's rule ("silent" | "stuck" | "spikes" |
"out_of_range"), or
"" while the score is under ``RESOLVE_LEVEL`` (healthy). Vectorised with numpy per group of jobs with the same
sensor count and rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.messages import Score, WindowJob

F64 = npt.NDArray[np.float64]

THRESHOLD = 1.0
RESOLVE_LEVEL = 0.5
CRITICAL_LEVEL = 2.0
SILENT_BADNESS = 1.5
STUCK_BADNESS = 1.5
RANGE_BADNESS = 1.5
RANGE_CAP = 3.0
SPIKE_BADNESS = 1.5  # one spike in the rows
SPIKE_STEP = 0.25  # each further spike: three are critical (CRITICAL_LEVEL)
REASONS = ("silent", "stuck", "out_of_range", "spikes")  # rule order of the badness stack


@dataclass(frozen=True, slots=True)
class HealthSpec:
    """A unit's sensor-health rules (converted from ``units[].sensor_health`` and ``units[].limits``)."""

    silent: bool = True
    stuck: bool = True
    stuck_rows: int = 0  # 0: every row the job carries
    stuck_std_ratio: float = 0.1
    stuck_constant: bool = True  # exact-constant rule where the envelope has no min_window_std
    spikes: bool = True
    spike_k: float = 6.0
    out_of_range: bool = True
    limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # sensor -> (min, max)
    envelope_range_k: float = 1.0

    def __post_init__(self) -> None:
        if self.stuck_rows == 1 or self.stuck_rows < 0:
            raise ValueError(f"stuck_rows must be 0 or >= 2, got {self.stuck_rows}")
        if not self.stuck_std_ratio > 0:
            raise ValueError(f"stuck_std_ratio must be > 0, got {self.stuck_std_ratio}")
        if not self.spike_k > 0:
            raise ValueError(f"spike_k must be > 0, got {self.spike_k}")
        if not self.envelope_range_k >= 0:
            raise ValueError(f"envelope_range_k must be >= 0, got {self.envelope_range_k}")
        for sensor, (lo, hi) in self.limits.items():
            if not lo < hi:
                raise ValueError(f"limits of {sensor!r}: need min < max, got {lo}, {hi}")


def _stat(envelope: Mapping[str, Any] | None, sensor: str, key: str) -> float:
    if not envelope:
        return math.nan
    entry = (envelope.get("sensors") or {}).get(sensor)
    if not isinstance(entry, Mapping):
        return math.nan
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def envelope_bounds(envelope: Mapping[str, Any] | None, sensors: Sequence[str], k: float) -> tuple[F64, F64]:
    """Per sensor ``[min - k*span, max + k*span]`` of the training envelope; NaN where there is none (no envelope,
    sensor missing, span not positive): a NaN bound never compares true."""
    lo = np.full(len(sensors), math.nan)
    hi = np.full(len(sensors), math.nan)
    for j, s in enumerate(sensors):
        low, high = _stat(envelope, s, "min"), _stat(envelope, s, "max")
        span = high - low
        if math.isfinite(span) and span > 0:
            lo[j], hi[j] = low - k * span, high + k * span
    return lo, hi


def outside_envelope(
    bounds: Sequence[tuple[F64, F64] | None], sensors: Sequence[str], windows: npt.NDArray[np.float32]
) -> list[tuple[str, ...]]:
    """Per window of a model's batch ``[B, W, S]`` (model sensor order): the sensors whose newest value lies outside
    its unit's ``bounds`` (envelope_bounds; None: the unit checks none). One vectorised comparison per batch."""
    none: list[tuple[str, ...]] = [()] * len(bounds)
    if all(b is None for b in bounds):
        return none
    nan = np.full(len(sensors), np.nan)
    lo = np.stack([b[0] if b is not None else nan for b in bounds])  # [B, S] model order
    hi = np.stack([b[1] if b is not None else nan for b in bounds])
    newest = windows[:, -1, :].astype(np.float64)
    with np.errstate(invalid="ignore"):
        mask = (newest < lo) | (newest > hi)  # NaN bounds or values: False
    for b in np.flatnonzero(mask.any(axis=1)).tolist():
        none[b] = tuple(s for s, m in zip(sensors, mask[b].tolist(), strict=True) if m)
    return none


@dataclass(frozen=True, slots=True)
class _Params:
    """One unit's rules as arrays in its sensor order."""

    sensors: tuple[str, ...]
    index: Mapping[str, int]
    spec: HealthSpec
    limit_lo: F64  # [S] configured limits, NaN: none
    limit_hi: F64
    far_lo: F64  # [S] envelope bounds widened by envelope_range_k, NaN: none
    far_hi: F64
    stuck_limit: F64  # [S] std under which the sensor is stuck; 0: never (flat in training, or the rule off)
    constant_rule: npt.NDArray[np.bool_]  # [S] exact-constant rule applies
    spike_step: F64  # [S] both steps of a spike exceed it (spike_k x step scale, >= max step); 0: no test


def _params(sensors: tuple[str, ...], spec: HealthSpec, envelope: Mapping[str, Any] | None) -> _Params:
    n = len(sensors)
    limit_lo, limit_hi = np.full(n, math.nan), np.full(n, math.nan)
    for j, s in enumerate(sensors):
        if s in spec.limits:
            limit_lo[j], limit_hi[j] = spec.limits[s]
    far_lo, far_hi = envelope_bounds(envelope, sensors, spec.envelope_range_k)
    min_std = np.array([_stat(envelope, s, "min_window_std") for s in sensors])
    # A rule that is off is a limit nothing reaches: the batch code then needs no per-unit switches.
    stuck_limit = spec.stuck_std_ratio * min_std if spec.stuck else np.zeros(n)  # NaN (no envelope): not stuck
    constant_rule = np.isnan(min_std) & spec.stuck_constant & spec.stuck
    step_scale = np.array([_stat(envelope, s, "step_scale") for s in sensors])
    max_step = np.array([_stat(envelope, s, "max_step") for s in sensors])  # NaN (envelopes before it): no floor
    # fmax skips a NaN floor; no positive step scale (NaN, 0) or the rule off: 0, no test.
    spike_step = np.where(step_scale > 0, np.fmax(spec.spike_k * step_scale, max_step), 0.0)
    spike_step = spike_step if spec.spikes else np.zeros(n)
    return _Params(
        sensors,
        {s: j for j, s in enumerate(sensors)},
        spec,
        limit_lo,
        limit_hi,
        far_lo,
        far_hi,
        stuck_limit,
        constant_rule,
        spike_step,
    )


def _range_badness(values: F64, lo: F64, hi: F64) -> F64:
    """[B, S] badness of values outside [lo, hi] (NaN bounds or values: 0)."""
    with np.errstate(invalid="ignore"):
        excess = np.fmax(lo - values, values - hi)  # > 0 outside; NaN where a bound or the value is NaN
        width = hi - lo
        bad = np.where(excess > 0, np.minimum(RANGE_BADNESS + excess / width, RANGE_CAP), 0.0)
    return np.nan_to_num(bad, nan=0.0)


def _refused_badness(value: float, lo: float, hi: float) -> float:
    """``_range_badness`` of one value refused as outside [lo, hi]; RANGE_BADNESS when this spec has no limits for
    the sensor (NaN bounds: the parser's limits came from elsewhere)."""
    excess = max(lo - value, value - hi)
    if not (excess > 0 and hi > lo):  # also NaN
        return RANGE_BADNESS
    return min(RANGE_BADNESS + excess / (hi - lo), RANGE_CAP)


def _envelope_badness(values: F64, lo: F64, hi: F64, k: F64) -> F64:
    """[B, S] badness of values beyond the training range, in units of the widening k*span: 1.0 at the far
    bound [min - k*span, max + k*span], 0.5 half-way there. Continuous, unlike a physical limit, so that a value
    hovering at the bound (a fault's noise around it) neither flaps an alert nor holds one through the resolve
    level: the hysteresis between 1.0 and RESOLVE_LEVEL is then half a widening."""
    with np.errstate(invalid="ignore", divide="ignore"):
        widening = (hi - lo) * k / (1.0 + 2.0 * k)  # k*span, from the widened bounds
        excess = np.fmax((lo + widening) - values, values - (hi - widening))  # beyond [min, max]; NaN: no bound
        bad = np.where((excess > 0) & (widening > 0), np.minimum(excess / widening, RANGE_CAP), 0.0)
    return np.nan_to_num(bad, nan=0.0)


def _spike_badness(tails: F64, spike_step: F64) -> F64:
    """[B, S] badness of the out-and-back spikes in ``tails`` [B, R, S] (R >= 3); ``spike_step`` [B, S] the step
    both sides of a spike exceed (0: no test; see the module docstring)."""
    steps = np.diff(tails, axis=1)  # [B, R-1, S]
    into, out = steps[:, :-1, :], steps[:, 1:, :]  # the steps into and out of each interior row
    big = np.minimum(np.abs(into), np.abs(out)) > spike_step[:, None, :]
    spike = big & (np.sign(into) == -np.sign(out)) & (spike_step > 0)[:, None, :]
    count = spike.sum(axis=1)  # [B, S]
    return np.where(count > 0, np.minimum(SPIKE_BADNESS + SPIKE_STEP * (count - 1), RANGE_CAP), 0.0)


class SensorHealth:
    """Sensor-detector Scores for the jobs of the units that have a HealthSpec; see the module docstring."""

    def __init__(self, units: Mapping[str, tuple[tuple[str, ...], HealthSpec]]) -> None:
        self._units = dict(units)
        self._params: dict[str, _Params] = {}
        self.set_envelopes({})

    def set_envelopes(self, envelopes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """The training envelope of each unit's detector model (missing or None: no envelope)."""
        self._params = {u: _params(sensors, spec, envelopes.get(u)) for u, (sensors, spec) in self._units.items()}

    def __contains__(self, unit: str) -> bool:
        return unit in self._params

    def score(self, jobs: Sequence[WindowJob], model_of: Mapping[str, str]) -> list[tuple[int, Score]]:
        """One Score per job of a unit with health, as (job index, Score), in job order; ``model_of[unit]`` is
        the Score's model label."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, job in enumerate(jobs):
            p = self._params.get(job.unit)
            if p is None:
                continue
            rows = 1
            if job.valid and (p.spec.stuck or p.spec.spikes):
                carried = job.window.shape[0]
                rows = min(p.spec.stuck_rows or carried, carried)
            groups.setdefault((len(p.sensors), rows), []).append(i)
        keyed: list[tuple[int, Score]] = []
        for (n_sensors, rows), indices in groups.items():
            keyed.extend(self._score_group(jobs, indices, n_sensors, rows, model_of))
        keyed.sort(key=lambda k: k[0])
        return keyed

    def _score_group(
        self,
        jobs: Sequence[WindowJob],
        indices: list[int],
        n_sensors: int,
        rows: int,
        model_of: Mapping[str, str],
    ) -> list[tuple[int, Score]]:
        params = [self._params[jobs[i].unit] for i in indices]
        b = len(indices)
        newest = np.stack([jobs[i].window[-1] for i in indices]).astype(np.float64)  # [B, S]
        bad = np.zeros((len(REASONS), b, n_sensors))  # [rule, B, S]

        for r, (i, p) in enumerate(zip(indices, params, strict=True)):
            if p.spec.silent and jobs[i].silent:
                for s in jobs[i].silent:
                    bad[0, r, p.index[s]] = SILENT_BADNESS

        if rows >= 2:  # valid windows of units with the stuck or the spike rule
            tails = np.stack([jobs[i].window[-rows:] for i in indices])  # [B, R, S], finite (valid windows)
            limit = np.stack([p.stuck_limit for p in params])  # [B, S]
            rule = np.stack([p.constant_rule for p in params])
            if (limit > 0).any():  # the envelope's rule: std under a share of training's smallest window std
                std = tails.std(axis=1, dtype=np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(std > 0, limit / std, np.where(limit > 0, np.inf, 0.0))
                bad[1] = np.minimum(np.nan_to_num(ratio, nan=0.0, posinf=STUCK_BADNESS), STUCK_BADNESS)
            if rule.any():  # no envelope for the sensor: exactly constant
                constant = tails.max(axis=1) == tails.min(axis=1)
                bad[1] = np.where(rule, np.where(constant, STUCK_BADNESS, 0.0), bad[1])
            if rows >= 3:
                bad[3] = _spike_badness(tails.astype(np.float64), np.stack([p.spike_step for p in params]))

        ranged = [r for r, p in enumerate(params) if p.spec.out_of_range]
        if ranged:
            sel = np.array(ranged, dtype=np.intp)
            vals = newest[sel]
            limits = _range_badness(
                vals, np.stack([params[r].limit_lo for r in ranged]), np.stack([params[r].limit_hi for r in ranged])
            )
            far = _envelope_badness(
                vals,
                np.stack([params[r].far_lo for r in ranged]),
                np.stack([params[r].far_hi for r in ranged]),
                np.array([params[r].spec.envelope_range_k for r in ranged])[:, None],
            )
            bad[2, sel] = np.maximum(limits, far)
            for r in ranged:  # values refused at the door: the window never held them
                refused = jobs[indices[r]].out_of_range
                for sensor, value in refused:
                    j = params[r].index.get(sensor)
                    if j is None:
                        continue
                    lo, hi = float(params[r].limit_lo[j]), float(params[r].limit_hi[j])
                    bad[2, r, j] = max(bad[2, r, j], _refused_badness(value, lo, hi))
                    bad[1, r, j] = 0.0  # its newest rows are held-over copies, not a flat-lined sensor

        badness = bad.max(axis=0)  # [B, S]
        top = badness.argmax(axis=1)  # [B]
        worst = badness[np.arange(b), top]
        rule_of_top = bad[:, np.arange(b), top].argmax(axis=0)  # [B]
        out: list[tuple[int, Score]] = []
        for r, i in enumerate(indices):
            job, p = jobs[i], params[r]
            value = float(worst[r])
            reason = REASONS[int(rule_of_top[r])] if value >= RESOLVE_LEVEL else ""
            score = Score(
                job.unit,
                "sensor",
                model_of.get(job.unit, "sensor"),
                job.end_ts,
                value,
                THRESHOLD,
                dict(zip(p.sensors, badness[r].tolist(), strict=True)),
                job.received_at,
                job.source_ts,
                resolve_level=RESOLVE_LEVEL,
                critical_level=CRITICAL_LEVEL,
                reason=reason,
            )
            out.append((i, score))
        return out
