"""What every scoring model shows the service, without torch: the result type and the manifest-derived attributes.

API:
    InferenceResult(scores, sensor_errors, forecasts, attention)   # what ``infer`` returns
    ModelBase(manifest, scaler)    # base of LoadedModel (torch, models/inference.py) and OnnxModel (ONNX Runtime,
                                   # models/onnx_model.py): name, kind, role, sensors, window, horizon, period_s,
                                   # score_steps, threshold, threshold_method, has_attention, manifest, scaler, and
                                   # from ManifestLevels calibration, resolve_level, critical_level, envelope;
                                   # check_windows(windows), residual_score(forecast, actual)
    probe_windows(model) -> [2, W, S]   # the windows a loader's probe scores: at the training mean, half a scale up
    detector_result(errors, missing), forecaster_result(forecasts, attention, missing)
                                        # the results both runtimes build, NaN where a sensor had no value

Both runtimes score the same way (see models/inference.py for the definition of the scores), and apply the same
missing-value policy before and after the network: a window is filled inside itself (models.preprocessing), a
sensor that has no value at all in it is set to 0 for the network and its outputs are NaN after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.calibration import ManifestLevels
from models.kinds import KINDS
from models.preprocessing import Scaler

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class InferenceResult:
    """What ``infer`` returns for B windows (None where the model kind has no such output)."""

    scores: F32 | None  # [B] detectors: anomaly score, equals sensor_errors.mean(axis=1)
    sensor_errors: F32 | None  # [B, S] detectors
    forecasts: F32 | None  # [B, H, S] forecasters, raw units, steps 1..H after the window's last row
    attention: F32 | None  # [B, W] attention_lstm only


class ModelBase(ManifestLevels):
    """The manifest's view of a model, shared by the torch and the ONNX Runtime implementations."""

    def __init__(self, manifest: dict[str, Any], scaler: Scaler) -> None:
        self.manifest = manifest
        self.scaler = scaler
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
        spec = KINDS.get(self.kind)
        self.has_attention: bool = bool(spec.has_attention) if spec is not None else False
        self._scale = np.asarray(scaler.scale, dtype=np.float32)

    def check_windows(self, windows: npt.ArrayLike) -> F32:
        """``windows`` as float32 [B, W, S]; ValueError naming the expected shape otherwise."""
        arr = np.asarray(windows, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[1] != self.window or arr.shape[2] != len(self.sensors):
            raise ValueError(
                f"model {self.name!r} expects windows [B, {self.window}, {len(self.sensors)}], got {list(arr.shape)}"
            )
        return arr

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


def detector_result(errors: F32, missing: npt.NDArray[np.bool_] | None) -> InferenceResult:
    """A detector's result from its per-sensor errors [B, S]; ``missing`` [B, S] (or None: nothing missing) NaN."""
    if missing is not None:
        errors[missing] = np.nan
    return InferenceResult(scores=errors.mean(axis=1), sensor_errors=errors, forecasts=None, attention=None)


def forecaster_result(forecasts: F32, attention: F32 | None, missing: npt.NDArray[np.bool_] | None) -> InferenceResult:
    """A forecaster's result from its raw forecasts [B, H, S]; each missing sensor's forecasts NaN."""
    if missing is not None:
        forecasts[np.broadcast_to(missing[:, None, :], forecasts.shape)] = np.nan
    return InferenceResult(scores=None, sensor_errors=None, forecasts=forecasts, attention=attention)


def probe_windows(model: ModelBase) -> F32:
    """Two windows [2, W, S] well inside the training data: constant at each sensor's training mean (the scaler's
    offset where the envelope has none), and the same half a scale unit higher."""
    centre = np.asarray(model.scaler.offset, dtype=np.float64)
    stats = (model.envelope or {}).get("sensors", {})
    for j, sensor in enumerate(model.sensors):
        mean = stats.get(sensor, {}).get("mean")
        if mean is not None:
            centre[j] = mean
    rows = np.stack([centre, centre + 0.5 * np.asarray(model.scaler.scale, dtype=np.float64)])  # [2, S]
    return np.repeat(rows[:, None, :], model.window, axis=1).astype(np.float32)
