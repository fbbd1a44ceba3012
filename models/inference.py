"""One inference API for the service: raw windows in, scores / forecasts / attention out (torch).

``LoadedModel`` wraps a trained module with its scaler and manifest. It is what
``models.artifacts.load_artifact`` returns, and what training uses to calibrate, so the
threshold is computed by exactly the code that applies it. Its torch-free twin for CPU serving is
models.onnx_model.OnnxModel (the same contract, models.model_api.ScoringModel and ModelBase, scoring the graph
exported at training time); both apply the same pre- and post-processing and pad a batch the same way.

Scores (both in units of the training split's scale, so sensors are comparable):

- detectors: per-sensor error = mean squared scaled reconstruction error over the window's
  newest ``score_steps`` rows (the whole window by default, see models/train_config.py);
  score = mean of the per-sensor errors.
- forecasters: per-sensor error = squared scaled residual of the one-step-ahead forecast
  (``residual_score``); score = mean of the per-sensor errors.

A window with a sensor that has no valid value at all scores NaN (see the missing-value
policy in models/preprocessing.py); the caller decides what a NaN score means.

Precision (``precision``: "fp32" | "fp16" | "bf16"): a reduced precision runs a converted copy of the module
(weights and activations in that dtype; the input scaled in float32 first, the outputs back to float32 after).
A converted copy rather than autocast: CPU autocast has no LSTM kernel (oneDNN refuses the primitive in bf16),
so a copy is what behaves the same on the CPU, where the agreement check is tested, and on CUDA, where the
service applies it. models.artifacts.load_artifact checks a reduced precision against fp32 before serving it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.device import resolve_device
from models.model_api import F32, InferenceResult, ModelBase, detector_result, forecaster_result, padded_infer
from models.preprocessing import Scaler, fill_windows

__all__ = ["MAX_CHUNK", "PRECISIONS", "InferenceResult", "LoadedModel"]

# Windows per forward pass inside ``infer``: bounds memory when a caller hands over a huge batch.
MAX_CHUNK = 4096

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class LoadedModel(ModelBase):
    """A trained model ready to score raw windows on one device. Build it with ``load_artifact``."""

    def __init__(
        self,
        module: nn.Module,
        manifest: dict[str, Any],
        scaler: Scaler,
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        super().__init__(manifest, scaler)
        self.precision = precision
        self._dtype = PRECISIONS[precision]
        self.module = module.to(device=device, dtype=self._dtype).eval()
        self.device = device
        self.has_attention = bool(getattr(module, "has_attention", False))

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, kind={self.kind!r}, sensors={len(self.sensors)}, "
            f"window={self.window}, horizon={self.horizon}, device={self.device}, precision={self.precision})"
        )

    def to(self, device: str | torch.device) -> LoadedModel:
        """A copy of this model on ``device`` ("auto" | "cpu" | "cuda"), same precision; this one keeps working."""
        target = resolve_device(device)
        return LoadedModel(copy.deepcopy(self.module), self.manifest, self.scaler, target, self.precision)

    def with_precision(self, precision: str) -> LoadedModel:
        """A copy of this model computing in ``precision`` on the same device; this one keeps working."""
        return LoadedModel(copy.deepcopy(self.module), self.manifest, self.scaler, self.device, precision)

    def infer(self, windows: npt.ArrayLike) -> InferenceResult:
        """Score raw windows [B, W, S] (float32, raw units, rows oldest -> newest, sensors in ``sensors`` order),
        at a padded batch size (models.model_api.padded_infer: oneDNN keeps a kernel per batch shape)."""
        return padded_infer(self._infer, self.check_windows(windows))

    def _infer(self, raw: F32) -> InferenceResult:
        filled = fill_windows(raw)
        # [B, S]: a sensor with no value anywhere in the window
        missing = np.asarray(~np.isfinite(filled).all(axis=1), dtype=bool)
        scaled = self.scaler.transform(np.nan_to_num(filled, nan=0.0))
        outputs: list[F32] = []
        attentions: list[F32] = []
        with torch.inference_mode():
            for start in range(0, max(scaled.shape[0], 1), MAX_CHUNK):
                chunk = torch.from_numpy(scaled[start : start + MAX_CHUNK]).to(self.device, self._dtype)
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
            return detector_result(errors, missing)
        pred = np.concatenate(outputs) if outputs else np.zeros((0, self.horizon, n_sensors), np.float32)
        forecasts = self.scaler.inverse(pred)  # [B, H, S]
        attention = None
        if self.has_attention:
            attention = np.concatenate(attentions) if attentions else np.zeros((batch, self.window), np.float32)
        return forecaster_result(forecasts, attention, missing)
