"""Serving on the CPU without torch: an artifact's ONNX graph in ONNX Runtime, behind LoadedModel's interface.

API:
    load_onnx_artifact(path, expected_sensors=None, max_weights_bytes=MAX_WEIGHTS_BYTES, cpu_threads=1) -> OnnxModel
    OnnxModel.from_bytes(graph, manifest, scaler, cpu_threads=1)   # an in-memory graph (the export's verification)
    model.infer(windows [B, W, S]) -> InferenceResult; model.residual_score(forecast, actual); model.to("cpu")
    has_onnx(manifest) -> bool

Imports numpy, safetensors.numpy and onnxruntime, never torch (``import torch`` is 192 MiB of a service's memory;
``onnxruntime`` about 20 MiB). ONNX Runtime releases the GIL for the whole graph in ``session.run``, where torch's
eager path hands the GIL back and forth dozens of times a batch.

``OnnxModel`` meets the model contract (models.model_api.ScoringModel; ModelBase, the manifest's view, plus
``device`` ("cpu"), ``precision`` ("fp32"), ``infer`` and ``to``). ``infer``: the batch padded as LoadedModel pads
it (models.model_api.padded_infer); when every value of the batch is finite, one ``session.run`` and one mean;
otherwise the window is filled first (models.preprocessing.fill_windows), a sensor without any value set to 0 for
the graph and its outputs NaN after it, exactly as LoadedModel.infer.
``to(device)``: the CPU is this model; any other device is a ValueError (load the artifact for CUDA with
models.serving.load_for_serving, which uses torch there), so that no torch import hides in a move.

``load_onnx_artifact`` refuses with an ArtifactError, in order (steps 1-5 are the torch loader's, without torch:
models/manifest.py):

1-3. the manifest (bounded, valid, every size within LIMITS), the expected sensors, the scaler;
4-5. the weights file against the architecture's tensor shapes (models.kinds.tensor_shapes): name, regular file
     inside the directory, size, sha256, header, every value finite (the ONNX graph holds copies of these weights:
     a weights file that is refused means an artifact that is refused, whichever runtime would serve it);
6. the manifest's ``onnx`` section: there (else ``missing``: the caller, models/serving.py, decides beforehand
   whether an artifact without one goes to torch), and ``exported_from`` equal to the manifest's weights sha256,
   scaler and score steps (``onnx_mismatch``: a manifest edited after the export no longer matches its graph);
7. ``model.onnx``: a plain ``*.onnx`` name, a regular file inside the directory, at most ``max_onnx_bytes`` (twice
   the weights the architecture has plus room for the graph, decided from its size before it is read), its sha256
   the manifest's; ONNX Runtime builds a session from the bytes (CPUExecutionProvider, ``cpu_threads`` intra-op
   threads, no spinning; external data refused by ONNX Runtime for a graph loaded from bytes) (``corrupt``);
8. the graph's one input ``windows`` float [batch, W, S] and its outputs (names, float, [batch, S] /
   [batch, H, S] / [batch, W]) against the manifest, the batch dynamic (``shape_mismatch``);
9. ``reference.safetensors``: plain name, regular file, bounded by the manifest's shapes, sha256, a header naming
   exactly the expected float32 tensors;
10. the probe (models.reference.probe: finite outputs at the training mean, ``non_finite``);
11. the reference windows: ONNX Runtime's outputs finite wherever a sensor has values, a forecaster's residual
    scores against the stored next rows too (``non_finite``), and within the manifest's tolerance of torch's
    stored outputs, NaN at the same places (``onnx_mismatch``).

Any other exception inside becomes an ArtifactError (``corrupt``), so a caller that catches ArtifactError survives
any artifact.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.artifact_io import ArtifactError
from models.device import ServingDevice, is_cpu
from models.manifest import (
    MANIFEST_NAME,
    MAX_WEIGHTS_BYTES,
    expected_weight_shapes,
    exported_from,
    graph_outputs,
    load_checked_manifest,
    read_entry_file,
    read_weights_file,
    weights_finite,
)
from models.model_api import F32, InferenceResult, ModelBase, detector_result, forecaster_result, padded_infer
from models.preprocessing import Scaler, fill_windows
from models.reference import compare, decode, max_reference_bytes, outputs_of, probe, reference_finite

__all__ = ["MAX_CHUNK", "OnnxModel", "has_onnx", "load_onnx_artifact", "max_onnx_bytes"]

# Windows per session.run: bounds the graph's activations when a caller hands over a huge batch (as LoadedModel).
MAX_CHUNK = 4096
# Room for the graph beside its initializers: node and value names, seq2seq's unrolled decoding steps.
GRAPH_BYTES = 1024 * 1024
GRAPH_BYTES_PER_STEP = 16 * 1024


def has_onnx(manifest: dict[str, Any]) -> bool:
    """Whether the manifest names an ONNX graph (artifacts exported before the graph existed do not)."""
    return "onnx" in manifest


def max_onnx_bytes(manifest: dict[str, Any], weight_shapes: dict[str, tuple[int, ...]]) -> int:
    """The largest model.onnx accepted: the weights twice over (the exporter may keep a reordered copy of a
    recurrent layer's weights) plus room for the graph's structure."""
    weights = 4 * sum(int(np.prod(shape)) for shape in weight_shapes.values())
    return 2 * weights + GRAPH_BYTES + GRAPH_BYTES_PER_STEP * int(manifest["horizon"])


def _session(graph: bytes, cpu_threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(int(cpu_threads), 0)  # 0: ONNX Runtime's default (one per core)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads spinning for work would take CPU from ingest and the broker on shared cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No memory arena and no memory pattern: both keep the largest batch's buffers for good. Two seed-size models
    # scoring 256-window batches held 86 MiB more with them than at load, 40 MiB without, at about the same speed
    # (2-core box, 2026-12-02; the service's PSS target is 200 MiB at 1,000 units).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    # Every failure reaches the caller as an exception (an ArtifactError naming the artifact); ONNX Runtime's own
    # log lines on stderr would only repeat it without the path.
    options.log_severity_level = 4
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


class OnnxModel(ModelBase):
    """A model served by ONNX Runtime on the CPU; build it with ``load_onnx_artifact``."""

    device = "cpu"
    precision = "fp32"

    def __init__(self, session: Any, manifest: dict[str, Any], scaler: Scaler, cpu_threads: int = 1) -> None:
        super().__init__(manifest, scaler)
        self._session = session
        self._outputs = list(graph_outputs(manifest))
        self.cpu_threads = cpu_threads

    @classmethod
    def from_bytes(cls, graph: bytes, manifest: dict[str, Any], scaler: Scaler, cpu_threads: int = 1) -> OnnxModel:
        """A model from a graph in memory (not verified: load_onnx_artifact is the loader)."""
        return cls(_session(graph, cpu_threads), manifest, scaler, cpu_threads)

    def __repr__(self) -> str:
        return (
            f"OnnxModel(name={self.name!r}, kind={self.kind!r}, sensors={len(self.sensors)}, "
            f"window={self.window}, horizon={self.horizon}, device=cpu, threads={self.cpu_threads})"
        )

    def to(self, device: ServingDevice) -> OnnxModel:
        """This model for the CPU; any other device is a ValueError (see the module docstring)."""
        if is_cpu(device):
            return self
        raise ValueError(
            f"model {self.name!r} is served by ONNX Runtime on the CPU; for {device} load its artifact with "
            "models.serving.load_for_serving(path, device) (the torch path)"
        )

    def _run(self, windows: F32) -> list[F32]:
        feed = np.ascontiguousarray(windows, dtype=np.float32)
        if feed.shape[0] <= MAX_CHUNK:
            outputs: list[F32] = self._session.run(self._outputs, {"windows": feed})
            return outputs
        parts = [
            self._session.run(self._outputs, {"windows": feed[start : start + MAX_CHUNK]})
            for start in range(0, feed.shape[0], MAX_CHUNK)
        ]
        return [np.concatenate([part[i] for part in parts]) for i in range(len(self._outputs))]

    def _empty(self) -> list[F32]:
        s, h, w = len(self.sensors), self.horizon, self.window
        shapes = {"sensor_errors": (0, s), "forecasts": (0, h, s), "attention": (0, w)}
        return [np.zeros(shapes[name], np.float32) for name in self._outputs]

    def infer(self, windows: npt.ArrayLike) -> InferenceResult:
        """Score raw windows [B, W, S] (float32, raw units, rows oldest -> newest, sensors in ``sensors`` order),
        at a padded batch size as LoadedModel (models.model_api.padded_infer)."""
        return padded_infer(self._infer, self.check_windows(windows))

    def _infer(self, raw: F32) -> InferenceResult:
        missing: npt.NDArray[np.bool_] | None = None
        if raw.shape[0] == 0:
            outputs = self._empty()
        elif np.isfinite(raw).all():  # the fast path: nothing to fill, nothing to mark
            outputs = self._run(raw)
        else:
            filled = fill_windows(raw)
            absent = np.asarray(~np.isfinite(filled).all(axis=1), dtype=bool)  # [B, S] no value in the window
            outputs = self._run(np.nan_to_num(filled, nan=0.0))
            missing = absent if absent.any() else None
        if self.role == "detector":
            return detector_result(outputs[0], missing)
        return forecaster_result(outputs[0], outputs[1] if self.has_attention else None, missing)


def _expected_io(manifest: dict[str, Any]) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]]]:
    w, s, h = int(manifest["window"]), len(manifest["sensors"]), int(manifest["horizon"])
    shapes = {"sensor_errors": (s,), "forecasts": (h, s), "attention": (w,)}
    return (w, s), {name: shapes[name] for name in graph_outputs(manifest)}


def _check_graph(session: Any, manifest: dict[str, Any], directory: Path) -> None:
    """Step 8: the graph's input and outputs against the manifest."""
    input_shape, output_shapes = _expected_io(manifest)

    def describe(args: Sequence[Any]) -> list[tuple[str, str, list[Any]]]:
        return [(arg.name, arg.type, list(arg.shape)) for arg in args]

    def fits(arg: Any, name: str, tail: tuple[int, ...]) -> bool:
        shape = list(arg.shape)
        dynamic = len(shape) > 0 and not isinstance(shape[0], int)  # a named (or unnamed) batch dimension
        return bool(arg.name == name and arg.type == "tensor(float)" and dynamic and tuple(shape[1:]) == tail)

    inputs, outputs = session.get_inputs(), session.get_outputs()
    wanted_outputs = list(output_shapes)
    ok = len(inputs) == 1 and fits(inputs[0], "windows", input_shape)
    ok = ok and [o.name for o in outputs] == wanted_outputs
    ok = ok and all(fits(o, o.name, output_shapes[o.name]) for o in outputs)
    if not ok:
        expected = [("windows", "tensor(float)", ["batch", *input_shape])]
        raise ArtifactError(
            f"the ONNX graph does not fit the manifest: inputs {describe(inputs)}, outputs {describe(outputs)}; "
            f"expected inputs {expected}, outputs "
            f"{[(n, 'tensor(float)', ['batch', *shape]) for n, shape in output_shapes.items()]}",
            "shape_mismatch",
            directory,
        )


def _check_reference(model: OnnxModel, manifest: dict[str, Any], directory: Path) -> None:
    """Steps 9 and 11: ONNX Runtime scores the stored reference windows as torch did, within the tolerance."""
    section = manifest["onnx"]
    data = read_entry_file(
        section["reference"], ".safetensors", "reference file", directory, max_reference_bytes(manifest)
    )
    reference = decode(data, manifest, directory)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow is judged below
        got = outputs_of(model, model.infer(reference.windows))
    if not reference_finite(model, reference.windows, got, reference.actual):
        raise ArtifactError(
            f"the ONNX graph scores its {len(reference.windows)} reference windows as NaN or inf where every sensor "
            "has a value (weights or scaler that overflow on real data)",
            "non_finite",
            directory,
        )
    _, problem = compare(got, reference.outputs, section["tolerance"])
    if problem is not None:
        raise ArtifactError(
            f"the ONNX graph does not score its reference windows as torch did at export ({problem})",
            "onnx_mismatch",
            directory,
        )


def load_onnx_artifact(
    path: str | Path,
    expected_sensors: Sequence[str] | None = None,
    max_weights_bytes: int = MAX_WEIGHTS_BYTES,
    cpu_threads: int = 1,
) -> OnnxModel:
    """Load and verify an artifact directory (or its manifest.json) with its ONNX graph; see the module docstring."""
    directory = Path(path)
    if directory.name == MANIFEST_NAME:
        directory = directory.parent
    try:
        return _load(directory, expected_sensors, max_weights_bytes, cpu_threads)
    except ArtifactError:
        raise
    except Exception as exc:  # nothing an artifact holds may escape as anything but an ArtifactError
        raise ArtifactError(f"unexpected {type(exc).__name__} while loading: {exc}", "corrupt", directory) from exc


def _load(
    directory: Path, expected_sensors: Sequence[str] | None, max_weights_bytes: int, cpu_threads: int
) -> OnnxModel:
    manifest, scaler = load_checked_manifest(directory, expected_sensors)
    shapes = expected_weight_shapes(manifest, max_weights_bytes, directory)
    weights = read_weights_file(manifest, directory, shapes, max_weights_bytes)
    weights_finite(weights, manifest["weights"]["file"], directory)
    del weights
    if not has_onnx(manifest):
        raise ArtifactError(
            "the manifest names no ONNX graph (an artifact from before the export: `plantwatch export-onnx DIR` "
            "adds it)",
            "missing",
            directory,
        )
    section = manifest["onnx"]
    if section["exported_from"] != exported_from(manifest):
        differs = sorted(k for k, v in exported_from(manifest).items() if section["exported_from"].get(k) != v)
        raise ArtifactError(
            f"model.onnx was exported from another {', '.join(differs) or 'model'} than the manifest names "
            "(re-export it: `plantwatch export-onnx DIR`)",
            "onnx_mismatch",
            directory,
        )
    graph = read_entry_file(section, ".onnx", "ONNX graph", directory, max_onnx_bytes(manifest, shapes))
    try:
        session = _session(graph, cpu_threads)
    except Exception as exc:  # onnxruntime's own error types (InvalidProtobuf, Fail, ...)
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ArtifactError(f"ONNX Runtime cannot build the graph: {message}", "corrupt", directory) from exc
    del graph
    _check_graph(session, manifest, directory)
    model = OnnxModel(session, manifest, scaler, cpu_threads)
    probe(model, directory)
    _check_reference(model, manifest, directory)
    return model
