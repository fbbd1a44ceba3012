"""Model artifacts: a directory with ``manifest.json`` and ``weights.safetensors``; loading never unpickles
and cannot crash the process.

API:
    save_artifact(out_dir, module, manifest) -> Path
    load_artifact(path, device="cpu", expected_sensors=None, max_weights_bytes=MAX_WEIGHTS_BYTES) -> LoadedModel
    ArtifactError (a ValueError) with .reason in ARTIFACT_ERROR_REASONS (a bounded set, usable as a metric label)
    LIMITS                                   # the bounds on every size a manifest can ask for
    probe_windows(model) -> [2, W, S]        # the windows step 6 scores: at the training mean, and half a scale up

Layout (DESIGN.md "Model artifacts")::

    DIR/manifest.json        sorted keys, indented; format_version, kind, role, hyperparameters,
                             sensors, period_s, window, horizon, scaler, score, threshold,
                             training (data fingerprint, split, figures), weights (file, sha256),
                             versions, created
    DIR/weights.safetensors  the state dict, float32 tensors (JSON header + raw buffers)

``load_artifact`` checks, in order, and allocates nothing the checks before it have not bounded:

1. ``manifest.json`` is a regular file inside the directory (a symlink only to a file inside it; never a FIFO,
   which would block the open), at most ``MAX_MANIFEST_BYTES``, UTF-8 JSON nested at most
   ``MAX_MANIFEST_DEPTH`` deep, an object, with no NaN / Infinity / overflowing number anywhere
   (models.artifact_io);
2. the manifest's fields: a known ``format_version``, ``kind`` and ``role``; every size within ``LIMITS``
   (sensors, window, horizon, score.steps, period_s and each hyperparameter, plus the activations one window
   needs); only the kind's own hyperparameters; a threshold value > 0 and resolve / critical levels > 0 and in
   order; envelope statistics finite or null, spreads >= 0, min <= max;
3. the sensors match ``expected_sensors``; the scaler is valid;
4. the architecture, built on torch's ``meta`` device (no memory), gives the expected tensor names and shapes;
   their total size is within ``max_weights_bytes``;
5. the weights file: named ``*.safetensors``, a regular file inside the directory, at most
   ``max_weights_bytes`` (decided from its size before it is read), its sha256 the manifest's, its header
   consistent (offsets, lengths, dtypes) and naming exactly the expected float32 tensors and shapes, every
   value finite;
6. the loaded model scores a probe batch (windows at the training mean) to finite numbers.

Any failure raises ``ArtifactError``; an unexpected exception inside the loader (MemoryError, a torch error)
is turned into one too (reason ``corrupt``), so a caller that catches ``ArtifactError`` survives any artifact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.artifact_io import (
    ARTIFACT_ERROR_REASONS,
    ArtifactError,
    parse_json,
    read_artifact_file,
    safetensors_layout,
)
from models.device import resolve_device
from models.inference import InferenceResult, LoadedModel
from models.networks import KINDS, build_model
from models.preprocessing import Scaler

__all__ = [
    "ARTIFACT_ERROR_REASONS",
    "FORMAT_VERSION",
    "LIMITS",
    "MAX_MANIFEST_BYTES",
    "MAX_WEIGHTS_BYTES",
    "ArtifactError",
    "InferenceResult",
    "LoadedModel",
    "load_artifact",
    "probe_windows",
    "save_artifact",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"

# A manifest is a few KB (about 1.5 KB per sensor of envelope); 4 MiB holds the largest unit LIMITS allows.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# The deepest real manifest field is threshold.parameters.critical (depth 4); 100,000 "[" is an attack.
MAX_MANIFEST_DEPTH = 32
# The seed's models are under 2 MiB of float32. LIMITS alone would allow a 2 GiB lstm (hidden 2048, 16 layers):
# the architecture's parameter count is bounded by this too, so a doctored manifest cannot make the loader build
# more than 256 MiB of tensors. Callers that serve bigger models pass their own ``max_weights_bytes``.
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024
MAX_NAME_CHARS = 200  # model and sensor names: they end up in logs and metric labels

# (low, high) of every size a manifest chooses, checked before anything is built. Generous against what plants
# and the seed use (tens of sensors, windows of 16-120 rows, hidden 8-128, 1-3 layers), tight against what would
# take the host down: hidden_size 1,000,000 asks torch for 16 TB.
LIMITS: dict[str, tuple[float, float]] = {
    "sensors": (1, 1024),  # one unit's sensors; a bigger unit is split across units
    "window": (1, 4096),  # rows per window: over an hour at 1 Hz; each unit's ring buffer holds this many rows
    "horizon": (0, 1024),  # forecast steps; seq2seq decodes them one by one
    "score.steps": (1, 4096),  # and never more than the window
    "period_s": (1e-3, 86_400.0),  # 1 kHz to one row a day
    "hidden_size": (1, 2048),
    "num_layers": (1, 16),
    "latent_size": (1, 1024),
    "dropout": (0.0, 0.99),  # a probability; 1.0 would zero every activation in training
    # (window + horizon) x hidden_size x num_layers x directions: the activations of one window in one forward.
    # 2**20 floats = 4 MiB a window, 1 GiB for a 256-window batch; the seed's largest model needs ~50,000.
    "activations": (1, 2**20),
}
_INTEGER_LIMITS = ("sensors", "window", "horizon", "score.steps", "hidden_size", "num_layers", "latent_size")


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


def _invalid(message: str, directory: Path) -> ArtifactError:
    return ArtifactError(message, "invalid_manifest", directory)


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        raw = read_artifact_file(directory, MANIFEST_NAME, MAX_MANIFEST_BYTES)
    except ArtifactError as exc:
        if exc.reason == "missing":
            raise ArtifactError(
                f"no {MANIFEST_NAME} (is this a model artifact directory?)", "missing", directory
            ) from exc
        raise
    manifest = parse_json(raw, MANIFEST_NAME, directory, MAX_MANIFEST_DEPTH)
    if not isinstance(manifest, dict):
        raise _invalid(f"{MANIFEST_NAME} must hold a JSON object, not {type(manifest).__name__}", directory)
    where = _non_finite(manifest, "")
    if where is not None:
        raise _invalid(f"manifest field {where!r} is not a finite number", directory)
    return manifest


def _non_finite(value: Any, where: str) -> str | None:
    """The path of the first float that is not finite (1e400 parses as inf); the depth is bounded already."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where or "."
    items: Any = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _field(manifest: dict[str, Any], key: str, types: type | tuple[type, ...], directory: Path) -> Any:
    if key not in manifest:
        raise _invalid(f"manifest field {key!r} is missing", directory)
    value = manifest[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise _invalid(f"manifest field {key!r} has the wrong type ({type(value).__name__})", directory)
    return value


def _within(name: str, value: Any, directory: Path, high: float | None = None, field: str | None = None) -> None:
    """``value`` inside ``LIMITS[name]`` (and under ``high``): too_large above, invalid_manifest otherwise;
    messages name ``field`` (default ``name``)."""
    low, limit = LIMITS[name]
    field = field or name
    limit = limit if high is None else min(limit, high)
    integer = name in _INTEGER_LIMITS
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "an integer" if integer else "a number"
        raise _invalid(f"{field} must be {kind}, got {type(value).__name__} {value!r:.40}", directory)
    if value > limit:
        raise ArtifactError(f"{field} {value!r:.40} is over the limit of {limit:g}", "too_large", directory)
    if value < low:
        raise _invalid(f"{field} {value!r} is under the minimum of {low:g}", directory)


def _name_ok(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS


def _validate_manifest(manifest: dict[str, Any], directory: Path) -> None:
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ArtifactError(
            f"unsupported format_version {version!r:.40} (this plantwatch reads format_version {FORMAT_VERSION})",
            "format_version",
            directory,
        )
    kind = _field(manifest, "kind", str, directory)
    if kind not in KINDS:
        raise _invalid(f"unknown model kind {kind!r:.40}", directory)
    role = _field(manifest, "role", str, directory)
    if role != KINDS[kind].role:
        raise _invalid(f"role {role!r:.40} does not match kind {kind!r}", directory)
    if "name" in manifest and not _name_ok(manifest["name"]):
        raise _invalid(f"manifest field 'name' must be a string of 1 to {MAX_NAME_CHARS} characters", directory)
    sensors = _field(manifest, "sensors", list, directory)
    _within("sensors", len(sensors), directory, field="the number of sensors")
    if not all(_name_ok(s) for s in sensors) or len(set(sensors)) != len(sensors):
        raise _invalid(
            f"manifest field 'sensors' must be distinct names of 1 to {MAX_NAME_CHARS} characters", directory
        )
    window = _field(manifest, "window", int, directory)
    _within("window", window, directory)
    horizon = _field(manifest, "horizon", int, directory)
    _within("horizon", horizon, directory)
    if (role == "forecaster") != (horizon > 0):
        raise _invalid(f"horizon {horizon} does not fit a {role} (forecasters > 0, detectors 0)", directory)
    _within("period_s", _field(manifest, "period_s", (int, float), directory), directory)
    _validate_hyperparameters(kind, _field(manifest, "hyperparameters", dict, directory), window + horizon, directory)
    threshold = _field(manifest, "threshold", dict, directory)
    value = threshold.get("value")
    if not _is_number(value) or value <= 0:
        raise _invalid(f"threshold.value must be a finite number > 0, got {value!r:.40}", directory)
    if not isinstance(threshold.get("method"), str):
        raise _invalid("threshold.method must be a string", directory)
    _validate_calibration(threshold, float(value), directory)
    if "envelope" in manifest:
        _validate_envelope(manifest["envelope"], sensors, directory)
    score = manifest.get("score", {})
    if not isinstance(score, dict):
        raise _invalid("manifest field 'score' must be an object", directory)
    _within("score.steps", score.get("steps", window), directory, high=window)
    _field(manifest, "weights", dict, directory)


def _validate_hyperparameters(kind: str, hyper: dict[str, Any], steps: int, directory: Path) -> None:
    """Only the kind's own hyperparameters, each within LIMITS, and the activations of one window bounded."""
    allowed = KINDS[kind].seed_hyperparameters
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise _invalid(f"hyperparameters {unknown} are not parameters of kind {kind!r} ({sorted(allowed)})", directory)
    params = {**allowed, **hyper}
    for key, value in params.items():
        _within(key, value, directory, field=f"hyperparameters.{key}")
    directions = 2 if kind == "bilstm" else 1
    activations = steps * params["hidden_size"] * params["num_layers"] * directions
    _within("activations", activations, directory, field="(window + horizon) x hidden_size x num_layers x directions")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate_calibration(threshold: dict[str, Any], value: float, directory: Path) -> None:
    """The calibration fields added with the honest calibration: optional (older artifacts lack them), and
    checked when present: finite numbers, null only where a level may be absent, levels > 0 and in order
    (resolve <= value <= critical), rates and quantiles in [0, 1]."""
    for key in ("n_effective", "decorrelation_windows", "resolve_value", "resolve_quantile", "critical_value"):
        if threshold.get(key) is not None and not _is_number(threshold[key]):
            raise _invalid(f"threshold.{key} must be a finite number", directory)
    for key in ("resolve_value", "critical_value"):
        if threshold.get(key) is not None and threshold[key] <= 0:
            raise _invalid(f"threshold.{key} must be > 0, got {threshold[key]!r}", directory)
    for key in ("n_effective", "decorrelation_windows"):
        if threshold.get(key) is not None and threshold[key] < 0:
            raise _invalid(f"threshold.{key} must be >= 0", directory)
    for key in ("resolve_quantile", "target_far"):
        if threshold.get(key) is not None and not (_is_number(threshold[key]) and 0 <= threshold[key] <= 1):
            raise _invalid(f"threshold.{key} must be a number in [0, 1]", directory)
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
    far = holdout.get("far") if isinstance(holdout, dict) else None
    if far is not None and not (_is_number(far) and 0 <= far <= 1):
        raise _invalid("threshold.holdout.far must be a number in [0, 1] or null", directory)


_ENVELOPE_SPREADS = ("std", "min_window_std")  # never negative
_ENVELOPE_ORDER = (("min", "max"), ("p001", "p999"), ("min", "mean"), ("mean", "max"))


def _validate_envelope(envelope: Any, sensors: list[str], directory: Path) -> None:
    """``envelope``: per-sensor statistics of the model's sensors, each a finite number or null, spreads >= 0,
    min <= mean <= max and p001 <= p999 where both are there."""
    per_sensor = envelope.get("sensors") if isinstance(envelope, dict) else None
    if not isinstance(per_sensor, dict) or not set(per_sensor) <= set(sensors):
        raise _invalid("envelope.sensors must map the model's sensors to their statistics", directory)
    for name, stats in per_sensor.items():
        if not isinstance(stats, dict) or not all(v is None or _is_number(v) for v in stats.values()):
            raise _invalid(f"envelope.sensors.{name}: statistics must be finite numbers or null", directory)
        for key in _ENVELOPE_SPREADS:
            if stats.get(key) is not None and stats[key] < 0:
                raise _invalid(f"envelope.sensors.{name}.{key} must be >= 0", directory)
        for low, high in _ENVELOPE_ORDER:
            if stats.get(low) is not None and stats.get(high) is not None and stats[low] > stats[high]:
                raise _invalid(f"envelope.sensors.{name}: {low} is above {high}", directory)


def _expected_state(manifest: dict[str, Any], max_bytes: int, directory: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of the manifest's architecture, built on the meta device (nothing allocated; the
    device context is thread-local, so the scheduler thread scoring meanwhile is not affected)."""
    try:
        with torch.device("meta"):
            module = _build(manifest)
    except (TypeError, ValueError) as exc:
        raise _invalid(f"hyperparameters do not build a model: {exc}", directory) from exc
    module_horizon = getattr(module, "horizon", 0)
    if module_horizon != manifest["horizon"]:
        raise _invalid(
            f"horizon {manifest['horizon']} differs from the {manifest['kind']} architecture's {module_horizon}",
            directory,
        )
    shapes = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    size = 4 * sum(math.prod(shape) for shape in shapes.values())
    if size > max_bytes:
        raise ArtifactError(
            f"the hyperparameters describe {size} bytes of float32 weights, over the limit of {max_bytes}",
            "too_large",
            directory,
        )
    return shapes


def _build(manifest: dict[str, Any]) -> nn.Module:
    sensors, window, horizon = len(manifest["sensors"]), manifest["window"], manifest["horizon"]
    return build_model(manifest["kind"], sensors, window, horizon, **manifest["hyperparameters"])


def _read_weights(
    manifest: dict[str, Any], directory: Path, expected: dict[str, tuple[int, ...]], max_bytes: int
) -> dict[str, torch.Tensor]:
    entry = manifest["weights"]
    name = entry.get("file")
    sha = entry.get("sha256")
    if not isinstance(name, str) or not isinstance(sha, str):
        raise _invalid("weights.file and weights.sha256 must be strings", directory)
    # Only a plain safetensors file name inside the artifact directory: no pickle formats, no paths.
    if Path(name).name != name or not name.endswith(".safetensors") or len(name) > MAX_NAME_CHARS:
        raise ArtifactError(
            f"weights file {name!r:.80} refused: only a .safetensors file inside the artifact directory is loaded",
            "unsafe_format",
            directory,
        )
    try:
        data = read_artifact_file(directory, name, max_bytes)
    except ArtifactError as exc:
        raise ArtifactError(f"weights file {str(exc).split(': ', 1)[-1]}", exc.reason, directory) from exc
    actual = _sha256(data)
    if actual != sha.lower():
        raise ArtifactError(
            f"weights file {name} sha256 mismatch: manifest says {sha[:12]}..., file is {actual[:12]}... "
            "(altered or replaced weights)",
            "checksum",
            directory,
        )
    layout = safetensors_layout(data, name, directory)
    problems = [f"{t}: {d}, expected F32" for t, (d, _) in layout.items() if d != "F32"]
    problems += [f"{t}: missing" for t in expected if t not in layout]
    problems += [f"{t}: not in the architecture" for t in layout if t not in expected]
    problems += [
        f"{t}: shape {list(layout[t][1])}, expected {list(s)}"
        for t, s in expected.items()
        if t in layout and layout[t][1] != s
    ]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise ArtifactError(
            f"weights do not fit the {manifest['kind']} architecture: {shown}", "shape_mismatch", directory
        )
    from safetensors.torch import load

    try:
        state = load(data)
    except Exception as exc:  # safetensors raises its own error types for any malformed buffer
        raise ArtifactError(
            f"weights file {name} is not a valid safetensors file: {exc}", "corrupt", directory
        ) from exc
    bad = [t for t, tensor in state.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ArtifactError(f"weights hold NaN or inf values in {bad[:4]}", "non_finite", directory)
    return state


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


def probe_windows(model: LoadedModel) -> np.ndarray:
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


def _probe(model: LoadedModel, directory: Path) -> None:
    """The model must score ``probe_windows`` to finite numbers: weights that are finite but overflow (or a
    scaler beyond float32) are as useless as NaN weights, and would otherwise only show as missing scores."""
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


def load_artifact(
    path: str | Path,
    device: str | torch.device = "cpu",
    expected_sensors: Sequence[str] | None = None,
    max_weights_bytes: int = MAX_WEIGHTS_BYTES,
) -> LoadedModel:
    """Load and verify an artifact directory (or its manifest.json) onto ``device``; see the module docstring."""
    directory = Path(path)
    if directory.name == MANIFEST_NAME:
        directory = directory.parent
    target = resolve_device(device)  # a bad device is the caller's error, not the artifact's
    try:
        return _load(directory, target, expected_sensors, max_weights_bytes)
    except ArtifactError:
        raise
    except Exception as exc:  # nothing an artifact holds may escape as anything but an ArtifactError
        raise ArtifactError(f"unexpected {type(exc).__name__} while loading: {exc}", "corrupt", directory) from exc


def _load(
    directory: Path, device: torch.device, expected_sensors: Sequence[str] | None, max_weights_bytes: int
) -> LoadedModel:
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
    expected = _expected_state(manifest, max_weights_bytes, directory)
    state = _read_weights(manifest, directory, expected, max_weights_bytes)
    module = _build(manifest)  # bounded now: the same tensors as the weights just read
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(
            f"weights do not fit the {manifest['kind']} architecture: {exc}", "shape_mismatch", directory
        ) from exc
    model = LoadedModel(module, manifest, scaler, device)
    _probe(model, directory)
    return model
