"""Model artifacts with torch: writing them, and loading them as a torch ``LoadedModel``; loading never unpickles
and cannot crash the process.

API:
    save_artifact(out_dir, module, manifest, onnx=None) -> Path       # onnx: a models.onnx_export.OnnxBundle
    load_artifact(path, device="cpu", expected_sensors=None, max_weights_bytes=MAX_WEIGHTS_BYTES,
                  precision="fp32") -> LoadedModel
    ArtifactError (a ValueError) with .reason in ARTIFACT_ERROR_REASONS (a bounded set, usable as a metric label)
    LIMITS                                   # the bounds on every size a manifest can ask for (models/manifest.py)
    probe_windows(model) -> [2, W, S]        # the windows step 6 scores: at the training mean, and half a scale up
    PRECISION_TOLERANCE                      # how far a reduced precision's scores may move, share of the threshold
    read_reference(manifest, directory) -> Reference | None   # the stored reference windows, checked
    precision_scores(model, windows, actual) -> [N]          # the scores step 7 compares
    write_manifest(directory, manifest); atomic_write(path, data); weights_bytes(module)   # what save writes

The torch-free half (the manifest's checks, the weights file's header, the reference windows) is
models/manifest.py and models/reference.py; the ONNX Runtime loader (models/onnx_model.py) runs the same checks
without torch, and models/serving.py chooses between the two.

Layout (DESIGN.md "Model artifacts")::

    DIR/manifest.json          sorted keys, indented; format_version, kind, role, hyperparameters,
                               sensors, period_s, window, horizon, scaler, score, threshold,
                               training (data fingerprint, split, figures), weights (file, sha256, bytes),
                               onnx (file, sha256, bytes, opset, exporter, exported_from, reference, tolerance,
                               max_diff, seconds; artifacts written before the ONNX export have none), versions,
                               created
    DIR/weights.safetensors    the state dict, float32 tensors (JSON header + raw buffers)
    DIR/model.onnx             the serving graph: scaler, network and score in one graph (models/onnx_export.py)
    DIR/reference.safetensors  reference windows and torch eager's outputs on them (models/reference.py)

``load_artifact`` checks, in order, and allocates nothing the checks before it have not bounded:

1. ``manifest.json`` is a regular file inside the directory (a symlink only to a file inside it; never a FIFO,
   which would block the open), at most ``MAX_MANIFEST_BYTES``, UTF-8 JSON nested at most
   ``MAX_MANIFEST_DEPTH`` deep, an object, with no NaN / Infinity / overflowing number anywhere
   (models.artifact_io);
2. the manifest's fields: a known ``format_version``, ``kind`` and ``role``; every size within ``LIMITS``
   (sensors, window, horizon, score.steps, period_s and each hyperparameter, plus the activations one window
   needs); only the kind's own hyperparameters; a threshold value > 0 and resolve / critical levels > 0 and in
   order; envelope statistics finite or null, spreads >= 0, min <= max; the onnx section well formed;
3. the sensors match ``expected_sensors``; the scaler is valid;
4. the architecture, built on torch's ``meta`` device (no memory), gives the expected tensor names and shapes;
   their total size is within ``max_weights_bytes``;
5. the weights file: named ``*.safetensors``, a regular file inside the directory, at most
   ``max_weights_bytes`` (decided from its size before it is read), its sha256 the manifest's, its header
   consistent (offsets, lengths, dtypes) and naming exactly the expected float32 tensors and shapes, every
   value finite;
6. the loaded model scores a probe batch (windows at the training mean) to finite numbers;
7. with a ``precision`` other than fp32: a converted copy (models/inference.py) scores the reference windows
   (the artifact's stored ones, else models.reference.synthetic_reference) within ``PRECISION_TOLERANCE`` x
   the threshold of the fp32 model's scores, else ArtifactError ``precision``: that precision is refused for
   that model.

The torch loader does not read model.onnx: it is the CUDA path and the fallback for artifacts without one. It loads
network kinds only: a ``pca`` artifact (no network) is refused here (``invalid_manifest``) and loaded by
models/pca_artifact.py, which models.serving.load_for_serving calls for it.
Any failure raises ``ArtifactError``; an unexpected exception inside the loader (MemoryError, a torch error)
is turned into one too (reason ``corrupt``), so a caller that catches ``ArtifactError`` survives any artifact.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from models.artifact_io import ARTIFACT_ERROR_REASONS, ArtifactError, atomic_write, library_versions, write_manifest
from models.device import resolve_device
from models.inference import PRECISIONS, InferenceResult, LoadedModel
from models.kinds import KINDS
from models.manifest import (
    FORMAT_VERSION,
    LIMITS,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    MAX_NAME_CHARS,
    MAX_WEIGHTS_BYTES,
    ONNX_NAME,
    REFERENCE_NAME,
    WEIGHTS_NAME,
    load_checked_manifest,
    read_weights_file,
    sha256_hex,
    weights_bytes_bound,
    weights_finite,
)
from models.networks import build_model
from models.reference import Reference, decode, max_reference_bytes, probe, probe_windows, synthetic_reference

if TYPE_CHECKING:
    from models.onnx_export import OnnxBundle

__all__ = [
    "ARTIFACT_ERROR_REASONS",
    "FORMAT_VERSION",
    "LIMITS",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_DEPTH",
    "MAX_NAME_CHARS",
    "MAX_WEIGHTS_BYTES",
    "ONNX_NAME",
    "PRECISION_TOLERANCE",
    "REFERENCE_NAME",
    "WEIGHTS_NAME",
    "ArtifactError",
    "InferenceResult",
    "LoadedModel",
    "atomic_write",
    "load_artifact",
    "probe_windows",
    "read_reference",
    "save_artifact",
    "write_manifest",
]

# A reduced precision's scores on the reference windows may differ from fp32's by at most this share of the
# threshold. An alert fires on score > threshold: a 2 % shift moves the decision only for windows scoring within
# 2 % of the threshold, a sliver of the calibrated tail (the threshold's own uncertainty from a few hundred
# effective calibration windows is larger), so the calibrated false-alarm rate stays what the manifest says.
# Measured on the CPU (tests/models/test_precision.py prints it; the tiny test models, hidden 8, window 16): bf16
# moved the scores by up to 0.015 % of the threshold, fp16 by up to 0.002 %. CUDA's kernels were not measured.
PRECISION_TOLERANCE = 0.02


def _versions() -> dict[str, str]:
    return {**library_versions(), "torch": torch.__version__}


def weights_bytes(module: nn.Module) -> bytes:
    """The safetensors bytes ``save_artifact`` writes for ``module`` (float32, on the CPU)."""
    from safetensors.torch import save

    state = {
        name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in module.state_dict().items()
    }
    return save(state)


def save_artifact(
    out_dir: str | Path, module: nn.Module, manifest: dict[str, Any], onnx: OnnxBundle | None = None
) -> Path:
    """Write ``module``'s weights and ``manifest`` (kind, sensors, scaler, threshold, ...) to ``out_dir``.

    Adds ``format_version``, ``weights`` (file name, sha256, bytes), ``versions`` and ``created``; with ``onnx``
    (models.onnx_export.export_onnx of this module and manifest) also model.onnx, reference.safetensors and the
    manifest's ``onnx`` section. A manifest's old ``onnx`` section is never carried over without the files it
    describes. The weights are written first, then the ONNX files, the manifest last, each atomically, so a
    directory with a manifest always has the files that manifest describes. Returns the directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = weights_bytes(module)
    full = {k: v for k, v in manifest.items() if k != "onnx"}
    full["format_version"] = FORMAT_VERSION
    full["weights"] = {"file": WEIGHTS_NAME, "sha256": sha256_hex(weights), "bytes": len(weights)}
    full["versions"] = _versions()
    full.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    atomic_write(out / WEIGHTS_NAME, weights)
    if onnx is not None:
        full["onnx"] = onnx.section(full)  # raises if the bundle was exported from other weights or scaler
        full["versions"].update(onnx.versions)
        atomic_write(out / ONNX_NAME, onnx.graph)
        atomic_write(out / REFERENCE_NAME, onnx.reference_bytes)
    write_manifest(out, full)
    return out


def _expected_state(manifest: dict[str, Any], max_bytes: int, directory: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of the manifest's architecture, built on the meta device (nothing allocated; the
    device context is thread-local, so the scheduler thread scoring meanwhile is not affected)."""
    try:
        with torch.device("meta"):
            module = _build(manifest)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"hyperparameters do not build a model: {exc}", "invalid_manifest", directory) from exc
    module_horizon = getattr(module, "horizon", 0)
    if module_horizon != manifest["horizon"]:
        raise ArtifactError(
            f"horizon {manifest['horizon']} differs from the {manifest['kind']} architecture's {module_horizon}",
            "invalid_manifest",
            directory,
        )
    shapes = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    weights_bytes_bound(shapes, max_bytes, directory)
    return shapes


def _build(manifest: dict[str, Any]) -> nn.Module:
    sensors, window, horizon = len(manifest["sensors"]), manifest["window"], manifest["horizon"]
    return build_model(manifest["kind"], sensors, window, horizon, **manifest["hyperparameters"])


def _read_weights(
    manifest: dict[str, Any], directory: Path, expected: dict[str, tuple[int, ...]], max_bytes: int
) -> dict[str, torch.Tensor]:
    data = read_weights_file(manifest, directory, expected, max_bytes)
    arrays = weights_finite(data, manifest["weights"]["file"], directory)  # the ONNX loader's check, the same way
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def read_reference(manifest: dict[str, Any], directory: Path) -> Reference | None:
    """The artifact's stored reference windows (read and checked as the ONNX loader does), None without ONNX."""
    from models.manifest import read_entry_file

    if "onnx" not in manifest:
        return None
    entry = manifest["onnx"]["reference"]
    data = read_entry_file(entry, ".safetensors", "reference file", directory, max_reference_bytes(manifest))
    return decode(data, manifest, directory)


def _check_precision(model: LoadedModel, precision: str, directory: Path) -> LoadedModel:
    """Step 7: ``model`` (fp32) converted to ``precision``, if its scores stay within PRECISION_TOLERANCE of the
    threshold on the reference windows; ArtifactError ``precision`` otherwise."""
    reference = read_reference(model.manifest, directory)
    windows, actual = (
        (reference.windows, reference.actual) if reference is not None else synthetic_reference(model, seed=0)
    )
    reduced = model.with_precision(precision)
    full_scores = precision_scores(model, windows, actual)
    reduced_scores = precision_scores(reduced, windows, actual)
    with np.errstate(invalid="ignore"):
        shift = np.abs(reduced_scores.astype(np.float64) - full_scores) / model.threshold
    same_nan = np.array_equal(np.isnan(full_scores), np.isnan(reduced_scores))
    worst = float(np.nanmax(shift, initial=0.0)) if same_nan else math.inf
    if not same_nan or not np.isfinite(worst) or worst > PRECISION_TOLERANCE:
        raise ArtifactError(
            f"precision {precision} is refused for this model: on {len(windows)} reference windows its scores "
            f"differ from fp32's by up to {worst:.2%} of the threshold (tolerance {PRECISION_TOLERANCE:.0%}); "
            "serve it in fp32",
            "precision",
            directory,
        )
    return reduced


def precision_scores(model: LoadedModel, windows: np.ndarray, actual: np.ndarray | None) -> np.ndarray:
    """The scores the threshold applies to, on reference windows: a detector's, or a forecaster's one-step residual
    score against the row after each window."""
    result = model.infer(windows)
    if model.role == "detector":
        assert result.scores is not None
        return result.scores
    assert result.forecasts is not None and actual is not None
    return model.residual_score(result.forecasts[:, 0], actual)[0]


def load_artifact(
    path: str | Path,
    device: str | torch.device = "cpu",
    expected_sensors: Sequence[str] | None = None,
    max_weights_bytes: int = MAX_WEIGHTS_BYTES,
    precision: str = "fp32",
) -> LoadedModel:
    """Load and verify an artifact directory (or its manifest.json) onto ``device``; see the module docstring."""
    directory = Path(path)
    if directory.name == MANIFEST_NAME:
        directory = directory.parent
    target = resolve_device(device)  # a bad device or precision is the caller's error, not the artifact's
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    try:
        return _load(directory, target, expected_sensors, max_weights_bytes, precision)
    except ArtifactError:
        raise
    except Exception as exc:  # nothing an artifact holds may escape as anything but an ArtifactError
        raise ArtifactError(f"unexpected {type(exc).__name__} while loading: {exc}", "corrupt", directory) from exc


def _load(
    directory: Path,
    device: torch.device,
    expected_sensors: Sequence[str] | None,
    max_weights_bytes: int,
    precision: str,
) -> LoadedModel:
    manifest, scaler = load_checked_manifest(directory, expected_sensors)
    if not KINDS[manifest["kind"]].network:
        raise ArtifactError(
            f"kind {manifest['kind']!r} has no network for torch to load: models.serving.load_for_serving serves it "
            "(numpy, models/pca_artifact.py)",
            "invalid_manifest",
            directory,
        )
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
    probe(model, directory)
    if precision != "fp32":
        model = _check_precision(model, precision, directory)
    return model
