"""Model artifacts: a directory with ``manifest.json`` and ``weights.safetensors``; loading never unpickles.

Layout (DESIGN.md "Model artifacts")::

    DIR/manifest.json        sorted keys, indented; format_version, kind, role, hyperparameters,
                             sensors, period_s, window, horizon, scaler, score, threshold,
                             training (data fingerprint, split, figures), weights (file, sha256),
                             versions, created
    DIR/weights.safetensors  the state dict, float32 tensors (JSON header + raw buffers)

``load_artifact`` checks, in order: the manifest is JSON with only finite numbers and a known
``format_version``; the weights file is named ``*.safetensors`` inside the directory; its
sha256 matches the manifest; the tensors load with safetensors and fit the architecture the
manifest describes; the scaler is valid; the sensors match ``expected_sensors``. Any failure
raises ``ArtifactError`` (a ``ValueError``) whose ``reason`` is one of ``ARTIFACT_ERROR_REASONS``,
a bounded set usable as a metric label.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.device import resolve_device
from models.inference import InferenceResult, LoadedModel
from models.networks import KINDS, build_model
from models.preprocessing import Scaler

__all__ = [
    "ARTIFACT_ERROR_REASONS",
    "FORMAT_VERSION",
    "ArtifactError",
    "InferenceResult",
    "LoadedModel",
    "load_artifact",
    "save_artifact",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"
# A manifest is a few KB; refuse anything absurd before parsing it.
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024

ARTIFACT_ERROR_REASONS: tuple[str, ...] = (
    "missing",  # directory, manifest or weights file not there
    "invalid_manifest",  # not JSON, non-finite numbers, a missing or mistyped field
    "format_version",  # a format_version this code does not read
    "unsafe_format",  # weights not in safetensors (pickle, .pt, ...) or outside the directory
    "checksum",  # weights sha256 differs from the manifest
    "corrupt",  # weights not a readable safetensors file
    "shape_mismatch",  # tensors do not fit the architecture in the manifest
    "scaler",  # scaler parameters invalid
    "sensor_mismatch",  # sensors differ from what the caller expects
)


class ArtifactError(ValueError):
    """A model artifact that is refused; ``reason`` is one of ``ARTIFACT_ERROR_REASONS``."""

    def __init__(self, message: str, reason: str, path: Path | str | None = None) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        prefix = f"model artifact {self.path}: " if self.path is not None else "model artifact: "
        super().__init__(prefix + message)


def _versions() -> dict[str, str]:
    import safetensors

    try:
        from importlib.metadata import version

        plantwatch_version = version("plantwatch")
    except Exception:
        plantwatch_version = "unknown"
    return {
        "plantwatch": plantwatch_version,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write then rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_artifact(out_dir: str | Path, module: nn.Module, manifest: dict[str, Any]) -> Path:
    """Write ``module``'s weights and ``manifest`` (kind, sensors, scaler, threshold, ...) to ``out_dir``.

    Adds ``format_version``, ``weights`` (file name and sha256), ``versions`` and ``created``.
    The weights are written first and the manifest last, each atomically, so a directory with a
    manifest always has the weights that manifest describes. Returns the directory.
    """
    from safetensors.torch import save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in module.state_dict().items()
    }
    weights = save(state)
    full = dict(manifest)
    full["format_version"] = FORMAT_VERSION
    full["weights"] = {"file": WEIGHTS_NAME, "sha256": _sha256(weights), "bytes": len(weights)}
    full["versions"] = _versions()
    full.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    text = json.dumps(full, sort_keys=True, indent=2, allow_nan=False) + "\n"
    _atomic_write(out / WEIGHTS_NAME, weights)
    _atomic_write(out / MANIFEST_NAME, text.encode("utf-8"))
    return out


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not allowed")


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"no {MANIFEST_NAME} (is this a model artifact directory?)", "missing", directory)
    raw = path.read_bytes()
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{MANIFEST_NAME} is {len(raw)} bytes, over the limit", "invalid_manifest", directory)
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{MANIFEST_NAME} is not valid JSON: {exc}", "invalid_manifest", directory) from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{MANIFEST_NAME} must hold a JSON object", "invalid_manifest", directory)
    return manifest


def _field(manifest: dict[str, Any], key: str, types: type | tuple[type, ...], directory: Path) -> Any:
    if key not in manifest:
        raise ArtifactError(f"manifest field {key!r} is missing", "invalid_manifest", directory)
    value = manifest[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise ArtifactError(f"manifest field {key!r} has the wrong type", "invalid_manifest", directory)
    return value


def _validate_manifest(manifest: dict[str, Any], directory: Path) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ArtifactError(
            f"unsupported format_version {version!r} (this plantwatch reads format_version {FORMAT_VERSION})",
            "format_version",
            directory,
        )
    kind = _field(manifest, "kind", str, directory)
    if kind not in KINDS:
        raise ArtifactError(f"unknown model kind {kind!r}", "invalid_manifest", directory)
    role = _field(manifest, "role", str, directory)
    if role != KINDS[kind].role:
        raise ArtifactError(f"role {role!r} does not match kind {kind!r}", "invalid_manifest", directory)
    sensors = _field(manifest, "sensors", list, directory)
    if not sensors or not all(isinstance(s, str) and s for s in sensors) or len(set(sensors)) != len(sensors):
        raise ArtifactError("manifest field 'sensors' must be distinct non-empty names", "invalid_manifest", directory)
    window = _field(manifest, "window", int, directory)
    horizon = _field(manifest, "horizon", int, directory)
    if window < 1 or horizon < 0 or (role == "forecaster") != (horizon > 0):
        raise ArtifactError(f"invalid window {window} / horizon {horizon} for a {role}", "invalid_manifest", directory)
    period = _field(manifest, "period_s", (int, float), directory)
    if not (math.isfinite(period) and period > 0):
        raise ArtifactError("manifest field 'period_s' must be > 0", "invalid_manifest", directory)
    _field(manifest, "hyperparameters", dict, directory)
    threshold = _field(manifest, "threshold", dict, directory)
    value = threshold.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ArtifactError("threshold.value must be a finite number", "invalid_manifest", directory)
    if not isinstance(threshold.get("method"), str):
        raise ArtifactError("threshold.method must be a string", "invalid_manifest", directory)
    _validate_calibration(threshold, float(value), directory)
    if "envelope" in manifest:
        _validate_envelope(manifest["envelope"], sensors, directory)
    score = manifest.get("score", {})
    steps = score.get("steps", window) if isinstance(score, dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= window:
        raise ArtifactError("score.steps must be an integer in [1, window]", "invalid_manifest", directory)
    _field(manifest, "weights", dict, directory)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _invalid(message: str, directory: Path) -> ArtifactError:
    return ArtifactError(message, "invalid_manifest", directory)


def _validate_calibration(threshold: dict[str, Any], value: float, directory: Path) -> None:
    """The calibration fields added with the honest calibration: optional (older artifacts lack them),
    and checked loosely when present: finite numbers, null only where a level may be absent, and the
    levels in order (resolve <= value <= critical)."""
    for key in ("n_effective", "decorrelation_windows", "resolve_value", "resolve_quantile", "critical_value"):
        if threshold.get(key) is not None and not _is_number(threshold[key]):
            raise _invalid(f"threshold.{key} must be a finite number", directory)
    if threshold.get("resolve_value") is not None and threshold["resolve_value"] > value:
        raise _invalid("threshold.resolve_value is above threshold.value", directory)
    if threshold.get("critical_value") is not None and threshold["critical_value"] < value:
        raise _invalid("threshold.critical_value is below threshold.value", directory)
    if "supported" in threshold and not isinstance(threshold["supported"], bool):
        raise _invalid("threshold.supported must be true or false", directory)
    needed = threshold.get("needed_rows")
    if needed is not None and (isinstance(needed, bool) or not isinstance(needed, int) or needed < 0):
        raise _invalid("threshold.needed_rows must be a non-negative integer or null", directory)
    notes = threshold.get("warnings", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise _invalid("threshold.warnings must be a list of strings", directory)
    holdout = threshold.get("holdout")
    if holdout is not None and not isinstance(holdout, dict):
        raise _invalid("threshold.holdout must be an object or null", directory)
    if isinstance(holdout, dict) and holdout.get("far") is not None and not _is_number(holdout["far"]):
        raise _invalid("threshold.holdout.far must be a finite number or null", directory)


def _validate_envelope(envelope: Any, sensors: list[str], directory: Path) -> None:
    """``envelope``: per-sensor statistics of the model's sensors, each a finite number or null."""
    per_sensor = envelope.get("sensors") if isinstance(envelope, dict) else None
    if not isinstance(per_sensor, dict) or not set(per_sensor) <= set(sensors):
        raise _invalid("envelope.sensors must map the model's sensors to their statistics", directory)
    for name, stats in per_sensor.items():
        if not isinstance(stats, dict) or not all(v is None or _is_number(v) for v in stats.values()):
            raise _invalid(f"envelope.sensors.{name}: statistics must be finite numbers or null", directory)


def _read_weights(manifest: dict[str, Any], directory: Path) -> dict[str, torch.Tensor]:
    entry = manifest["weights"]
    name = entry.get("file")
    expected = entry.get("sha256")
    if not isinstance(name, str) or not isinstance(expected, str):
        raise ArtifactError("weights.file and weights.sha256 must be strings", "invalid_manifest", directory)
    # Only a plain safetensors file name inside the artifact directory: no pickle formats, no paths.
    if Path(name).name != name or not name.endswith(".safetensors"):
        raise ArtifactError(
            f"weights file {name!r} refused: only a .safetensors file inside the artifact directory is loaded",
            "unsafe_format",
            directory,
        )
    path = directory / name
    if not path.is_file():
        raise ArtifactError(f"weights file {name} is missing", "missing", directory)
    data = path.read_bytes()
    actual = _sha256(data)
    if actual != expected.lower():
        raise ArtifactError(
            f"weights file {name} sha256 mismatch: manifest says {expected[:12]}..., file is {actual[:12]}... "
            "(altered or replaced weights)",
            "checksum",
            directory,
        )
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types for any malformed buffer
        raise ArtifactError(
            f"weights file {name} is not a valid safetensors file: {exc}", "corrupt", directory
        ) from exc


def _check_sensors(sensors: tuple[str, ...], expected: Sequence[str] | None, directory: Path) -> None:
    if expected is None or tuple(expected) == sensors:
        return
    wanted = tuple(expected)
    missing = [s for s in wanted if s not in sensors]
    extra = [s for s in sensors if s not in wanted]
    if missing or extra:
        detail = f"missing from the model: {missing}; not in the config: {extra}"
    else:
        detail = f"same sensors in a different order: model {list(sensors)}, config {list(wanted)}"
    raise ArtifactError(f"sensor mismatch ({detail})", "sensor_mismatch", directory)


def load_artifact(
    path: str | Path,
    device: str | torch.device = "cpu",
    expected_sensors: Sequence[str] | None = None,
) -> LoadedModel:
    """Load and verify an artifact directory (or its manifest.json) onto ``device``; see the module docstring."""
    directory = Path(path)
    if directory.name == MANIFEST_NAME:
        directory = directory.parent
    if not directory.is_dir():
        raise ArtifactError("directory does not exist", "missing", directory)
    manifest = _read_manifest(directory)
    _validate_manifest(manifest, directory)
    sensors = tuple(manifest["sensors"])
    _check_sensors(sensors, expected_sensors, directory)
    try:
        scaler = Scaler.from_dict(manifest.get("scaler"))
    except ValueError as exc:
        raise ArtifactError(str(exc), "scaler", directory) from exc
    if scaler.feature_order != sensors:
        raise ArtifactError("scaler.feature_order differs from sensors", "scaler", directory)
    state = _read_weights(manifest, directory)
    try:
        module = build_model(
            manifest["kind"], len(sensors), manifest["window"], manifest["horizon"], **manifest["hyperparameters"]
        )
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"hyperparameters do not build a model: {exc}", "invalid_manifest", directory) from exc
    bad_dtype = [name for name, tensor in state.items() if tensor.dtype != torch.float32]
    if bad_dtype:
        raise ArtifactError(f"tensors with a dtype other than float32: {bad_dtype}", "shape_mismatch", directory)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(
            f"weights do not fit the {manifest['kind']} architecture: {exc}", "shape_mismatch", directory
        ) from exc
    return LoadedModel(module, manifest, scaler, resolve_device(device))
