"""An artifact manifest's schema, checked without torch: its file names and bounds, LIMITS, validate_manifest.

API:
    validate_manifest(manifest, directory)          # step 2 of the loaders' checks: every field a loader uses
    check_sensors(sensors, expected, directory)     # step 3: the sensors the config expects, in its order
    graph_outputs(manifest) -> tuple[str, ...]      # the outputs the manifest's ONNX graph must have, in order
    LIMITS, FORMAT_VERSION, MANIFEST_NAME, WEIGHTS_NAME, ONNX_NAME, REFERENCE_NAME, MAX_* bounds, ROLE_OUTPUTS

Reading the files (steps 1, 4 and 5: the manifest's JSON, the weights' shapes, size, checksum, layout and values)
and the loaders' entry, load_checked_manifest, are models/manifest_files.py. Apart from it because this is the one
table of what a manifest may say: a section added to the manifest is checked here, in validate_manifest, and
nowhere else.

The checks (steps 2 and 3; the steps are numbered in models/manifest_files.py and models/artifacts.py):

Step 2, the manifest's fields: a known ``format_version``, ``kind`` and ``role``; every size within ``LIMITS``
(sensors, window, horizon, score.steps, period_s and each hyperparameter, plus the activations one window needs);
only the kind's own hyperparameters; a threshold value > 0 and resolve / critical levels > 0 and in order; envelope
statistics finite or null, spreads >= 0, min <= max; the ``onnx`` section, when there is one, well formed (strings,
sha256 hex digests, integers within bounds, tolerances within ``MAX_ONNX_TOLERANCE``).

Step 3 (check_sensors): the sensors match ``expected_sensors``, in order; the scaler is then checked by
models.manifest_files.load_checked_manifest.

The ``onnx`` section (written by models/onnx_export.py) names ``model.onnx`` and ``reference.safetensors``
(file, sha256, bytes each), the opset and exporter, ``exported_from`` (the weights' sha256, the scaler's sha256
and the score steps the graph folds in: a manifest whose scaler or weights changed after the export no longer
matches its graph), the reference windows' count and source, and per output the tolerance and the difference
measured at export. What the ONNX loader does with them is in models/onnx_model.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.artifact_io import ArtifactError
from models.kinds import KINDS

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"
ONNX_NAME = "model.onnx"
REFERENCE_NAME = "reference.safetensors"

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
    "n_components": (1, 1024),  # pca: principal components kept, at most one per sensor
    "dropout": (0.0, 0.99),  # a probability; 1.0 would zero every activation in training
    # (window + horizon) x hidden_size x num_layers x directions: the activations of one window in one forward.
    # 2**20 floats = 4 MiB a window, 1 GiB for a 256-window batch; the seed's largest model needs ~50,000.
    "activations": (1, 2**20),
    # The ONNX graph's opset: 17 is what models/onnx_export.py writes; an older one lacks ops the graph uses.
    "onnx.opset": (13, 30),
    # Stored reference windows (models/reference.py picks at most 32, fewer for very wide windows).
    "onnx.reference.windows": (1, 32),
}
_INTEGER_LIMITS = (
    "sensors",
    "window",
    "horizon",
    "score.steps",
    "hidden_size",
    "num_layers",
    "latent_size",
    "n_components",
    "onnx.opset",
    "onnx.reference.windows",
)

# A tolerance the manifest states for ONNX Runtime against torch: above this the reference check proves nothing
# (the outputs are float32 on both sides; models/onnx_export.py says what it measured and what it writes).
MAX_ONNX_TOLERANCE = 1e-2
# The outputs each role's graph has, besides "attention" for a model with attention (models/onnx_export.py).
ROLE_OUTPUTS = {"detector": ("sensor_errors",), "forecaster": ("forecasts",)}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _invalid(message: str, directory: Path) -> ArtifactError:
    return ArtifactError(message, "invalid_manifest", directory)


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


def validate_manifest(manifest: dict[str, Any], directory: Path) -> None:
    """Step 2: every field a loader uses, within LIMITS (see the module docstring)."""
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
    if "onnx" in manifest:
        _validate_onnx(manifest, directory)


def _validate_hyperparameters(kind: str, hyper: dict[str, Any], steps: int, directory: Path) -> None:
    """Only the kind's own hyperparameters, each within LIMITS, and the activations of one window bounded."""
    allowed = KINDS[kind].seed_hyperparameters
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise _invalid(f"hyperparameters {unknown} are not parameters of kind {kind!r} ({sorted(allowed)})", directory)
    params = {**allowed, **hyper}
    for key, value in params.items():
        _within(key, value, directory, field=f"hyperparameters.{key}")
    if not KINDS[kind].network:  # pca: a window costs steps x sensors x components, each bounded above
        return
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


_ENVELOPE_SPREADS = ("std", "min_window_std", "step_scale", "max_step")  # never negative
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


def graph_outputs(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The names of the outputs the manifest's ONNX graph must have, in order."""
    outputs = ROLE_OUTPUTS[manifest["role"]]
    return (*outputs, "attention") if KINDS[manifest["kind"]].has_attention else outputs


def _file_entry(section: Any, where: str, directory: Path) -> None:
    """``{"file": str, "sha256": 64 hex digits, "bytes": int >= 0}``; the file name itself is judged when read."""
    if not isinstance(section, dict):
        raise _invalid(f"{where} must be an object", directory)
    if not isinstance(section.get("file"), str):
        raise _invalid(f"{where}.file must be a string", directory)
    if not isinstance(section.get("sha256"), str) or not _SHA256.fullmatch(section["sha256"]):
        raise _invalid(f"{where}.sha256 must be 64 lowercase hex digits", directory)
    size = section.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _invalid(f"{where}.bytes must be a non-negative integer", directory)


def _validate_onnx(manifest: dict[str, Any], directory: Path) -> None:
    section = manifest["onnx"]
    _file_entry(section, "onnx", directory)
    _within("onnx.opset", section.get("opset"), directory)
    if not isinstance(section.get("exporter"), str):
        raise _invalid("onnx.exporter must be a string", directory)
    source = section.get("exported_from")
    if not isinstance(source, dict):
        raise _invalid("onnx.exported_from must be an object", directory)
    reference = section.get("reference")
    _file_entry(reference, "onnx.reference", directory)
    _within("onnx.reference.windows", reference.get("windows"), directory)
    outputs = graph_outputs(manifest)
    for key in ("tolerance", "max_diff"):
        table = section.get(key)
        if not isinstance(table, dict) or set(table) != set(outputs):
            raise _invalid(f"onnx.{key} must give {list(outputs)}", directory)
        for output in outputs:
            entry = table[output]
            if not isinstance(entry, dict) or set(entry) != {"abs", "rel"}:
                raise _invalid(f"onnx.{key}.{output} must be {{'abs': number, 'rel': number}}", directory)
            for part in ("abs", "rel"):
                value = entry[part]
                if not _is_number(value) or value < 0:
                    raise _invalid(f"onnx.{key}.{output}.{part} must be a finite number >= 0", directory)
                if key == "tolerance" and value > MAX_ONNX_TOLERANCE:
                    raise _invalid(
                        f"onnx.tolerance.{output}.{part} {value:g} is over {MAX_ONNX_TOLERANCE:g}: such a "
                        "tolerance would accept a graph unlike the torch model",
                        directory,
                    )


def check_sensors(sensors: tuple[str, ...], expected: Sequence[str] | None, directory: Path) -> None:
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
