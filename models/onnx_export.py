"""The serving graph: a trained torch model exported to ONNX with its scaler and score folded in, verified against
torch eager before it is written (torch; the graph is then run without torch by models/onnx_model.py).

API:
    export_onnx(model, windows, actual, source) -> OnnxBundle   # export + verification; OnnxExportError if over
    export_graph(model) -> bytes                                # the graph alone, unverified (the hostile corpus)
    upgrade_artifact(path) -> str                               # `plantwatch export-onnx`: an old artifact's graph
    OnnxBundle.section(manifest) -> the manifest's "onnx" section; .graph, .reference_bytes: the two files
    TOLERANCE                                                   # per output: {"abs", "rel"}, see below
    OnnxExportError (a ValueError)

One graph per model, so a CPU batch is one ``session.run`` (models/onnx_model.py adds at most the missing-value
fill before it and the NaN marks after it):

- input ``windows`` [B, W, S] float32, raw units, after models.preprocessing.fill_windows with the NaN left
  where a sensor has no value at all set to 0 (as LoadedModel.infer does), B dynamic;
- the scaler folded in as constants: scaled = (windows - offset) / scale;
- detectors: output ``sensor_errors`` [B, S], the mean squared scaled reconstruction error over the newest
  ``score_steps`` rows (LoadedModel's per-sensor error);
- forecasters: output ``forecasts`` [B, H, S] in raw units (pred * scale + offset); attention_lstm also
  ``attention`` [B, W].

Exporter: ``torch.onnx.export(..., dynamo=False, opset_version=17)``, the TorchScript tracer. Why not the dynamo
exporter: it needs ``onnxscript`` (another dependency, not installed here), and these modules have no
data-dependent control flow for it to capture (seq2seq's decoding loop runs a fixed ``horizon`` times and traces
unrolled); the tracer writes torch's nn.LSTM / nn.GRU / nn.RNN as ONNX's LSTM / GRU / RNN ops, which ONNX Runtime
runs as single kernels. torch 2.13 warns that the tracer is deprecated: the warning is silenced here, and the day
it goes away this is the one function to move to ``dynamo=True``.

Verification: torch eager (fp32, CPU) and ONNX Runtime score the same reference windows (models/reference.py:
real windows from the calibration part, or synthetic ones, with missing values); every output must agree within
``TOLERANCE`` (``abs + rel * |torch|``) and torch's outputs must be finite where no sensor is missing, else
OnnxExportError and nothing is written. The manifest records the tolerance and the largest difference measured.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.inference import LoadedModel
from models.manifest import REFERENCE_NAME, exported_from, graph_outputs, sha256_hex
from models.model_api import F32
from models.reference import Reference, compare, encode, outputs_of, reference_finite

OPSET = 17
EXPORTER = "torch.onnx.export, TorchScript tracer (dynamo=False)"

# Per output, |onnxruntime - torch| <= abs + rel * |torch|, both float32 on the CPU. Measured on every kind
# (benchmarks/onnx_serving.py at the seed's sizes, window 50, and tests/models/test_onnx.py on the tiny test models,
# clean windows and windows with missing values, batches of 1 to 300): scaled sensor errors differ by at most
# 1.9e-6 absolute (7e-7 relative), forecasts by at most 2e-7 relative (3.1e-5 absolute on values of order 100),
# attention weights by at most 1.5e-8 absolute: float32 rounding where ONNX Runtime's kernels sum in another order
# (an ulp is 6e-8 relative). The tolerances sit 5x (scaled errors, absolute) to 50x (forecasts, relative) above the
# worst seen, for other CPUs and ONNX Runtime versions, and far below what a wrong graph gives: weights scaled by
# 1.5 or reference outputs moved by 1 % are refused (models/hostile.py). Scaled errors are judged absolutely (near 0
# on normal data, thresholds of order 1e-2 to 1), forecasts relatively (raw units: 350 K and 5 bar in one window).
TOLERANCE: dict[str, dict[str, float]] = {
    "sensor_errors": {"abs": 1e-5, "rel": 1e-4},
    "forecasts": {"abs": 1e-5, "rel": 1e-5},
    "attention": {"abs": 1e-5, "rel": 1e-4},
}


class OnnxExportError(ValueError):
    """The exported graph does not score like the torch model (or the torch model's reference outputs are bad)."""


class ServingGraph(nn.Module):
    """The module that is exported: scaler, network and score of one model (see the module docstring)."""

    def __init__(self, model: LoadedModel) -> None:
        super().__init__()
        self.network = copy.deepcopy(model.module).to("cpu", torch.float32).eval()
        self.offset: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("offset", torch.tensor(model.scaler.offset, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(model.scaler.scale, dtype=torch.float32))
        self.detector = model.role == "detector"
        self.attention = model.has_attention
        self.first_scored_row = model.window - model.score_steps

    def forward(self, windows: torch.Tensor) -> Any:
        scaled = (windows - self.offset) / self.scale
        if self.detector:
            recon = self.network(scaled)
            diff = recon[:, self.first_scored_row :] - scaled[:, self.first_scored_row :]
            return (diff * diff).mean(dim=1)  # [B, S]
        if self.attention:
            pred, weights = self.network.forward_with_attention(scaled)  # type: ignore[operator]
            return pred * self.scale + self.offset, weights  # [B, 1, S], [B, W]
        return self.network(scaled) * self.scale + self.offset  # [B, H, S]


def export_graph(model: LoadedModel) -> bytes:
    """``model``'s serving graph as ONNX bytes (not verified: export_onnx is what training calls)."""
    graph = ServingGraph(model).eval()
    outputs = list(graph_outputs(model.manifest))
    example = torch.zeros(2, model.window, len(model.sensors), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # What the tracer says on every export of these modules, none of it about them: its deprecation notices
        # (see the module docstring); nn.RNN's input-size checks compared as Python booleans (the sizes are fixed
        # by the manifest, only the batch varies); and its note that recurrent ops traced at a batch of 2 may not
        # run at other sizes: the graphs take no initial state, and every export is verified on a batch of
        # reference windows of another size (tests run batches of 1 to 300).
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        tracer_warning = torch.jit.TracerWarning  # type: ignore[attr-defined]  # public, not in the stub's exports
        warnings.filterwarnings("ignore", category=tracer_warning, module=r"torch\.nn\.modules\.rnn")
        warnings.filterwarnings("ignore", message=".*batch_size other than 1", category=UserWarning)
        torch.onnx.export(
            graph,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object works (and is documented); the stub says paths only
            dynamo=False,
            opset_version=OPSET,
            input_names=["windows"],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in ["windows", *outputs]},
        )
    return buffer.getvalue()


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


@dataclass(frozen=True)
class OnnxBundle:
    """An exported, verified graph and its reference: the files and the manifest section save_artifact writes."""

    graph: bytes
    reference: Reference
    reference_bytes: bytes
    source: str  # where the reference windows come from: "calibration" | "synthetic"
    exported_from: dict[str, Any]
    max_diff: dict[str, dict[str, float]]
    tolerance: dict[str, dict[str, float]]
    seconds: float
    versions: dict[str, str] = field(default_factory=_versions)

    def section(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The manifest's "onnx" section; ValueError if ``manifest`` (weights, scaler, score steps) is not what
        the graph was exported from."""
        if exported_from(manifest) != self.exported_from:
            raise ValueError(
                f"the ONNX graph was exported from {self.exported_from}, the manifest describes "
                f"{exported_from(manifest)}"
            )
        return {
            "file": "model.onnx",
            "sha256": sha256_hex(self.graph),
            "bytes": len(self.graph),
            "opset": OPSET,
            "exporter": f"{EXPORTER}, torch {torch.__version__}",
            "exported_from": self.exported_from,
            "inputs": {"windows": ["batch", int(manifest["window"]), len(manifest["sensors"])]},
            "outputs": {name: ["batch", *array.shape[1:]] for name, array in self.reference.outputs.items()},
            "reference": {
                "file": REFERENCE_NAME,
                "sha256": sha256_hex(self.reference_bytes),
                "bytes": len(self.reference_bytes),
                "windows": int(self.reference.windows.shape[0]),
                "missing_windows": int((~np.isfinite(self.reference.windows)).any(axis=(1, 2)).sum()),
                "source": self.source,
            },
            "tolerance": self.tolerance,
            "max_diff": self.max_diff,
            "seconds": round(self.seconds, 3),
        }


def export_onnx(model: LoadedModel, windows: F32, actual: F32 | None, source: str) -> OnnxBundle:
    """Export ``model`` (its manifest need not have its weights entry yet) and verify the graph on ``windows``
    (reference windows [N, W, S], raw, NaN = missing; ``actual`` [N, S] for forecasters); see the docstring."""
    from models.onnx_model import OnnxModel

    started = time.perf_counter()
    cpu = model if str(model.device) == "cpu" and model.precision == "fp32" else model.to("cpu").with_precision("fp32")
    from models.artifacts import weights_bytes

    weights_sha = sha256_hex(weights_bytes(cpu.module))
    source_record = exported_from({**cpu.manifest, "weights": {"sha256": weights_sha}})
    graph = export_graph(cpu)
    with np.errstate(all="ignore"):
        expected = outputs_of(cpu, cpu.infer(windows))
    if not reference_finite(cpu, windows, expected, actual):
        raise OnnxExportError(
            f"model {model.name!r}: torch scores its reference windows ({source}) as NaN or inf where every sensor has "
            "a value: a model that overflows on real data cannot be served"
        )
    served = OnnxModel.from_bytes(graph, cpu.manifest, cpu.scaler, cpu_threads=1)
    with np.errstate(all="ignore"):
        got = outputs_of(served, served.infer(windows))
    tolerance = {name: dict(TOLERANCE[name]) for name in graph_outputs(cpu.manifest)}
    max_diff, problem = compare(got, expected, tolerance)
    if problem is not None:
        raise OnnxExportError(
            f"model {model.name!r}: ONNX Runtime does not score like torch on {len(windows)} reference windows: "
            f"{problem}"
        )
    reference = Reference(windows=np.ascontiguousarray(windows, np.float32), actual=actual, outputs=expected)
    return OnnxBundle(
        graph=graph,
        reference=reference,
        reference_bytes=encode(reference),
        source=source,
        exported_from=source_record,
        max_diff=max_diff,
        tolerance=tolerance,
        seconds=time.perf_counter() - started,
    )


def upgrade_artifact(path: str | Path) -> str:
    """Give the artifact at ``path`` a verified ONNX graph (`plantwatch export-onnx`); returns what was done.

    A kind without a network (the pca) is left alone. Otherwise the artifact is loaded by the torch loader (every
    check; ArtifactError if refused). One whose ONNX graph the ONNX loader accepts is left alone. Otherwise the
    graph is exported and verified on synthetic reference windows
    (models.reference.synthetic_reference: the training data is not kept with the artifact), model.onnx and
    reference.safetensors are written, then the manifest with its ``onnx`` section, each atomically; the weights
    are not touched. The result is loaded by the ONNX loader before this returns (ArtifactError if it refuses).
    """
    from models.artifact_io import ArtifactError
    from models.artifacts import REFERENCE_NAME as REFERENCE_FILE
    from models.artifacts import atomic_write, load_artifact, write_manifest
    from models.kinds import KINDS
    from models.manifest import ONNX_NAME, read_manifest
    from models.onnx_model import has_onnx, load_onnx_artifact
    from models.reference import synthetic_reference

    directory = Path(path)
    kind = read_manifest(directory).get("kind") if directory.is_dir() else None
    if isinstance(kind, str) and kind in KINDS and not KINDS[kind].network:
        return f"a {kind} artifact is scored with numpy: it has no network and needs no ONNX graph; left alone"
    model = load_artifact(directory, "cpu")
    replaced = ""
    if has_onnx(model.manifest):
        try:
            load_onnx_artifact(directory)
        except ArtifactError as exc:
            replaced = f", replacing a graph the ONNX loader refused ({exc.reason}: {str(exc).split(': ', 1)[-1]})"
        else:
            return "already has a valid ONNX graph: left alone"
    windows, actual = synthetic_reference(model, seed=0)
    bundle = export_onnx(model, windows, actual, source="synthetic")
    manifest = dict(model.manifest)
    manifest["onnx"] = bundle.section(manifest)
    manifest["versions"] = {**manifest.get("versions", {}), **bundle.versions}
    atomic_write(directory / ONNX_NAME, bundle.graph)
    atomic_write(directory / REFERENCE_FILE, bundle.reference_bytes)
    write_manifest(directory, manifest)
    load_onnx_artifact(directory)
    worst = ", ".join(f"{name} {diff['abs']:.2g}" for name, diff in bundle.max_diff.items())
    return (
        f"exported model.onnx ({len(bundle.graph)} bytes, opset {OPSET}) in {bundle.seconds:.2f} s, verified on "
        f"{len(windows)} synthetic reference windows (largest difference {worst}){replaced}"
    )
