"""Alarm thresholds from scores of held-out *normal* data, for a target false-alarm rate (FAR), and what
the data can promise about them.

The record ``calibrate`` returns (the artifact's manifest["threshold"]) says which method was *actually*
used, never the one asked for when the data could not carry it:

- ``quantile``: the empirical (1 - FAR) quantile of the calibration scores. Good down to rates of a
  few over the *effective* number of calibration scores.
- ``pot``: peaks over threshold (Siffer et al., KDD 2017, "Anomaly Detection in Streams with Extreme
  Value Theory", the SPOT initialisation), with a generalized Pareto distribution (GPD, shape gamma,
  scale sigma) fitted by maximum likelihood to >= 20 *declustered* excesses over a high initial
  quantile t; extrapolated as z_q = t + sigma/gamma * ((q n / N_t)^(-gamma) - 1), n scores, N_t of
  them above t (for gamma -> 0 the limit t - sigma ln(q n / N_t)). This reaches rates rarer than
  1/n that a quantile cannot estimate.
- ``pot_moments``: the same, the GPD fitted by the method of moments (10 to 19 cluster peaks, or an
  irregular maximum-likelihood fit): cruder, so it is trusted for a shorter reach.
- ``max_margin``: the target lies beyond what the data can estimate and no tail could be fitted: the
  empirical maximum times ``MAX_MARGIN``. Never ``supported``.

Overlapping windows: neighbouring window scores share W - 1 rows, so they are strongly correlated
and n scores hold far fewer independent observations. ``decorrelation_length`` estimates the lag L
after which the scores' autocorrelation falls below 1/e (bounded to [1, window]); ``n_effective =
n / L``. POT declusters its excesses: exceedances closer than L apart form one cluster, and the GPD
is fitted to the cluster peaks (independent observations, so the >= 20 rule counts real
information). The rate stays per window: N_t / n is the rate of clusters times their mean size at t.

``supported``: whether the data can carry the target with the method used, judged on the expected
number of independent exceedances at the target, ``target_far * n_effective``: the quantile needs
>= 10 (about 30 % error on the rate), POT may extrapolate down to 0.1 (ten times beyond the data's
own resolution 1 / n_effective), moments down to 0.3. When not, ``needed_rows`` says how many
calibration scores (one per row) would be needed.

Two more levels for the alert stage: ``resolve_value`` (a quantile, default 0.99, of the calibration
scores: where normal scores live, used to resolve an episode) and ``critical_value`` (the fitted
tail's level at target_far / 100, or ``CRITICAL_FACTOR`` x value when no tail is fitted; never below
value).

Calibrate on normal data the model was *not* trained on (the split's calibration part), never on
test or fault data.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

CALIBRATION_METHODS: tuple[str, ...] = ("quantile", "pot")
# What a threshold record's "method" may say (the method actually used).
RECORDED_METHODS: tuple[str, ...] = ("quantile", "pot", "pot_moments", "max_margin")

# SPOT's initial threshold: the 98% quantile (Siffer et al. use a high quantile such as 98%).
DEFAULT_POT_INITIAL_QUANTILE = 0.98
# Cluster peaks needed for a GPD fit: maximum likelihood from 20, the method of moments from 10; below
# that a fitted tail is noise.
_MIN_EXCESSES_FOR_MLE = 20
_MIN_EXCESSES_FOR_MOMENTS = 10
# Expected independent exceedances at the target (target_far * n_effective) each method needs to be
# trusted; see the module docstring.
MIN_EXPECTED_EXCEEDANCES: dict[str, float] = {"quantile": 10.0, "pot": 0.1, "pot_moments": 0.3}
MAX_MARGIN = 1.5  # max_margin: the threshold is the largest calibration score times this
DEFAULT_RESOLVE_QUANTILE = 0.99
CRITICAL_FAR_DIVISOR = 100.0  # critical_value: the tail's level at target_far / 100 ...
CRITICAL_FACTOR = 2.0  # ... or value x 2 where no tail is fitted (the alert stage's former critical_ratio)
RESOLVE_FALLBACK_RATIO = 0.8  # old artifacts without resolve_value: the alert stage's former resolve_ratio


def _finite_scores(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(scores, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise ValueError("calibration needs at least one finite score")
    return arr


def _check_far(target_far: float) -> None:
    if not (0.0 < target_far < 1.0):
        raise ValueError(f"target false-alarm rate must be in (0, 1), got {target_far}")


def decorrelation_length(scores: npt.ArrayLike, max_lag: int | None = None) -> int:
    """First lag at which the autocorrelation of ``scores`` (in time order) falls below 1/e, in [1, max_lag].

    ``max_lag`` defaults to a tenth of the series (at most 1000). A constant series gives 1. The
    autocorrelation is computed by FFT (O(n log n)), biased estimator, mean removed.
    """
    arr = _finite_scores(scores)
    n = arr.size
    cap = max(1, min(n // 10, 1000)) if max_lag is None else max(1, int(max_lag))
    centred = arr - arr.mean()
    if n < 3 or not np.any(centred):
        return 1
    size = 1 << (2 * n - 1).bit_length()  # zero padding: a linear, not circular, correlation
    spectrum = np.fft.rfft(centred, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: min(cap, n - 1) + 1]
    acf = acf / acf[0]
    below = np.flatnonzero(acf[1:] < math.exp(-1.0))
    return int(min(below[0] + 1, cap)) if below.size else cap


def decluster(exceeding: npt.NDArray[np.bool_], run: int) -> list[npt.NDArray[np.intp]]:
    """Runs declustering: indices of exceedances, cut into clusters wherever two are more than ``run`` apart."""
    idx = np.flatnonzero(exceeding)
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > run) + 1
    return list(np.split(idx, cuts))


def quantile_threshold(scores: npt.ArrayLike, target_far: float, **kwargs: Any) -> dict[str, Any]:
    """Empirical quantile: a score above the returned value occurs on about ``target_far`` of normal data."""
    return calibrate(scores, "quantile", target_far, **kwargs)


def fit_gpd(excesses: npt.NDArray[np.float64]) -> tuple[float, float, str]:
    """Fit a generalized Pareto (location 0) to positive excesses -> (gamma, sigma, fit method).

    Maximum likelihood with scipy when there are enough excesses and it converges to a
    sensible shape; otherwise the method of moments (Hosking & Wallis 1987).
    """
    mean = float(np.mean(excesses))
    var = float(np.var(excesses, ddof=1)) if excesses.size > 1 else mean * mean
    # method of moments: gamma = (1 - mean^2/var)/2, sigma = mean (1 + mean^2/var)/2
    ratio = mean * mean / var if var > 0 else 1.0
    mom = (0.5 * (1.0 - ratio), 0.5 * mean * (1.0 + ratio))
    if excesses.size < _MIN_EXCESSES_FOR_MLE:
        return mom[0], mom[1], "moments"
    try:
        from scipy.stats import genpareto  # scipy comes with scikit-learn

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimizer chatter is not a failure; the result is checked below
            gamma, _, sigma = genpareto.fit(excesses, floc=0.0)
    except Exception:  # a numerical failure of the optimizer: fall back, never fail calibration
        return mom[0], mom[1], "moments"
    # A shape below -0.5 or above 1 is outside the region where the MLE is regular: distrust it.
    if not (math.isfinite(gamma) and math.isfinite(sigma) and sigma > 0 and -0.5 < gamma < 1.0):
        return mom[0], mom[1], "moments"
    return float(gamma), float(sigma), "mle"


def _gpd_level(t: float, gamma: float, sigma: float, rate_above_t: float, far: float) -> float:
    """Level exceeded with probability ``far`` by a score, given P(score > t) = ``rate_above_t`` and the GPD tail."""
    r = far / rate_above_t  # < 1
    value = t - sigma * math.log(r) if abs(gamma) < 1e-06 else t + sigma / gamma * (r ** (-gamma) - 1.0)
    if gamma < 0:
        # A bounded tail: never put the threshold beyond the fitted upper end point.
        value = min(value, t - sigma / gamma)
    return float(value)


def _empirical(arr: npt.NDArray[np.float64], target_far: float, n_eff: float) -> tuple[str, float, dict[str, Any]]:
    """No tail fit: the quantile when the target lies inside the data (>= 1 expected exceedance), else max x margin."""
    if target_far * n_eff >= 1.0:
        # "higher" never interpolates below an observed score, so the observed FAR on the
        # calibration set itself is at most target_far.
        return "quantile", float(np.quantile(arr, 1.0 - target_far, method="higher")), {"quantile": 1.0 - target_far}
    top = float(arr.max())
    # Scores are squared errors (>= 0); a non-positive maximum gets the margin on the spread instead.
    value = top * MAX_MARGIN if top > 0 else top + (top - float(arr.min())) * (MAX_MARGIN - 1.0)
    return "max_margin", value, {"max": top, "margin": MAX_MARGIN}


def _pot(
    arr: npt.NDArray[np.float64], target_far: float, run: int, n_eff: float, initial_quantile: float
) -> tuple[str, float, dict[str, Any], tuple[float, float, float, float] | None]:
    """POT on declustered excesses -> (method used, value, parameters, tail (t, gamma, sigma, rate) or None)."""
    n = arr.size
    t = float(np.quantile(arr, initial_quantile))
    above = arr > t
    n_t = int(np.count_nonzero(above))
    clusters = decluster(above, run)
    params: dict[str, Any] = {
        "initial_quantile": initial_quantile,
        "t": t,
        "n_excesses": n_t,
        "n_clusters": len(clusters),
    }
    if n_t == 0 or target_far >= n_t / n:
        # The target is not in the tail above t (or there is no tail): a plain quantile is the answer.
        method, value, extra = _empirical(arr, target_far, n_eff)
        return method, value, {**params, **extra}, None
    if len(clusters) < _MIN_EXCESSES_FOR_MOMENTS:
        method, value, extra = _empirical(arr, target_far, n_eff)
        reason = f"{len(clusters)} cluster peaks over t: no tail fit"
        return method, value, {**params, **extra, "reason": reason}, None
    peaks = np.array([arr[c].max() for c in clusters]) - t
    gamma, sigma, fit = fit_gpd(peaks)
    rate = n_t / n  # clusters per window x their mean size at t
    value = _gpd_level(t, gamma, sigma, rate, target_far)
    params.update({"gamma": gamma, "sigma": sigma, "fit": fit})
    return ("pot" if fit == "mle" else "pot_moments"), value, params, (t, gamma, sigma, rate)


def _support(
    method: str, target_far: float, n_eff: float, run: int, params: dict[str, Any], goal: str
) -> tuple[bool, int | None]:
    """Whether the data carries the target with ``method``; if not, the calibration scores that would."""
    expected = target_far * n_eff
    need = MIN_EXPECTED_EXCEEDANCES.get(method)
    if need is not None and expected >= need:
        return True, None
    # What would be needed with more data of the same kind: the reach of ``goal`` (the method that more
    # data would allow), and for POT enough cluster peaks for a likelihood fit (their count grows with n).
    n_eff_needed = MIN_EXPECTED_EXCEEDANCES[goal] / target_far
    if goal == "pot":
        clusters = max(int(params.get("n_clusters", 0)), 1)
        n_eff_needed = max(n_eff_needed, n_eff * _MIN_EXCESSES_FOR_MLE / clusters)
    return False, math.ceil(max(n_eff_needed, n_eff) * run)


def _message(method: str, target_far: float, n: int, n_eff: float, needed: int | None) -> str:
    if needed is None:
        return f"{method} at target FAR {target_far:g}: {n} scores, {n_eff:.0f} effective"
    return (
        f"the calibration cannot support target FAR {target_far:g} ({method}): {n} scores hold about "
        f"{n_eff:.0f} independent ones, {target_far * n_eff:.3g} exceedances expected at the target; "
        f"about {needed} calibration scores would be needed"
    )


def calibrate(
    scores: npt.ArrayLike,
    method: str = "quantile",
    target_far: float = 0.01,
    *,
    window: int | None = None,
    decorrelation: int | None = None,
    resolve_quantile: float = DEFAULT_RESOLVE_QUANTILE,
    initial_quantile: float = DEFAULT_POT_INITIAL_QUANTILE,
) -> dict[str, Any]:
    """Threshold record for the manifest; ``scores`` in time order (the autocorrelation is measured on them).

    ``method``: "quantile" or "pot" (asked for; the record says what was used, see the module docstring).
    ``window``: the model's window, the upper bound of the decorrelation length; ``decorrelation``: a
    known length instead of the estimate (1 for independent scores). Returns ``{"method", "value",
    "target_far", "n_calibration", "parameters", "n_effective", "decorrelation_windows", "resolve_value",
    "resolve_quantile", "critical_value", "supported", "needed_rows", "message", "warnings"}``, all finite
    or null (``needed_rows``: calibration scores, one per row; train_model rescales it to history rows).
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}: expected one of {', '.join(CALIBRATION_METHODS)}")
    _check_far(target_far)
    if not (0.0 < initial_quantile < 1.0 and 0.0 < resolve_quantile < 1.0):
        raise ValueError("initial_quantile and resolve_quantile must be in (0, 1)")
    arr = _finite_scores(scores)
    n = int(arr.size)
    run = int(decorrelation) if decorrelation is not None else decorrelation_length(arr, window)
    run = max(1, run)
    n_eff = n / run
    tail = None
    if method == "pot":
        used, value, params, tail = _pot(arr, target_far, run, n_eff, initial_quantile)
    else:
        used, value, params = _empirical(arr, target_far, n_eff)
    # POT is the goal only for a target in the tail above t; a laxer one is a quantile's job.
    goal = "pot" if method == "pot" and target_far < 1.0 - initial_quantile else "quantile"
    supported, needed = _support(used, target_far, n_eff, run, params, goal)
    resolve_q, resolve_value = _resolve_level(arr, value, target_far, resolve_quantile)
    critical_value, critical_rule = _critical_level(value, target_far, tail)
    params["critical"] = critical_rule
    message = _message(used, target_far, n, n_eff, needed)
    return {
        "method": used,
        "requested_method": method,
        "value": float(value),
        "target_far": target_far,
        "n_calibration": n,
        "parameters": params,
        "n_effective": float(n_eff),
        "decorrelation_windows": run,
        "resolve_value": resolve_value,
        "resolve_quantile": resolve_q,
        "critical_value": critical_value,
        "supported": supported,
        "needed_rows": needed,
        "message": message,
        "warnings": [] if supported else [message],
    }


def _resolve_level(
    arr: npt.NDArray[np.float64], value: float, target_far: float, resolve_quantile: float
) -> tuple[float, float]:
    """(quantile used, level): where normal scores live. Kept under the threshold: for a lax target (a 1 %
    quantile threshold) the 99 % quantile would *be* the threshold, so the quantile drops to 1 - 5 x target."""
    q = min(resolve_quantile, max(0.5, 1.0 - 5.0 * target_far))
    return q, float(min(np.quantile(arr, q), value))


def _critical_level(
    value: float, target_far: float, tail: tuple[float, float, float, float] | None
) -> tuple[float, dict[str, Any]]:
    """The level at target_far / 100 on the fitted tail, or value x CRITICAL_FACTOR; never below value."""
    far = target_far / CRITICAL_FAR_DIVISOR
    if tail is not None:
        t, gamma, sigma, rate = tail
        level = _gpd_level(t, gamma, sigma, rate, far)
        if level > value:  # a bounded tail can put both at its end point: then the factor
            return level, {"rule": "tail", "far": far}
    return max(value * CRITICAL_FACTOR, value), {"rule": "factor", "factor": CRITICAL_FACTOR}


def pot_threshold(
    scores: npt.ArrayLike, target_far: float, initial_quantile: float = DEFAULT_POT_INITIAL_QUANTILE, **kwargs: Any
) -> dict[str, Any]:
    """Peaks-over-threshold threshold for a (possibly very rare) ``target_far``; see the module docstring."""
    return calibrate(scores, "pot", target_far, initial_quantile=initial_quantile, **kwargs)


def resolve_level(record: dict[str, Any]) -> float:
    """The record's resolve level, or RESOLVE_FALLBACK_RATIO x threshold for records without one (old artifacts)."""
    value = record.get("resolve_value")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return RESOLVE_FALLBACK_RATIO * float(record.get("value", math.nan))


def critical_level(record: dict[str, Any]) -> float:
    """The record's critical level, or CRITICAL_FACTOR x threshold for records without one (old artifacts)."""
    value = record.get("critical_value")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return CRITICAL_FACTOR * float(record.get("value", math.nan))


class ManifestLevels:
    """The calibrated levels and envelope of a scoring model, read from its ``manifest`` (mixed into LoadedModel
    and PcaDetector, so both expose them the same way; artifacts from before these fields get the fallbacks)."""

    manifest: dict[str, Any]

    @property
    def calibration(self) -> dict[str, Any]:
        """The threshold record (manifest["threshold"]): method used, n_effective, supported, holdout, warnings."""
        record = self.manifest.get("threshold")
        return record if isinstance(record, dict) else {}

    @property
    def resolve_level(self) -> float:
        """Score level under which normal scores fall (resolves an episode); 0.8 x threshold for old artifacts."""
        return resolve_level(self.calibration)

    @property
    def critical_level(self) -> float:
        """Score level of a critical alert (the tail at target_far / 100); 2 x threshold for old artifacts."""
        return critical_level(self.calibration)

    @property
    def envelope(self) -> dict[str, Any] | None:
        """The training data's envelope (models/envelope.py), None for artifacts written before it existed."""
        envelope = self.manifest.get("envelope")
        return envelope if isinstance(envelope, dict) else None
