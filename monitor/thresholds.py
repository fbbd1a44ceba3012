"""Thresholds that follow the normal score distribution online, with guards so they never learn a fault.

API (pure, single-threaded; one per (unit, detector), owned by its AlertTracker)::

    policy = AdaptPolicy(target_far=1e-4, max_drift_per_hour=0.1, floor=1.0, ceiling=2.0)
    spot = AdaptiveThreshold(policy)
    z = spot.level(calibrated=0.8, base=0.31)   # the threshold in force (calibrated until enough peaks)
    spot.learn(score, ts)                       # feed a score the caller judged normal (see the guards)
    spot.snapshot() -> dict; spot.restore(dict) # kept in the retained alert state across restarts

Method: SPOT (Siffer et al., KDD 2017, "Anomaly Detection in Streams with Extreme Value Theory") over a
sliding set of peaks. ``base`` is a high level of the normal scores fixed at calibration (the artifact's
resolve level, a 99 % quantile of its calibration scores). Each learned score counts; one above ``base`` is a
peak. From the last ``max_peaks`` peaks and the number of scores they were drawn from, a generalized Pareto
tail (method of moments: closed form, cheap enough to refit every few peaks) gives the level exceeded by
``target_far`` of normal scores, as at training time:

    z = base + sigma / gamma * ((target_far * n / n_peaks) ** -gamma - 1)

Guards (why each exists):

- the caller feeds only scores it judges normal: not while an episode is firing, not within ``guard_s`` after
  an episode resolved, not while the unit is outside the model's envelope. Scores around a hit are held until
  the fire rule has decided: if the hits pass without an alert they are learned (isolated exceedances belong
  to the normal tail), if an alert fires they are dropped. A fault's scores are never peaks;
- ``max_drift_per_hour``: the level moves at most this share of the calibrated threshold per hour of event
  time, so a slow drift fault (a ramp over hours) that rises faster than this overtakes the level and alerts;
- ``floor`` / ``ceiling``: the level stays within these multiples of the calibrated threshold, so months of
  adaptation can neither silence the detector nor make it hair-triggered;
- below ``min_peaks`` learned peaks the calibrated threshold holds: a tail of a handful of points is noise.

The state is small (at most ``max_peaks`` floats and three counters) so it travels in the retained alert state.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class AdaptPolicy:
    """How a threshold may adapt (from a unit's ``alerts.adaptive`` config). ``enabled=False``: fixed."""

    enabled: bool = True
    target_far: float = 1e-4  # share of normal scores above the level: the training default's meaning
    max_peaks: int = 100  # peaks kept: at a 1 % peak rate about 10,000 scores, under 3 h at 1 Hz
    min_peaks: int = 30
    refit_every: int = 5  # peaks between refits
    # Share of the calibrated threshold the level may move per hour: a drift fault whose score rises faster
    # overtakes the level (tests/unit/test_thresholds.py: a ramp of 25 %/h alerts within the hour).
    max_drift_per_hour: float = 0.1
    # The level stays within [floor, ceiling] x the calibrated threshold. floor 1: adaptation only ever relaxes a
    # threshold that live normal data proves too tight; below it, the fit of peaks that were learned only under
    # the level in force (a truncated tail) would talk the threshold down step by step.
    floor: float = 1.0
    ceiling: float = 2.0
    guard_s: float = 600.0  # no learning this long after an episode resolved (event time)

    def __post_init__(self) -> None:
        if not 0.0 < self.target_far < 1.0:
            raise ValueError(f"target_far must be in (0, 1), got {self.target_far}")
        if not 2 <= self.min_peaks <= self.max_peaks:
            raise ValueError(f"need 2 <= min_peaks <= max_peaks, got {self.min_peaks}, {self.max_peaks}")
        if self.refit_every < 1:
            raise ValueError("refit_every must be >= 1")
        if not (self.max_drift_per_hour >= 0 and math.isfinite(self.max_drift_per_hour)):
            raise ValueError("max_drift_per_hour must be a finite number >= 0")
        if not 0.0 < self.floor <= 1.0 <= self.ceiling < math.inf:
            raise ValueError(f"need 0 < floor <= 1 <= ceiling, got {self.floor}, {self.ceiling}")
        if self.guard_s < 0:
            raise ValueError("guard_s must be >= 0")


def gpd_level(excesses: list[float], rate: float, target_far: float) -> float | None:
    """Excess over the base exceeded by ``target_far`` of all scores, from peaks seen at ``rate`` (moments fit).

    None when the peaks do not define a tail (all equal, or the target is not in the tail above the base)."""
    n = len(excesses)
    if n < 2 or rate <= 0 or target_far >= rate:
        return None
    mean = sum(excesses) / n
    var = sum((e - mean) ** 2 for e in excesses) / (n - 1)
    if not (mean > 0 and var > 0):
        return None
    ratio = mean * mean / var
    # Method of moments (Hosking & Wallis 1987); the shape is held inside (-0.5, 0.5), where the moments exist
    # and a few peaks cannot extrapolate to absurd levels.
    gamma = min(0.45, max(-0.45, 0.5 * (1.0 - ratio)))
    sigma = 0.5 * mean * (1.0 + ratio)
    r = target_far / rate  # < 1
    if abs(gamma) < 1e-6:
        return -sigma * math.log(r)
    return float(sigma / gamma * (r ** (-gamma) - 1.0))


class AdaptiveThreshold:
    """One score stream's threshold in force; see the module docstring."""

    def __init__(self, policy: AdaptPolicy) -> None:
        self.policy = policy
        self._calibrated = math.nan  # the threshold this state adapts; another one (a new model) resets it
        self._base = math.nan
        self._ratio = 1.0  # level in force / calibrated threshold
        self._peaks: deque[float] = deque(maxlen=policy.max_peaks)  # raw scores above the base
        self._peak_seen: deque[int] = deque(maxlen=policy.max_peaks)  # ``_seen`` when each peak came
        self._seen = 0  # scores learned so far
        self._since_refit = 0
        self._last_move_ts = math.nan

    @property
    def ratio(self) -> float:
        """The level in force as a multiple of the calibrated threshold (1.0 while not adapted)."""
        return self._ratio

    @property
    def peaks(self) -> int:
        return len(self._peaks)

    def level(self, calibrated: float, base: float) -> float:
        """The threshold in force for a score calibrated at ``calibrated`` with peaks counted above ``base``."""
        if not self.policy.enabled:
            return calibrated
        if calibrated != self._calibrated or not (math.isfinite(base) and 0 < base < calibrated):
            self._reset(calibrated, base)
        return self._ratio * calibrated

    def _reset(self, calibrated: float, base: float) -> None:
        self._calibrated = calibrated
        # A base at or above the threshold (an old artifact without a resolve level): 80 % of it.
        self._base = base if math.isfinite(base) and 0 < base < calibrated else 0.8 * calibrated
        self._ratio = 1.0
        self._peaks.clear()
        self._peak_seen.clear()
        self._seen = 0
        self._since_refit = 0
        self._last_move_ts = math.nan

    def learn(self, score: float, ts: float, confirmed: bool = False) -> None:
        """Count one score the caller judged normal. One above the level in force only when ``confirmed``: the
        caller saw it pass without an alert (an isolated exceedance is part of the normal tail; leaving all of
        them out would truncate the tail and talk the level down)."""
        if not self.policy.enabled or not math.isfinite(self._calibrated) or not math.isfinite(score):
            return
        if score > self._ratio * self._calibrated and not confirmed:
            return
        if math.isnan(self._last_move_ts):
            self._last_move_ts = ts
        self._seen += 1
        if score <= self._base:
            return
        self._peaks.append(score)
        self._peak_seen.append(self._seen)
        self._since_refit += 1
        if len(self._peaks) >= self.policy.min_peaks and self._since_refit >= self.policy.refit_every:
            self._since_refit = 0
            self._refit(ts)

    def _refit(self, ts: float) -> None:
        p = self.policy
        # Scores the kept peaks were drawn from: from the oldest kept peak to now.
        n = self._seen - self._peak_seen[0] + 1
        excess = gpd_level([v - self._base for v in self._peaks], len(self._peaks) / n, p.target_far)
        if excess is None:
            return
        target = (self._base + excess) / self._calibrated
        hours = max(0.0, ts - self._last_move_ts) / HOUR_S
        step = p.max_drift_per_hour * hours
        ratio = min(max(target, self._ratio - step), self._ratio + step)
        self._ratio = min(max(ratio, p.floor), p.ceiling)
        self._last_move_ts = ts

    # --- state kept across restarts ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "calibrated": _finite_or_none(self._calibrated),
            "base": _finite_or_none(self._base),
            "ratio": self._ratio,
            "seen": self._seen,
            "peaks": [round(v, 9) for v in self._peaks],
            "peak_seen": list(self._peak_seen),
            "last_move_ts": _finite_or_none(self._last_move_ts),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a ``snapshot``; ValueError (state unchanged) if it is malformed."""
        try:
            calibrated = _num_or_nan(state["calibrated"])
            base = _num_or_nan(state["base"])
            ratio = _num(state["ratio"])
            seen = int(state["seen"])
            peaks = [_num(v) for v in state["peaks"]]
            peak_seen = [int(v) for v in state["peak_seen"]]
            last_move_ts = _num_or_nan(state["last_move_ts"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed threshold state: {exc!r}") from exc
        if len(peaks) != len(peak_seen) or seen < 0 or any(s > seen for s in peak_seen):
            raise ValueError("malformed threshold state: peaks and counters disagree")
        p = self.policy
        self._calibrated, self._base = calibrated, base
        self._ratio = min(max(ratio, p.floor), p.ceiling)  # a policy tightened since the snapshot applies now
        self._seen = seen
        self._peaks = deque(peaks[-p.max_peaks :], maxlen=p.max_peaks)
        self._peak_seen = deque(peak_seen[-p.max_peaks :], maxlen=p.max_peaks)
        self._since_refit = 0
        self._last_move_ts = last_move_ts


def _num(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {x!r}")
    return float(x)


def _num_or_nan(x: Any) -> float:
    return math.nan if x is None else _num(x)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
