"""One inference API for the service: raw windows in, scores / forecasts / attention out.

``LoadedModel`` wraps a trained module with its scaler and manifest. It is what
``models.artifacts.load_artifact`` returns, and what training uses to calibrate, so the
threshold is computed by exactly the code that applies it.

Scores (both in units of the training split's scale, so sensors are comparable):

- detectors: per-sensor error = mean squared scaled reconstruction error over the window's
  newest ``score_steps`` rows (the whole window by default, see models/train.py);
  score = mean of the per-sensor errors.
- forecasters: per-sensor error = squared scaled residual of the one-step-ahead forecast
  (``residual_score``); score = mean of the per-sensor errors.

A window with a sensor that has no valid value at all scores NaN (see the missing-value
policy in models/preprocessing.py); the caller decides what a NaN score means.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.calibration import ManifestLevels
from models.device import resolve_device
from models.preprocessing import Scaler, fill_windows

F32 = npt.NDArray[np.float32]

# Windows per forward pass inside ``infer``: bounds memory when a caller hands over a huge batch.
MAX_CHUNK = 4096


@dataclass(frozen=True)
class InferenceResult:
    """What ``LoadedModel.infer`` returns for B windows (None where the model kind has no such output)."""

    scores: F32 | None  # [B] detectors: anomaly score, equals sensor_errors.mean(axis=1)
    sensor_errors: F32 | None  # [B, S] detectors
    forecasts: F32 | None  # [B, H, S] forecasters, raw units, steps 1..H after the window's last row
    attention: F32 | None  # [B, W] attention_lstm only


class LoadedModel(ManifestLevels):
    """A trained model ready to score raw windows on one device. Build it with ``load_artifact``."""

    def __init__(self, module: nn.Module, manifest: dict[str, Any], scaler: Scaler, device: torch.device) -> None:
        self.module = module.to(device).eval()
        self.manifest = manifest
        self.scaler = scaler
        self.device = device
        self.name: str = str(manifest.get("name", manifest["kind"]))
        self.kind: str = manifest["kind"]
        self.role: str = manifest["role"]
        self.sensors: tuple[str, ...] = tuple(manifest["sensors"])
        self.window: int = int(manifest["window"])
        self.horizon: int = int(manifest["horizon"])
        self.period_s: float = float(manifest["period_s"])
        self.score_steps: int = int(manifest.get("score", {}).get("steps", self.window))
        threshold = manifest.get("threshold") or {}
        self.threshold: float = float(threshold.get("value", float("nan")))
        self.threshold_method: str = str(threshold.get("method", "none"))
        self.has_attention: bool = bool(getattr(module, "has_attention", False))
        self._scale = np.asarray(scaler.scale, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, kind={self.kind!r}, sensors={len(self.sensors)}, "
            f"window={self.window}, horizon={self.horizon}, device={self.device})"
        )

    def to(self, device: str | torch.device) -> LoadedModel:
        """A copy of this model on ``device`` ("auto" | "cpu" | "cuda"); this one keeps working."""
        target = resolve_device(device)
        return LoadedModel(copy.deepcopy(self.module), self.manifest, self.scaler, target)

    def _check_windows(self, windows: npt.ArrayLike) -> F32:
        arr = np.asarray(windows, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[1] != self.window or arr.shape[2] != len(self.sensors):
            raise ValueError(
                f"model {self.name!r} expects windows [B, {self.window}, {len(self.sensors)}], got {list(arr.shape)}"
            )
        return arr

    def infer(self, windows: npt.ArrayLike) -> InferenceResult:
        """Score raw windows [B, W, S] (float32, raw units, rows oldest -> newest, sensors in ``sensors`` order)."""
        raw = self._check_windows(windows)
        filled = fill_windows(raw)
        # [B, S]: a sensor with no value anywhere in the window
        missing = np.asarray(~np.isfinite(filled).all(axis=1), dtype=bool)
        scaled = self.scaler.transform(np.nan_to_num(filled, nan=0.0))
        outputs: list[F32] = []
        attentions: list[F32] = []
        with torch.inference_mode():
            for start in range(0, max(scaled.shape[0], 1), MAX_CHUNK):
                chunk = torch.from_numpy(scaled[start : start + MAX_CHUNK]).to(self.device)
                if chunk.shape[0] == 0:
                    break
                if self.has_attention:
                    out, weights = self.module.forward_with_attention(chunk)  # type: ignore[operator]
                    attentions.append(weights.float().cpu().numpy())
                else:
                    out = self.module(chunk)
                outputs.append(out.float().cpu().numpy())
        batch = raw.shape[0]
        n_sensors = len(self.sensors)
        if self.role == "detector":
            recon = np.concatenate(outputs) if outputs else np.zeros((0, self.window, n_sensors), np.float32)
            tail = slice(self.window - self.score_steps, self.window)
            squared = (recon[:, tail] - scaled[:, tail]) ** 2  # [B, steps, S]
            errors: F32 = np.asarray(squared.mean(axis=1), dtype=np.float32)  # [B, S]
            errors[missing] = np.nan
            return InferenceResult(scores=errors.mean(axis=1), sensor_errors=errors, forecasts=None, attention=None)
        pred = np.concatenate(outputs) if outputs else np.zeros((0, self.horizon, n_sensors), np.float32)
        forecasts = self.scaler.inverse(pred)  # [B, H, S]
        forecasts[np.broadcast_to(missing[:, None, :], forecasts.shape)] = np.nan
        attention = None
        if self.has_attention:
            attention = np.concatenate(attentions) if attentions else np.zeros((batch, self.window), np.float32)
        return InferenceResult(scores=None, sensor_errors=None, forecasts=forecasts, attention=attention)

    def residual_score(self, forecast: npt.ArrayLike, actual: npt.ArrayLike) -> tuple[F32, F32]:
        """Forecast residual score: forecast [B, S] raw (made one step earlier for this row), actual [B, S] raw.

        Returns (score [B], per_sensor [B, S]) with per_sensor = ((forecast - actual) / scale)^2 and
        score = per_sensor.mean(axis=1); ``self.threshold`` applies to this score.
        """
        f = np.asarray(forecast, dtype=np.float32)
        a = np.asarray(actual, dtype=np.float32)
        if f.shape != a.shape or f.ndim != 2 or f.shape[1] != len(self.sensors):
            raise ValueError(
                f"residual_score expects forecast and actual [B, {len(self.sensors)}], got "
                f"{list(f.shape)} and {list(a.shape)}"
            )
        per_sensor = (((f - a) / self._scale) ** 2).astype(np.float32)
        return per_sensor.mean(axis=1), per_sensor
