"""What a loaded model must score: the probe (step 6 of the loaders) and the reference windows kept beside an ONNX
graph. numpy and safetensors.numpy only: the ONNX serving path reads these without torch.

API:
    probe_windows(model) -> [2, W, S]      # at the training mean, and half a scale up
    probe(model, directory)                # finite outputs on the probe windows, else ArtifactError non_finite
    Reference(windows, actual, outputs)    # windows [N, W, S] raw units (NaN = missing), actual [N, S] (the row
                                           # after each window; forecasters), outputs {name: torch eager's output}
    reference_count(window, n_sensors) -> N
    pick_reference(spans, role, window) -> (windows, actual)     # N evenly spaced spans of real rows
    synthetic_reference(model, seed=0) -> (windows, actual)     # for an artifact whose training data is gone
    with_missing_values(windows) -> windows                     # the missing-value patterns every reference holds
    outputs_of(model, result) -> {name: array}                  # the outputs a reference stores and compares
    encode(reference) -> bytes;  decode(data, manifest, directory) -> Reference   # reference.safetensors
    compare(outputs, expected, tolerance) -> (max_diff, problem or None)

Windows: 32 (fewer when a window is wider than ``MAX_REFERENCE_FLOATS / 32`` values), taken evenly from the
calibration part of the training data (rows the model did not train or early-stop on), or, for an artifact
upgraded after its data is gone (`plantwatch export-onnx`), a seeded random walk around the training mean with
a tenth of a scale unit per row (``source: "synthetic"``). The last four windows always hold missing values, one
pattern each: a two-row gap inside the window (forward-filled), a gap at its start (back-filled), one sensor with
no value at all (its outputs NaN, the others scored with a 0 in its place), and an inf reading (missing too).

Comparison (``compare``): the NaN positions must be the same, and every other value within
``abs + rel * |expected|`` of the expected one. The differences reported are the largest ``|a - b|`` and the
largest ``|a - b| / |b|`` over the values with ``|b|`` above the absolute tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.artifact_io import ArtifactError, safetensors_layout
from models.model_api import F32, InferenceResult, ModelBase, probe_windows

__all__ = [
    "MAX_REFERENCE_FLOATS",
    "REFERENCE_WINDOWS",
    "Reference",
    "compare",
    "decode",
    "encode",
    "expected_tensors",
    "max_reference_bytes",
    "outputs_of",
    "pick_reference",
    "probe",
    "probe_windows",
    "reference_count",
    "synthetic_reference",
    "with_missing_values",
]

REFERENCE_WINDOWS = 32
# Raw window values a reference holds at most (16 MiB of float32): 32 windows of up to 131,072 values each.
MAX_REFERENCE_FLOATS = 2**22
MISSING_PATTERNS = 4


def probe(model: Any, directory: Path) -> None:
    """The model must score ``probe_windows`` to finite numbers: weights that are finite but overflow (or a
    scaler beyond float32) are as useless as NaN weights, and would otherwise only show as missing scores."""
    import warnings

    # Overflow is what is being looked for: numpy's warnings about it would only be noise on the service's stderr.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        windows = probe_windows(model)
        result = model.infer(windows)
        if model.role == "detector":
            outputs = [result.scores]
        else:
            assert result.forecasts is not None
            outputs = [result.forecasts, model.residual_score(result.forecasts[:, 0], windows[:, -1])[0]]
    if not all(out is not None and bool(np.isfinite(out).all()) for out in outputs):
        raise ArtifactError(
            "the model scores a window at its training mean as NaN or inf (weights or scaler that overflow)",
            "non_finite",
            directory,
        )


@dataclass(frozen=True)
class Reference:
    """Stored reference windows and torch eager's outputs on them (see the module docstring)."""

    windows: F32  # [N, W, S] raw units, NaN where a value is missing
    actual: F32 | None  # [N, S] the row after each window (forecasters), None for detectors
    outputs: dict[str, F32]  # torch eager's outputs: sensor_errors [N, S] | forecasts [N, H, S], attention [N, W]


def reference_count(window: int, n_sensors: int) -> int:
    """How many reference windows an artifact of this shape keeps: 32, fewer for very wide windows."""
    return int(min(REFERENCE_WINDOWS, max(1, MAX_REFERENCE_FLOATS // max(window * n_sensors, 1))))


def with_missing_values(windows: npt.ArrayLike) -> F32:
    """A copy of ``windows`` [N, W, S] with the missing-value patterns in its last windows (module docstring)."""
    out = np.array(windows, dtype=np.float32, copy=True)
    n, w, s = out.shape
    if n == 0:
        return out
    patterns = min(MISSING_PATTERNS, n)
    first = n - patterns
    if patterns > 0:  # a two-row gap inside the window, newest rows kept: forward-filled
        middle = max(w // 2 - 1, 0)
        out[first, middle : min(middle + 2, w - 1) or 1, 0] = np.nan
    if patterns > 1:  # a gap at the window's start: back-filled from its first value
        out[first + 1, : max(w // 4, 1), s - 1] = np.nan
    if patterns > 2:  # one sensor without any value: its outputs NaN
        out[first + 2, :, s // 2] = np.nan
    if patterns > 3:  # an inf reading counts as missing
        out[first + 3, w - 1, 0] = np.inf
    return out


def pick_reference(spans: npt.ArrayLike, role: str, window: int) -> tuple[F32, F32 | None]:
    """``reference_count`` spans evenly spaced among ``spans`` [M, W (+1 for forecasters), S] of real rows;
    (windows with the missing patterns, actual rows or None)."""
    arr = np.asarray(spans, dtype=np.float32)
    if arr.shape[0] == 0:
        raise ValueError("no span of real rows to take reference windows from")
    count = min(reference_count(window, arr.shape[2]), arr.shape[0])
    index = np.unique(np.linspace(0, arr.shape[0] - 1, count).round().astype(int))
    chosen = arr[index]
    actual = np.ascontiguousarray(chosen[:, window], dtype=np.float32) if role == "forecaster" else None
    return with_missing_values(chosen[:, :window]), actual


def synthetic_reference(model: ModelBase, seed: int = 0) -> tuple[F32, F32 | None]:
    """Reference windows for an artifact without its training data: a seeded random walk per window, starting
    within half a scale unit of each sensor's training mean, moving a tenth of a scale unit per row."""
    rng = np.random.default_rng(seed)
    centre = probe_windows(model)[0, 0].astype(np.float64)  # [S]: the training mean (or the scaler's offset)
    scale = np.asarray(model.scaler.scale, dtype=np.float64)
    n = reference_count(model.window, len(model.sensors))
    rows = model.window + (1 if model.role == "forecaster" else 0)
    start = centre + 0.5 * scale * rng.standard_normal((n, 1, len(model.sensors)))
    steps = 0.1 * scale * rng.standard_normal((n, rows, len(model.sensors)))
    spans = (start + np.cumsum(steps, axis=1)).astype(np.float32)
    windows = with_missing_values(spans[:, : model.window])
    actual = np.ascontiguousarray(spans[:, model.window]) if model.role == "forecaster" else None
    return windows, actual


def outputs_of(model: ModelBase, result: InferenceResult) -> dict[str, F32]:
    """The outputs a reference stores: a detector's sensor errors, a forecaster's forecasts (and attention)."""
    if model.role == "detector":
        assert result.sensor_errors is not None
        return {"sensor_errors": result.sensor_errors}
    assert result.forecasts is not None
    outputs = {"forecasts": result.forecasts}
    if model.has_attention:
        assert result.attention is not None
        outputs["attention"] = result.attention
    return outputs


def reference_finite(
    model: ModelBase, windows: npt.ArrayLike, outputs: dict[str, F32], actual: npt.ArrayLike | None = None
) -> bool:
    """Whether ``outputs`` on ``windows`` are finite wherever the missing-value policy does not make them NaN (a
    sensor without any value in the window: its sensor errors and forecasts), and, for a forecaster given the
    ``actual`` rows, its per-sensor residual scores too (a scale that overflows shows only there)."""
    from models.preprocessing import fill_windows

    missing = ~np.isfinite(fill_windows(np.asarray(windows, dtype=np.float32))).all(axis=1)  # [N, S]
    absent: npt.NDArray[np.bool_] = np.asarray(missing, dtype=bool)
    checks = dict(outputs)
    if actual is not None and "forecasts" in outputs:
        with np.errstate(all="ignore"):
            checks["residual"] = model.residual_score(outputs["forecasts"][:, 0], actual)[1]
    for name, values in checks.items():
        allowed: npt.NDArray[np.bool_] = np.zeros(values.shape, dtype=bool)
        if name in ("sensor_errors", "residual"):
            allowed = absent
        elif name == "forecasts":
            allowed = np.broadcast_to(absent[:, None, :], values.shape)
        if not bool((np.isfinite(values) | allowed).all()):
            return False
    return True


def expected_tensors(manifest: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The tensors reference.safetensors must hold for this manifest, with their shapes."""
    n = int(manifest["onnx"]["reference"]["windows"])
    w, s, h = int(manifest["window"]), len(manifest["sensors"]), int(manifest["horizon"])
    shapes: dict[str, tuple[int, ...]] = {"windows": (n, w, s)}
    if manifest["role"] == "detector":
        shapes["sensor_errors"] = (n, s)
    else:
        shapes["actual"] = (n, s)
        shapes["forecasts"] = (n, h, s)
        if manifest["kind"] == "attention_lstm":
            shapes["attention"] = (n, w)
    return shapes


def max_reference_bytes(manifest: dict[str, Any]) -> int:
    """The most bytes a valid reference.safetensors of this manifest can have (its tensors plus a header)."""
    from models.artifact_io import MAX_SAFETENSORS_HEADER_BYTES

    values = sum(int(np.prod(shape)) for shape in expected_tensors(manifest).values())
    return 4 * values + 8 + MAX_SAFETENSORS_HEADER_BYTES


def encode(reference: Reference) -> bytes:
    """reference.safetensors: the windows, the actual rows (forecasters) and the outputs, float32."""
    from safetensors.numpy import save

    tensors = {"windows": reference.windows, **reference.outputs}
    if reference.actual is not None:
        tensors["actual"] = reference.actual
    return save({name: np.ascontiguousarray(array, dtype=np.float32) for name, array in tensors.items()})


def decode(data: bytes, manifest: dict[str, Any], directory: Path) -> Reference:
    """Read reference.safetensors, its header checked against ``expected_tensors`` before anything is loaded."""
    from safetensors.numpy import load

    name = manifest["onnx"]["reference"]["file"]
    layout = safetensors_layout(data, name, directory)
    expected = expected_tensors(manifest)
    found = {t: shape for t, (dtype, shape) in layout.items() if dtype == "F32"}
    if found != expected:
        raise ArtifactError(
            f"reference file {name} holds {sorted(layout.items())}, expected float32 {sorted(expected.items())}",
            "shape_mismatch",
            directory,
        )
    try:
        tensors = load(data)
    except Exception as exc:  # safetensors' own error types
        raise ArtifactError(
            f"reference file {name} is not a valid safetensors file: {exc}", "corrupt", directory
        ) from exc
    actual = tensors.pop("actual", None)
    windows = tensors.pop("windows")
    return Reference(windows=windows, actual=actual, outputs=tensors)


def compare(
    outputs: dict[str, F32], expected: dict[str, F32], tolerance: dict[str, dict[str, float]]
) -> tuple[dict[str, dict[str, float]], str | None]:
    """Each output against the expected one: ({name: {"abs", "rel"} largest differences}, the first problem or
    None). A problem: a shape or NaN position that differs, or a value beyond ``abs + rel * |expected|``."""
    diffs: dict[str, dict[str, float]] = {}
    problem: str | None = None
    for name, want in expected.items():
        got = outputs.get(name)
        tol = tolerance[name]
        if got is None or got.shape != want.shape:
            problem = (
                problem or f"{name}: shape {None if got is None else list(got.shape)}, expected {list(want.shape)}"
            )
            diffs[name] = {"abs": float("inf"), "rel": float("inf")}
            continue
        a, b = got.astype(np.float64), want.astype(np.float64)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if not np.array_equal(nan_a, nan_b):
            problem = problem or f"{name}: NaN at {int((nan_a != nan_b).sum())} other positions than torch's"
        both = ~(nan_a | nan_b)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(a[both] - b[both])
            size = np.abs(b[both])
        diff = np.where(np.isfinite(diff), diff, np.inf)  # inf - inf is NaN: a difference all the same
        large = size > tol["abs"]
        rel = diff[large] / size[large]
        diffs[name] = {
            "abs": float(diff.max(initial=0.0)),
            "rel": float(rel.max(initial=0.0)),
        }
        over = diff > tol["abs"] + tol["rel"] * size
        if over.any() and problem is None:
            worst = int(np.argmax(diff - (tol["abs"] + tol["rel"] * size)))
            problem = (
                f"{name}: {int(over.sum())} of {diff.size} values beyond the tolerance (abs {tol['abs']:g} + rel "
                f"{tol['rel']:g}), e.g. {a[both][worst]:.7g} against torch's {b[both][worst]:.7g}"
            )
    return diffs, problem
