"""Choosing the runtime that serves an artifact: ONNX Runtime on the CPU (no torch), torch on CUDA, numpy for the pca.

API:
    load_for_serving(path, device="cpu", expected_sensors=None, precision="fp32", cpu_threads=1,
                     max_weights_bytes=MAX_WEIGHTS_BYTES) -> ScoringModel
    ScoringModel          # the model contract every runtime meets (models.model_api; what the ScoringEngine uses)
    serving_device(choice)  # models.device: "cpu" without torch, or a CUDA torch.device

The choice, per artifact:

- a kind that is no network (``pca``, models.kinds.KINDS[kind].network False): models.pca_artifact's loader, a
  PcaDetector scored with numpy on the CPU whatever the device and precision (float64 arithmetic on a few
  components: nothing a GPU or a lower precision would speed up); no torch, no ONNX Runtime;
- on the CPU, an artifact with an ONNX graph: models.onnx_model.load_onnx_artifact, an OnnxModel; torch is not
  imported (``python -c 'import models.serving'`` and a load leave it out of ``sys.modules``);
- on the CPU, an artifact without one (written before the export existed): the torch LoadedModel
  (models.artifacts.load_artifact), with one WARNING per load saying how to upgrade it (``plantwatch export-onnx
  DIR``); torch is imported then;
- on CUDA: the torch LoadedModel, in ``precision`` (fp32 | fp16 | bf16, checked against fp32 on the reference
  windows by load_artifact). torch stays the CUDA path; the graph is not used there.

A precision other than fp32 on the CPU is a ValueError: ONNX Runtime scores the fp32 graph (the service refuses
it at preflight, monitor/startup.py). Every refusal of the artifact itself is an ArtifactError, as from either loader.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.artifact_io import ArtifactError
from models.device import ServingDevice, is_cpu, serving_device
from models.kinds import KINDS
from models.manifest import MANIFEST_NAME, MAX_WEIGHTS_BYTES
from models.manifest_files import read_manifest
from models.model_api import ScoringModel
from models.onnx_model import has_onnx, load_onnx_artifact
from models.pca_artifact import load_pca_artifact

if TYPE_CHECKING:
    from models.inference import LoadedModel
    from models.onnx_model import OnnxModel
    from models.pca import PcaDetector

__all__ = ["ScoringModel", "load_for_serving", "serving_device"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The artifact's manifest, read as the loaders read it (the loader chosen checks it again, in full)."""
    if not directory.is_dir():
        raise ArtifactError("directory does not exist", "missing", directory)
    try:
        return read_manifest(directory)
    except ArtifactError:
        raise
    except Exception as exc:  # as in the loaders: nothing an artifact holds escapes as anything else
        raise ArtifactError(f"unexpected {type(exc).__name__} while loading: {exc}", "corrupt", directory) from exc


def _is_network(manifest: dict[str, Any]) -> bool:
    """Whether the manifest's kind is a network; an unknown or mistyped kind goes to the loader that refuses it."""
    kind = manifest.get("kind")
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    return spec is None or spec.network


def load_for_serving(
    path: str | Path,
    device: ServingDevice = "cpu",
    expected_sensors: Sequence[str] | None = None,
    precision: str = "fp32",
    cpu_threads: int = 1,
    max_weights_bytes: int = MAX_WEIGHTS_BYTES,
) -> ScoringModel:
    """The artifact at ``path`` loaded by the runtime that serves it on ``device``; see the module docstring.

    ValueError for a bad device or precision (the caller's), ArtifactError for anything the artifact holds.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    target = serving_device(device)
    if is_cpu(target) and precision != "fp32":
        raise ValueError(
            f"precision {precision} applies on CUDA only: on the CPU ONNX Runtime scores the fp32 graph (set fp32)"
        )
    directory = Path(path)
    if directory.name == MANIFEST_NAME:
        directory = directory.parent
    manifest = _read_manifest(directory)
    if not _is_network(manifest):
        pca: PcaDetector = load_pca_artifact(directory, expected_sensors, max_weights_bytes)
        return pca
    if not is_cpu(target):
        from models.artifacts import load_artifact

        cuda: LoadedModel = load_artifact(directory, target, expected_sensors, max_weights_bytes, precision)
        return cuda
    if has_onnx(manifest):
        onnx: OnnxModel = load_onnx_artifact(directory, expected_sensors, max_weights_bytes, cpu_threads)
        return onnx
    from models.artifacts import load_artifact

    model: LoadedModel = load_artifact(directory, "cpu", expected_sensors, max_weights_bytes)
    log.warning(
        "model artifact %s has no ONNX graph: it is scored by torch on the CPU (torch's memory, and a scorer that "
        "shares the GIL with the service's threads); add the graph with `plantwatch export-onnx %s`",
        directory,
        directory,
    )
    return model
