"""The ``pca`` kind's artifact, without torch: writing it, and loading it as a PcaDetector scored with numpy.

API:
    save_pca_artifact(out_dir, detector) -> Path
    load_pca_artifact(path, expected_sensors=None, max_weights_bytes=MAX_WEIGHTS_BYTES) -> PcaDetector

Layout, as every kind's (models/artifacts.py) but for the ONNX files: ``manifest.json`` (format_version, name,
kind "pca", role "detector", hyperparameters ``{"n_components": K}``, sensors, period_s, window, horizon 0, the
scaler (the standardization the statistics are computed on: the fitting rows' mean and scale), score (kind
``pca_t2_q``, steps, variance, limit_quantile, ``t2_limit``, ``q_limit``), threshold (the calibration record),
envelope, training, weights (file, sha256, bytes), versions, created) and ``weights.safetensors`` (``components``
[K, S] and ``eigenvalues`` [K], float64: the fit's own precision, so a loaded detector scores exactly as the
fitted one). No model.onnx: numpy is the one runtime, on any device.

``load_pca_artifact`` runs the checks every loader runs (models/manifest.py, steps 1-5: the bounded manifest and
every field within LIMITS, the expected sensors, the scaler; the weights file's name, size, sha256 and header
against the shapes models.kinds.tensor_shapes gives for K, every value finite), then the kind's own: the score
section (kind ``pca_t2_q``, limits finite and > 0, no drift adaptation: ``adapt_rows`` is per-unit state that a
served model shared between units must not have), and the probe (models.reference.probe: finite scores at the
training mean; an eigenvalue of 0 fails it). Every refusal is an ArtifactError; any other exception inside becomes
one (``corrupt``), as from the other loaders.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact_io import ArtifactError, atomic_write, library_versions, write_manifest
from models.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_WEIGHTS_BYTES,
    WEIGHTS_NAME,
    expected_weight_shapes,
    load_checked_manifest,
    read_weights_file,
    sha256_hex,
    weights_finite,
)
from models.pca import SCORE_KIND, PcaDetector
from models.reference import probe

__all__ = ["load_pca_artifact", "save_pca_artifact"]


def _versions() -> dict[str, str]:
    try:
        sklearn = version("scikit-learn")  # what fitted the components
    except PackageNotFoundError:
        sklearn = "unknown"
    return {**library_versions(), "scikit-learn": sklearn}


def save_pca_artifact(out_dir: str | Path, detector: PcaDetector) -> Path:
    """Write ``detector`` (fitted and calibrated) to ``out_dir``: the weights first, the manifest last, each
    atomically, so a directory with a manifest always has the weights it describes. Returns the directory."""
    from safetensors.numpy import save

    if detector.adapt_rows:
        raise ValueError("a drift-adapting PCA (adapt_rows > 0) keeps per-unit state: it is not saved as an artifact")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = save(
        {
            "components": np.ascontiguousarray(detector.components, dtype=np.float64),
            "eigenvalues": np.ascontiguousarray(detector.eigenvalues, dtype=np.float64),
        }
    )
    full = {k: v for k, v in detector.manifest.items() if k != "onnx"}
    full["format_version"] = FORMAT_VERSION
    full["weights"] = {"file": WEIGHTS_NAME, "sha256": sha256_hex(weights), "bytes": len(weights)}
    full["versions"] = _versions()
    full.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    atomic_write(out / WEIGHTS_NAME, weights)
    write_manifest(out, full)
    return out


def load_pca_artifact(
    path: str | Path, expected_sensors: Sequence[str] | None = None, max_weights_bytes: int = MAX_WEIGHTS_BYTES
) -> PcaDetector:
    """Load and verify a pca artifact directory (or its manifest.json); see the module docstring."""
    directory = Path(path)
    if directory.name == MANIFEST_NAME:
        directory = directory.parent
    try:
        return _load(directory, expected_sensors, max_weights_bytes)
    except ArtifactError:
        raise
    except Exception as exc:  # nothing an artifact holds may escape as anything but an ArtifactError
        raise ArtifactError(f"unexpected {type(exc).__name__} while loading: {exc}", "corrupt", directory) from exc


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_score(score: dict[str, Any], directory: Path) -> None:
    if score.get("kind") != SCORE_KIND:
        raise ArtifactError(f"score.kind must be {SCORE_KIND!r} for a pca", "invalid_manifest", directory)
    for key in ("t2_limit", "q_limit"):
        if not _positive(score.get(key)):
            raise ArtifactError(f"score.{key} must be a finite number > 0", "invalid_manifest", directory)
    if score.get("adapt_rows", 0) != 0:
        raise ArtifactError(
            "score.adapt_rows must be 0: a drift-adapting PCA keeps per-unit state and is not served",
            "invalid_manifest",
            directory,
        )


def _load(directory: Path, expected_sensors: Sequence[str] | None, max_weights_bytes: int) -> PcaDetector:
    manifest, scaler = load_checked_manifest(directory, expected_sensors)
    if manifest["kind"] != "pca":
        raise ArtifactError(f"kind {manifest['kind']!r} is not a pca", "invalid_manifest", directory)
    _check_score(manifest.get("score", {}), directory)
    shapes = expected_weight_shapes(manifest, max_weights_bytes, directory)
    data = read_weights_file(manifest, directory, shapes, max_weights_bytes)
    arrays = weights_finite(data, manifest["weights"]["file"], directory)
    model = PcaDetector(manifest, scaler, arrays["components"], arrays["eigenvalues"])
    probe(model, directory)
    return model
