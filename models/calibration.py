"""Alarm thresholds from scores of held-out *normal* data, for a target false-alarm rate (FAR).

Two methods, both recorded in the artifact's manifest (method, parameters, value, target):

- ``quantile``: the empirical (1 - FAR) quantile of the calibration scores. Good down to rates
  of a few over the number of calibration scores; beyond that it just returns the maximum.
- ``pot``: peaks over threshold (Siffer et al., KDD 2017, "Anomaly Detection in Streams with
  Extreme Value Theory", the SPOT initialisation). Take a high initial quantile t, fit a
  generalized Pareto distribution (shape gamma, scale sigma) to the excesses over t, then
  extrapolate: z_q = t + sigma/gamma * ((q * n / N_t)^(-gamma) - 1), where n is the number of
  scores and N_t the number above t (for gamma -> 0 the exponential limit t - sigma*ln(q n/N_t)).
  This reaches rates rarer than 1/n that a quantile cannot estimate.

Calibrate on normal data the model was *not* trained on (the split's calibration part), never
on test or fault data.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

CALIBRATION_METHODS: tuple[str, ...] = ("quantile", "pot")

# SPOT's initial threshold: the 98% quantile (Siffer et al. use a high quantile such as 98%).
DEFAULT_POT_INITIAL_QUANTILE = 0.98
# Below this many excesses a GPD fit is noise; fall back to a moment fit and say so in the manifest.
_MIN_EXCESSES_FOR_MLE = 20


def _finite_scores(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(scores, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise ValueError("calibration needs at least one finite score")
    return arr


def _check_far(target_far: float) -> None:
    if not (0.0 < target_far < 1.0):
        raise ValueError(f"target false-alarm rate must be in (0, 1), got {target_far}")


def quantile_threshold(scores: npt.ArrayLike, target_far: float) -> dict[str, Any]:
    """Empirical quantile: a score above the returned value occurs on about ``target_far`` of normal data."""
    _check_far(target_far)
    arr = _finite_scores(scores)
    # "higher" never interpolates below an observed score, so the observed FAR on the
    # calibration set itself is at most target_far.
    value = float(np.quantile(arr, 1.0 - target_far, method="higher"))
    return {
        "method": "quantile",
        "value": value,
        "target_far": target_far,
        "n_calibration": int(arr.size),
        "parameters": {"quantile": 1.0 - target_far},
    }


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


def pot_threshold(
    scores: npt.ArrayLike, target_far: float, initial_quantile: float = DEFAULT_POT_INITIAL_QUANTILE
) -> dict[str, Any]:
    """Peaks-over-threshold threshold for a (possibly very rare) ``target_far``; see the module docstring."""
    _check_far(target_far)
    if not (0.0 < initial_quantile < 1.0):
        raise ValueError("initial_quantile must be in (0, 1)")
    arr = _finite_scores(scores)
    n = arr.size
    t = float(np.quantile(arr, initial_quantile))
    excesses = arr[arr > t] - t
    n_t = int(excesses.size)
    if target_far >= n_t / n or n_t < 2:
        # The target is not in the tail above t (or there is no tail to fit): a plain quantile is the answer.
        result = quantile_threshold(arr, target_far)
        result["method"] = "pot"
        result["parameters"] = {"initial_quantile": initial_quantile, "t": t, "n_excesses": n_t, "fit": "quantile"}
        return result
    gamma, sigma, fit = fit_gpd(excesses)
    r = target_far * n / n_t  # < 1
    value = t - sigma * math.log(r) if abs(gamma) < 1e-06 else t + sigma / gamma * (r ** (-gamma) - 1.0)
    if gamma < 0:
        # A bounded tail: never put the threshold beyond the fitted upper end point.
        value = min(value, t - sigma / gamma)
    return {
        "method": "pot",
        "value": float(value),
        "target_far": target_far,
        "n_calibration": int(n),
        "parameters": {
            "initial_quantile": initial_quantile,
            "t": t,
            "n_excesses": n_t,
            "gamma": gamma,
            "sigma": sigma,
            "fit": fit,
        },
    }


def calibrate(scores: npt.ArrayLike, method: str = "quantile", target_far: float = 0.01) -> dict[str, Any]:
    """Threshold record for the manifest: ``{"method", "value", "target_far", "n_calibration", "parameters"}``."""
    if method == "quantile":
        return quantile_threshold(scores, target_far)
    if method == "pot":
        return pot_threshold(scores, target_far)
    raise ValueError(f"unknown calibration method {method!r}: expected one of {', '.join(CALIBRATION_METHODS)}")
