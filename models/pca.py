"""PCA T²/Q baseline detector: the ``pca`` model kind, scored with numpy (models.model_api.ScoringModel).

The classic multivariate statistical process control pair (MacGregor & Kourti 1995): standardize each row,
project it on the principal components of normal data, and measure

- T² = sum_k t_k² / λ_k: how far the row lies *inside* the normal subspace (Hotelling), and
- Q (SPE) = ||z - P^T P z||²: how far it lies *outside* it (the squared prediction error).

Each is divided by its own control limit (a high empirical quantile of the fitting rows), and the row score is
the larger ratio, so one threshold covers both statistics; the window score averages the newest ``score_steps``
row scores. The alarm threshold on the window score is then calibrated like every other model
(models.calibration: quantile or POT on normal windows).

Usage::

    det = PcaDetector.fit(normal [T, S], sensors, name="pca", window=5, score_steps=5)   # the benchmarks' baseline
    r = det.infer(windows)   # windows [B, W, S] raw units -> r.scores [B], r.sensor_errors [B, S]
    det.threshold            # calibrated on the window scores of ``normal``

As a model kind (models.kinds.KINDS["pca"]): ``plantwatch train --model pca`` fits it on the training part of the
split and calibrates it like the networks (models/pca_train.py), models/pca_artifact.py writes and loads its
artifact (the standardization is the manifest's scaler, the limits its ``score`` section, the components and
their variances ``weights.safetensors`` in float64), and models.serving.load_for_serving serves it on any device
with numpy (no torch, no ONNX Runtime, no scikit-learn: that is imported only to fit).

Drift (``adapt_rows > 0``, off by default, never in an artifact): the normal level the rows are centred on
becomes an EWMA of the rows whose window scored under the threshold (time constant ``adapt_rows`` rows), so a
slow drift of normal operation (SKAB's water temperature rises through every run) is followed while an anomaly,
scored over the threshold, does not pull the level after it. Causal, but stateful: windows must reach ``infer``
in time order and the detector must serve one unit only (the benchmarks fit one per unit); ``reset()`` forgets
the adapted level.

``sensor_errors`` split each window's score over the sensors by their share of the (limit-scaled) T² and Q
contributions, so ``scores == sensor_errors.mean(axis=1)`` as for the neural detectors and the top sensor means
something. A window with a sensor that has no value anywhere scores NaN, that sensor's error NaN (as the
networks). ``to(device)`` is this model on any device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from models.calibration import calibrate
from models.envelope import compute_envelope
from models.model_api import InferenceResult, ModelBase
from models.preprocessing import Scaler, fill_windows

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SCORE_KIND = "pca_t2_q"
DEFAULT_VARIANCE = 0.95  # share of the standardized variance the components keep
DEFAULT_LIMIT_QUANTILE = 0.99  # of the fitting rows' T² and Q: each statistic's control limit


class PcaDetector(ModelBase):
    """Fitted PCA T²/Q scorer; build with :meth:`fit` (or :meth:`fit_statistics`, then ``set_threshold``), or load
    its artifact (models/pca_artifact.py). The manifest holds what it scores with but its weights (the components
    and their variances): the standardization is its scaler, the control limits ``score.t2_limit`` / ``q_limit``."""

    device = "cpu"

    def __init__(self, manifest: dict[str, Any], scaler: Scaler, components: F64, eigenvalues: F64) -> None:
        super().__init__(manifest, scaler)
        score = manifest["score"]
        self._mean = np.asarray(scaler.offset, dtype=np.float64)  # [S]
        self._std = np.asarray(scaler.scale, dtype=np.float64)  # [S]
        self._components = np.asarray(components, dtype=np.float64)  # [K, S] orthonormal rows
        self._eigenvalues = np.asarray(eigenvalues, dtype=np.float64)  # [K]
        self.t2_limit = float(score["t2_limit"])
        self.q_limit = float(score["q_limit"])
        self.adapt_rows = int(score.get("adapt_rows", 0))
        self._center = self._mean.copy()  # [S] the adapted normal level (adapt_rows > 0)

    @property
    def components(self) -> F64:
        """[K, S] the principal components (the artifact's weights with ``eigenvalues``)."""
        return self._components

    @property
    def eigenvalues(self) -> F64:
        """[K] the variance of the standardized fitting rows along each component."""
        return self._eigenvalues

    @classmethod
    def fit_statistics(
        cls,
        rows: npt.ArrayLike,
        sensors: tuple[str, ...] | list[str],
        *,
        name: str = "pca",
        window: int = 1,
        score_steps: int | None = None,
        variance: float = DEFAULT_VARIANCE,
        limit_quantile: float = DEFAULT_LIMIT_QUANTILE,
        period_s: float = 1.0,
    ) -> PcaDetector:
        """The components and control limits fitted on complete rows [N, S]; no threshold yet (NaN, method
        "none": ``set_threshold`` gives it one)."""
        from sklearn.decomposition import PCA  # fitting only: serving a fitted detector is numpy

        fit_rows = np.asarray(rows, dtype=np.float64)
        sensors = tuple(sensors)
        steps = window if score_steps is None else score_steps
        if window < 1 or not 1 <= steps <= window:
            raise ValueError("need window >= 1 and 1 <= score_steps <= window")
        if fit_rows.ndim != 2 or fit_rows.shape[1] != len(sensors) or not np.isfinite(fit_rows).all():
            raise ValueError(f"fitting rows must be complete [N, {len(sensors)}], got {list(fit_rows.shape)}")
        if fit_rows.shape[0] < max(len(sensors) + 2, window + 1):
            raise ValueError(f"too few complete rows to fit PCA: {fit_rows.shape[0]}")
        mean = fit_rows.mean(axis=0)
        scale = fit_rows.std(axis=0)
        # A constant sensor carries no information in normal data; any movement of it is measured in units of
        # a tiny scale, so give it the smallest non-zero scale of the others instead of dividing by zero.
        positive = scale[scale > 0]
        scale = np.where(scale > 0, scale, positive.min() if positive.size else 1.0)
        z = (fit_rows - mean) / scale
        pca = PCA(n_components=variance if 0 < variance < 1 else None, svd_solver="full").fit(z)
        components = np.asarray(pca.components_, dtype=np.float64)
        eigenvalues = np.maximum(np.asarray(pca.explained_variance_, dtype=np.float64), 1e-12)
        scaler = Scaler("standard", tuple(map(float, mean)), tuple(map(float, scale)), sensors)
        manifest: dict[str, Any] = {
            "name": name,
            "kind": "pca",
            "role": "detector",
            "sensors": list(sensors),
            "window": int(window),
            "horizon": 0,
            "period_s": float(period_s),
            "scaler": scaler.to_dict(),
            "score": {
                "kind": SCORE_KIND,
                "reduction": (
                    "per row: the larger of T² / t2_limit and Q / q_limit; score: mean over the window's newest "
                    "`steps` rows; per sensor: the score split by each sensor's share of the limit-scaled T² and "
                    "Q contributions (their mean is the score)"
                ),
                "steps": int(steps),
                "variance": float(variance),
                "limit_quantile": float(limit_quantile),
                "t2_limit": 1.0,
                "q_limit": 1.0,
                "adapt_rows": 0,
            },
            "hyperparameters": {"n_components": int(components.shape[0])},
            "threshold": {"method": "none", "value": math.nan},
        }
        detector = cls(manifest, scaler, components, eigenvalues)
        t2, q, _ = detector._statistics(fit_rows)
        detector._set_limits(
            max(float(np.quantile(t2, limit_quantile)), 1e-12), max(float(np.quantile(q, limit_quantile)), 1e-12)
        )
        return detector

    @classmethod
    def fit(
        cls,
        data: npt.ArrayLike,
        sensors: tuple[str, ...] | list[str],
        *,
        name: str = "pca",
        window: int = 1,
        score_steps: int | None = None,
        variance: float = DEFAULT_VARIANCE,
        limit_quantile: float = DEFAULT_LIMIT_QUANTILE,
        calibration: str = "quantile",
        target_far: float = 0.01,
        holdout: float = 0.0,
        adapt_rows: int = 0,
        period_s: float = 1.0,
        envelope_window: int = 30,
    ) -> PcaDetector:
        """Fit on normal rows ``data`` [T, S] (NaN rows dropped); components keep ``variance`` of the variance.

        T² and Q limits: the ``limit_quantile`` of the fitting rows' statistics. The window-score threshold:
        ``calibrate(window scores, calibration, target_far)`` on the newest ``holdout`` share of the rows when it
        is > 0 (those rows then do not fit the PCA: the threshold sees how far normal data wanders after the
        fit, e.g. a slow drift), else on the fitting rows themselves. The record has the trained artifacts'
        shape (models.calibration.calibrate: n_effective, supported, resolve / critical values, ...) with
        ``holdout`` None, and ``manifest["envelope"]`` describes ``data`` (windows of ``max(window,
        envelope_window)`` rows). The benchmarks' baseline; ``plantwatch train --model pca`` calibrates on the
        split as the networks do instead (models/pca_train.py).
        """
        raw = np.asarray(data, dtype=np.float64)
        sensors = tuple(sensors)
        if raw.ndim != 2 or raw.shape[1] != len(sensors):
            raise ValueError(f"data must be [T, {len(sensors)}], got {list(raw.shape)}")
        if not 0.0 <= holdout < 1.0:
            raise ValueError("holdout must be in [0, 1)")
        complete = raw[np.isfinite(raw).all(axis=1)]
        n_fit = complete.shape[0] - round(holdout * complete.shape[0])
        rows, calib_rows = complete[:n_fit], (complete[n_fit:] if holdout > 0 else complete)
        if calib_rows.shape[0] < window:
            raise ValueError(f"too few complete rows to fit PCA: {complete.shape[0]}")
        detector = cls.fit_statistics(
            rows,
            sensors,
            name=name,
            window=window,
            score_steps=score_steps,
            variance=variance,
            limit_quantile=limit_quantile,
            period_s=period_s,
        )
        windows = np.lib.stride_tricks.sliding_window_view(calib_rows, window, axis=0).transpose(0, 2, 1)  # [N, W, S]
        scores = detector.infer(windows).scores
        assert scores is not None
        record = calibrate(scores, calibration, target_far, window=window)
        # Indices into the complete rows (NaN rows dropped). No separate held-out check here: ``holdout``
        # names the share the threshold is calibrated on, recorded as calibration_share.
        record["calibration_rows"] = [[n_fit, complete.shape[0]] if holdout > 0 else [0, complete.shape[0]]]
        record["calibration_share"] = holdout
        record["holdout"] = None
        detector.set_threshold(record)
        detector.adapt_rows = int(adapt_rows)  # calibrated above without adaptation: on the rows it was fit on
        detector.manifest["score"]["adapt_rows"] = int(adapt_rows)
        # Windows of at least 30 rows for the envelope's within-window std: one row has no spread at all.
        detector.manifest["envelope"] = compute_envelope(raw, sensors, max(window, envelope_window), period_s)
        return detector

    def set_threshold(self, record: dict[str, Any]) -> None:
        """Take ``record`` (models.calibration.calibrate's, as training extends it) as the threshold in force."""
        self.manifest["threshold"] = record
        self.threshold = float(record["value"])
        self.threshold_method = str(record["method"])

    def _set_limits(self, t2_limit: float, q_limit: float) -> None:
        self.t2_limit, self.q_limit = t2_limit, q_limit
        self.manifest["score"].update(t2_limit=t2_limit, q_limit=q_limit)

    def _statistics(self, rows: F64, center: F64 | None = None) -> tuple[F64, F64, F64]:
        """rows [N, S] raw -> T² [N], Q [N], per-sensor contributions [N, S] (limit-scaled, >= 0).

        ``center`` [S] or [N, S]: the normal level the rows are compared with (default: the fitted mean).
        """
        z = (rows - (self._mean if center is None else center)) / self._std
        t = z @ self._components.T  # [N, K]
        residual = z - t @ self._components  # [N, S]
        t2 = np.sum(t * t / self._eigenvalues, axis=1)
        q = np.sum(residual * residual, axis=1)
        # T² contribution of sensor s: z_s * (P^T Λ^-1 t)_s (they sum to T²); negative ones count as zero.
        t2_parts = np.maximum(z * ((t / self._eigenvalues) @ self._components), 0.0)
        parts = t2_parts / self.t2_limit + residual * residual / self.q_limit
        return t2, q, parts

    def infer(self, windows: npt.ArrayLike) -> InferenceResult:
        """windows [B, W, S] raw -> scores [B] (mean of the newest score_steps row scores), sensor_errors [B, S]."""
        raw = self.check_windows(windows)
        n_sensors = raw.shape[2]
        filled = fill_windows(raw)
        missing = np.asarray(~np.isfinite(filled).all(axis=1), dtype=bool)  # [B, S]
        tail = np.nan_to_num(filled[:, self.window - self.score_steps :], nan=0.0).astype(np.float64)
        if self.adapt_rows > 0 and raw.shape[0] > 0:
            score, share = self._adaptive_scores(tail, missing)
        else:
            score, share = self._window_scores(tail, None)
        errors = (score[:, None] * n_sensors * share).astype(np.float32)  # mean over sensors == score
        errors[missing] = np.nan
        return InferenceResult(scores=errors.mean(axis=1), sensor_errors=errors, forecasts=None, attention=None)

    def _window_scores(self, tail: F64, center: F64 | None) -> tuple[F64, F64]:
        """tail [B, steps, S] raw -> window score [B] and each sensor's share of it [B, S] (rows sum to 1)."""
        batch, steps, n_sensors = tail.shape
        t2, q, parts = self._statistics(tail.reshape(-1, n_sensors), center)
        row_score = np.maximum(t2 / self.t2_limit, q / self.q_limit).reshape(batch, steps)
        share = parts.reshape(batch, steps, n_sensors).sum(axis=1)
        total = share.sum(axis=1, keepdims=True)
        share = np.where(total > 0, share / np.where(total > 0, total, 1.0), 1.0 / n_sensors)
        return row_score.mean(axis=1), share

    def _adaptive_scores(self, tail: F64, missing: npt.NDArray[np.bool_]) -> tuple[F64, F64]:
        """Windows in time order, each against the current center; a window scored under the threshold (and
        complete) then pulls the center towards its newest row by 1/adapt_rows (an EWMA of normal rows only)."""
        scores = np.empty(tail.shape[0])
        shares = np.empty((tail.shape[0], tail.shape[2]))
        for b in range(tail.shape[0]):
            s, share = self._window_scores(tail[b : b + 1], self._center)
            scores[b], shares[b] = s[0], share[0]
            if s[0] < self.threshold and not missing[b].any():
                self._center = self._center + (tail[b, -1] - self._center) / self.adapt_rows
        return scores, shares

    def reset(self) -> None:
        """Forget the adapted center (back to the fitted mean)."""
        self._center = self._mean.copy()

    def to(self, device: object) -> PcaDetector:
        """Numpy only: the same scorer on any device."""
        return self

    def __repr__(self) -> str:
        return (
            f"PcaDetector(name={self.name!r}, sensors={len(self.sensors)}, window={self.window}, "
            f"components={self._components.shape[0]}, threshold={self.threshold:.4g})"
        )
