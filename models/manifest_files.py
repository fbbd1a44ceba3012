"""An artifact's manifest and weights file read and checked without torch: what both loaders
(models/artifacts.py, torch; models/onnx_model.py, ONNX Runtime) verify before they build anything.

API:
    load_checked_manifest(directory, expected_sensors) -> (manifest, scaler)   # steps 1-3 of models/artifacts.py
    expected_weight_shapes(manifest, max_bytes, directory) -> {tensor: shape}   # torch-free, too_large over max_bytes
    read_weights_file(manifest, directory, expected, max_bytes) -> bytes        # name, size, sha256, header layout
    weights_finite(data, directory)                                             # every value finite (numpy)
    exported_from(manifest) -> dict     # what an ONNX graph folds in: weights sha256, scaler sha256, score steps
    read_manifest(directory), read_entry_file(...), checked_file_name(...), weights_bytes_bound(...), sha256_hex

The checks, in the order the loaders run them (models/artifacts.py's module docstring numbers them):

1. ``manifest.json`` is a regular file inside the directory (a symlink only to a file inside it; never a FIFO,
   which would block the open), at most ``MAX_MANIFEST_BYTES``, UTF-8 JSON nested at most
   ``MAX_MANIFEST_DEPTH`` deep, an object, with no NaN / Infinity / overflowing number anywhere
   (models.artifact_io);
2. the manifest's fields (models.manifest.validate_manifest: the schema, LIMITS; that module lists them);
3. the sensors match ``expected_sensors`` (models.manifest.check_sensors); the scaler is valid;
4. the weights' tensor names and shapes (here computed from the hyperparameters, models.kinds.tensor_shapes; the
   torch loader builds the architecture on the meta device instead), their total size within ``max_bytes``;
5. the weights file: named ``*.safetensors``, a regular file inside the directory, at most ``max_bytes`` (decided
   from its size before it is read), its sha256 the manifest's, its header consistent (offsets, lengths, dtypes)
   and naming exactly the expected tensors and shapes in the kind's dtype (float32; the pca's float64,
   models.kinds.KindSpec.weights_dtype), every value finite.

Apart from models.manifest because these are the file reads (bounded, checksummed, nothing trusted before it is
checked), while the schema is one table of its own; the file names and bounds used here are the schema's.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.artifact_io import ArtifactError, parse_json, read_artifact_file, safetensors_layout
from models.kinds import KINDS, tensor_shapes
from models.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    MAX_NAME_CHARS,
    _invalid,
    check_sensors,
    validate_manifest,
)
from models.preprocessing import Scaler


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """Step 1: the manifest's JSON object (bounded, regular file, finite numbers)."""
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


def load_checked_manifest(directory: Path, expected_sensors: Sequence[str] | None) -> tuple[dict[str, Any], Scaler]:
    """Steps 1-3: the directory exists, the manifest is read and valid, the sensors expected, the scaler valid."""
    if not directory.is_dir():
        raise ArtifactError("directory does not exist", "missing", directory)
    manifest = read_manifest(directory)
    validate_manifest(manifest, directory)
    sensors = tuple(manifest["sensors"])
    check_sensors(sensors, expected_sensors, directory)
    try:
        scaler = Scaler.from_dict(manifest.get("scaler"))
    except ValueError as exc:
        raise ArtifactError(str(exc), "scaler", directory) from exc
    if scaler.feature_order != sensors:
        raise ArtifactError("scaler.feature_order differs from sensors", "scaler", directory)
    return manifest, scaler


DTYPE_NAMES = {"F32": "float32", "F64": "float64"}  # the weights dtypes a kind may have (KindSpec.weights_dtype)
DTYPE_BYTES = {"F32": 4, "F64": 8}


def weights_bytes_bound(
    shapes: dict[str, tuple[int, ...]], max_bytes: int, directory: Path, dtype: str = "F32"
) -> None:
    """The weights ``shapes`` describe, in ``dtype``, fit in ``max_bytes`` (too_large otherwise)."""
    size = DTYPE_BYTES[dtype] * sum(math.prod(shape) for shape in shapes.values())
    if size > max_bytes:
        raise ArtifactError(
            f"the hyperparameters describe {size} bytes of {DTYPE_NAMES[dtype]} weights, over the limit of {max_bytes}",
            "too_large",
            directory,
        )


def expected_weight_shapes(manifest: dict[str, Any], max_bytes: int, directory: Path) -> dict[str, tuple[int, ...]]:
    """Step 4 without torch: the tensors of the manifest's architecture (models.kinds.tensor_shapes)."""
    sensors, window, horizon = len(manifest["sensors"]), manifest["window"], manifest["horizon"]
    try:
        shapes = tensor_shapes(manifest["kind"], sensors, window, horizon, **manifest["hyperparameters"])
    except (TypeError, ValueError) as exc:
        raise _invalid(f"hyperparameters do not build a model: {exc}", directory) from exc
    weights_bytes_bound(shapes, max_bytes, directory, KINDS[manifest["kind"]].weights_dtype)
    return shapes


def checked_file_name(name: Any, suffix: str, what: str, reason: str, directory: Path) -> str:
    """A plain file name ending in ``suffix`` (no path, no other format); ArtifactError(``reason``) otherwise."""
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(suffix) or len(name) > MAX_NAME_CHARS:
        raise ArtifactError(
            f"{what} {name!r:.80} refused: only a {suffix} file inside the artifact directory is loaded",
            reason,
            directory,
        )
    return name


def read_entry_file(entry: dict[str, Any], suffix: str, what: str, directory: Path, max_bytes: int) -> bytes:
    """The bytes of the file a manifest entry names (``{"file", "sha256"}``): a plain ``*suffix`` name, a regular
    file inside the directory, at most ``max_bytes`` (decided before reading), its sha256 the entry's."""
    name = checked_file_name(entry.get("file"), suffix, what, "unsafe_format", directory)
    sha = entry.get("sha256")
    if not isinstance(sha, str):
        raise _invalid(f"{what} sha256 must be a string", directory)
    try:
        data = read_artifact_file(directory, name, max_bytes)
    except ArtifactError as exc:
        raise ArtifactError(f"{what} {str(exc).split(': ', 1)[-1]}", exc.reason, directory) from exc
    actual = sha256_hex(data)
    if actual != sha.lower():
        raise ArtifactError(
            f"{what} {name} sha256 mismatch: manifest says {sha[:12]}..., file is {actual[:12]}... "
            "(altered or replaced file)",
            "checksum",
            directory,
        )
    return data


def read_weights_file(
    manifest: dict[str, Any], directory: Path, expected: dict[str, tuple[int, ...]], max_bytes: int
) -> bytes:
    """Step 5 up to the values: the weights file's bytes, its header checked against ``expected``."""
    entry = manifest["weights"]
    if not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
        raise _invalid("weights.file and weights.sha256 must be strings", directory)
    data = read_entry_file(entry, ".safetensors", "weights file", directory, max_bytes)
    name = entry["file"]
    layout = safetensors_layout(data, name, directory)
    dtype = KINDS[manifest["kind"]].weights_dtype
    problems = [f"{t}: {d}, expected {dtype}" for t, (d, _) in layout.items() if d != dtype]
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
    return data


def non_finite_error(names: list[str], directory: Path) -> ArtifactError:
    return ArtifactError(f"weights hold NaN or inf values in {names[:4]}", "non_finite", directory)


def weights_finite(data: bytes, name: str, directory: Path) -> dict[str, npt.NDArray[Any]]:
    """Step 5's last check, with numpy: every tensor of the (layout-checked) weights file is finite; the arrays
    (the torch loader makes its tensors from them)."""
    from safetensors.numpy import load

    try:
        state = load(data)
    except Exception as exc:  # safetensors raises its own error types for any malformed buffer
        raise ArtifactError(
            f"weights file {name} is not a valid safetensors file: {exc}", "corrupt", directory
        ) from exc
    bad = [t for t, array in state.items() if not bool(np.isfinite(array).all())]
    if bad:
        raise non_finite_error(bad, directory)
    return state


def exported_from(manifest: dict[str, Any]) -> dict[str, Any]:
    """What an ONNX graph folds in from the manifest: the weights file's sha256, the scaler's (sha256 of its
    canonical JSON) and the detector's score steps. Recorded at export; the ONNX loader compares."""
    scaler_text = json.dumps(manifest.get("scaler"), sort_keys=True, allow_nan=False).encode("utf-8")
    return {
        "weights_sha256": str(manifest["weights"].get("sha256", "")).lower(),
        "scaler_sha256": sha256_hex(scaler_text),
        "score_steps": int(manifest.get("score", {}).get("steps", manifest["window"])),
    }
