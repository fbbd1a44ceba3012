"""The model contract, without torch: what every scoring model is to the service, and what its ``infer`` returns.

API:
    ScoringModel        # the Protocol the service's stages are typed against (monitor/scoring.py, scheduler.py,
                        # backtest.py): name, kind, role, sensors, window, horizon, period_s, device, threshold,
                        # resolve_level, critical_level, envelope; infer(windows), residual_score(forecast, actual),
                        # to(device). Met by LoadedModel (torch, models/inference.py), OnnxModel (ONNX Runtime,
                        # models/onnx_model.py) and PcaDetector (numpy, models/pca.py); tests/models/test_contract.py
                        # checks every kind on every runtime that serves it (models.kinds.RUNTIMES)
    InferenceResult(scores, sensor_errors, forecasts, attention)   # what ``infer`` returns
    ModelBase(manifest, scaler)    # the manifest's view, shared by the three: name, kind, role, sensors, window,
                                   # horizon, period_s, score_steps, threshold, threshold_method, has_attention,
                                   # manifest, scaler, and from ManifestLevels calibration, resolve_level,
                                   # critical_level, envelope; check_windows(windows), residual_score(forecast, actual)
    padded_batch(n), padded_infer(infer, windows)   # the batch sizes the networks are run at (both runtimes)
    probe_windows(model) -> [2, W, S]   # the windows a loader's probe scores: at the training mean, half a scale up
    detector_result(errors, missing), forecaster_result(forecasts, attention, missing)
                                        # the results the runtimes build, NaN where a sensor had no value

Every runtime scores the same way (see models/inference.py for the definition of the scores), and applies the same
missing-value policy before and after the model: a window is filled inside itself (models.preprocessing), a
sensor that has no value at all in it is set to 0 for the model and its outputs are NaN after it (a detector's
score is then NaN too: the ScoringEngine drops a NaN score and judges a model only on complete windows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from models.calibration import ManifestLevels
from models.device import ServingDevice
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


@runtime_checkable
class ScoringModel(Protocol):
    """What the service uses of a loaded model, whichever kind and runtime (see the module docstring).

    ``infer(windows [B, W, S] raw units, rows oldest -> newest)``: detectors fill ``scores`` [B] (the mean of
    ``sensor_errors`` [B, S]), forecasters ``forecasts`` [B, H, S] (raw units, steps 1..H after the window) and,
    with attention, ``attention`` [B, W]. ``residual_score(forecast [B, S], actual [B, S])`` -> (score [B],
    per-sensor [B, S]): a forecaster's score, the one ``threshold`` applies to. ``to(device)``: the model on
    that device (a copy, or itself where the runtime has one device). ``resolve_level`` and ``critical_level``
    are the calibrated levels an alert resolves under and turns critical at; ``envelope`` the training data's.
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def sensors(self) -> tuple[str, ...]: ...

    @property
    def window(self) -> int: ...

    @property
    def horizon(self) -> int: ...

    @property
    def period_s(self) -> float: ...

    @property
    def device(self) -> object: ...  # "cpu" or a torch.device: shown in plantwatch_model_info

    @property
    def threshold(self) -> float: ...

    @property
    def resolve_level(self) -> float: ...

    @property
    def critical_level(self) -> float: ...

    @property
    def envelope(self) -> dict[str, Any] | None: ...

    def infer(self, windows: npt.ArrayLike) -> InferenceResult: ...

    def residual_score(self, forecast: npt.ArrayLike, actual: npt.ArrayLike) -> tuple[F32, F32]: ...

    def to(self, device: ServingDevice) -> ScoringModel: ...


def padded_batch(n: int) -> int:
    """The batch size ``n`` windows are scored at: the next power of two up to 32, then the next multiple of 32.

    torch's CPU LSTM runs on oneDNN, which builds and caches a primitive (with its buffers) per input shape and
    keeps it: with every batch size from 1 to max_batch turning up, the service's RSS grew by about 1 MB/s for
    minutes (benchmarks/memory.py drift, 500 units). A few fixed sizes bound that cache and reuse its entries;
    padding costs at most 31 windows (or a factor < 2 below 32).
    """
    if n <= 1:
        return max(n, 0)
    if n <= 32:
        return 1 << (n - 1).bit_length()
    return -(-n // 32) * 32


def padded_infer(infer: Callable[[F32], InferenceResult], windows: F32) -> InferenceResult:
    """``infer`` run on ``windows`` [B, W, S] padded to ``padded_batch(B)`` windows, its results cut back to B.

    The padding repeats the last window: real data, so the padding rows cannot raise or produce a NaN of their
    own, and each window's outputs do not depend on its batch (tests/models/test_contract.py: batched equals one
    by one). Both network runtimes score through this; the pca's numpy needs no padding (and its optional drift
    adaptation must see each window once).
    """
    n = len(windows)
    size = padded_batch(n)
    if size == n:
        return infer(windows)
    result = infer(np.concatenate((windows, np.repeat(windows[-1:], size - n, axis=0))))
    outputs = (result.scores, result.sensor_errors, result.forecasts, result.attention)
    return InferenceResult(*(None if out is None else out[:n] for out in outputs))


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
