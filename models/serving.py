"""Choosing the runtime that serves an artifact: ONNX Runtime on the CPU (no torch), torch on CUDA.

API:
    load_for_serving(path, device="cpu", expected_sensors=None, precision="fp32", cpu_threads=1,
                     max_weights_bytes=MAX_WEIGHTS_BYTES) -> ServingModel
    ServingModel          # the interface both runtimes have (a typing Protocol; what the ScoringEngine uses)
    serving_device(choice)  # models.device: "cpu" without torch, or a CUDA torch.device

The choice, per artifact:

- on the CPU, an artifact with an ONNX graph: models.onnx_model.load_onnx_artifact, an OnnxModel; torch is not
  imported (``python -c 'import models.serving'`` and a load leave it out of ``sys.modules``);
- on the CPU, an artifact without one (written before the export existed): the torch LoadedModel
  (models.artifacts.load_artifact), with one WARNING per load saying how to upgrade it (``plantwatch export-onnx
  DIR``); torch is imported then;
- on CUDA: the torch LoadedModel, in ``precision`` (fp32 | fp16 | bf16, checked against fp32 on the reference
  windows by load_artifact). torch stays the CUDA path; the graph is not used there.

A precision other than fp32 on the CPU is a ValueError: ONNX Runtime scores the fp32 graph (the service refuses
it at preflight, monitor/app.py). Every refusal of the artifact itself is an ArtifactError, as from either loader.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy.typing as npt

from models.artifact_io import ArtifactError
from models.device import ServingDevice, is_cpu, serving_device
from models.manifest import MANIFEST_NAME, MAX_WEIGHTS_BYTES, read_manifest
from models.model_api import F32, InferenceResult
from models.onnx_model import has_onnx, load_onnx_artifact
from models.preprocessing import Scaler

if TYPE_CHECKING:
    from models.inference import LoadedModel
    from models.onnx_model import OnnxModel

__all__ = ["ServingModel", "load_for_serving", "serving_device"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")


class ServingModel(Protocol):
    """What the service uses of a loaded model, whichever runtime serves it (LoadedModel, OnnxModel)."""

    name: str
    kind: str
    role: str
    sensors: tuple[str, ...]
    window: int
    horizon: int
    period_s: float
    score_steps: int
    threshold: float
    threshold_method: str
    has_attention: bool
    manifest: dict[str, Any]
    scaler: Scaler
    precision: str

    @property
    def device(self) -> Any: ...

    @property
    def calibration(self) -> dict[str, Any]: ...

    @property
    def resolve_level(self) -> float: ...

    @property
    def critical_level(self) -> float: ...

    @property
    def envelope(self) -> dict[str, Any] | None: ...

    def infer(self, windows: npt.ArrayLike) -> InferenceResult: ...

    def residual_score(self, forecast: npt.ArrayLike, actual: npt.ArrayLike) -> tuple[F32, F32]: ...

    def to(self, device: Any) -> ServingModel: ...


def _has_onnx(directory: Path) -> bool:
    """Whether the artifact's manifest names an ONNX graph (the manifest read as the loaders read it)."""
    if not directory.is_dir():
        raise ArtifactError("directory does not exist", "missing", directory)
    try:
        return has_onnx(read_manifest(directory))
    except ArtifactError:
        raise
    except Exception as exc:  # as in the loaders: nothing an artifact holds escapes as anything else
        raise ArtifactError(f"unexpected {type(exc).__name__} while loading: {exc}", "corrupt", directory) from exc


def load_for_serving(
    path: str | Path,
    device: ServingDevice = "cpu",
    expected_sensors: Sequence[str] | None = None,
    precision: str = "fp32",
    cpu_threads: int = 1,
    max_weights_bytes: int = MAX_WEIGHTS_BYTES,
) -> ServingModel:
    """The artifact at ``path`` loaded by the runtime that serves it on ``device``; see the module docstring.

    ValueError for a bad device or precision (the caller's), ArtifactError for anything the artifact holds.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    target = serving_device(device)
    directory = Path(path)
    if directory.name == MANIFEST_NAME:
        directory = directory.parent
    if not is_cpu(target):
        from models.artifacts import load_artifact

        cuda: LoadedModel = load_artifact(directory, target, expected_sensors, max_weights_bytes, precision)
        return cuda
    if precision != "fp32":
        raise ValueError(
            f"precision {precision} applies on CUDA only: on the CPU ONNX Runtime scores the fp32 graph (set fp32)"
        )
    if _has_onnx(directory):
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
