"""The edits of the hostile cases aimed at model.onnx and its reference windows, and the graph re-exported from a
case's edited weights.

API (builders for models/hostile.py's ONNX case table; each is or returns a ``Case``)::

    _reexport(d), _and_reexport(case)        # model.onnx exported again from what the case changed (unverified)
    _graph_bytes(edit), _flip_graph_byte     # the graph's bytes, with its sha256 made to match (or not)
    _graph_of_another_window, _graph_of_other_weights   # real graphs of the wrong model, under a matching sha256
    _reference_outputs_scaled, _reference_fewer_windows, _reference_edit(**fields), _onnx_edit(**fields)
    _tolerance_huge, _scaler_nudged, _score_steps_fewer   # the manifest edited after the export
    _sparse_onnx, _off_the_mean_reexported

Why apart from models.hostile_edits: these need a good artifact with model.onnx and import torch and the ONNX
exporter (lazily, inside each builder); the manifest and weights edits need neither. A case aimed at the probe
(weights or a scaler that overflow) gets its graph re-exported, so that the ONNX loader (models/onnx_model.py)
reaches the probe too instead of refusing the graph as exported from other weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.hostile_edits import ONNX, REFERENCE, WEIGHTS, Case, _load_manifest, _off_the_mean, _write_manifest


def _reexport(d: Path) -> None:
    """model.onnx exported again from the case's weights and scaler (unverified: they are meant to overflow), with
    its sha256 and ``exported_from`` in the manifest; nothing when the artifact has no graph."""
    manifest = _load_manifest(d)
    if "onnx" not in manifest:
        return
    from safetensors.torch import load

    from models.inference import LoadedModel
    from models.manifest import exported_from
    from models.networks import build_model
    from models.onnx_export import export_graph
    from models.preprocessing import Scaler

    module = build_model(
        manifest["kind"],
        len(manifest["sensors"]),
        manifest["window"],
        manifest["horizon"],
        **manifest["hyperparameters"],
    )
    module.load_state_dict(load((d / WEIGHTS).read_bytes()))
    import torch

    model = LoadedModel(module, manifest, Scaler.from_dict(manifest["scaler"]), torch.device("cpu"))
    graph = export_graph(model)
    (d / ONNX).write_bytes(graph)
    manifest["onnx"] = {
        **manifest["onnx"],
        "sha256": hashlib.sha256(graph).hexdigest(),
        "bytes": len(graph),
        "exported_from": exported_from(manifest),
    }
    _write_manifest(d, manifest)


def _and_reexport(case: Case) -> Case:
    def apply(d: Path) -> None:
        case(d)
        _reexport(d)

    return apply


def _set_file(name: str, section: str | None = None) -> Callable[[Path, bytes], None]:
    """Writes new bytes as ``name`` with the sha256 and size in the manifest's onnx section (or its reference)."""

    def write(d: Path, data: bytes) -> None:
        (d / name).write_bytes(data)
        manifest = _load_manifest(d)
        entry = manifest["onnx"] if section is None else manifest["onnx"][section]
        entry.update({"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
        _write_manifest(d, manifest)

    return write


_set_graph = _set_file(ONNX)
_set_reference = _set_file(REFERENCE, "reference")


def _graph_bytes(edit: Callable[[bytes], bytes]) -> Case:
    def apply(d: Path) -> None:
        _set_graph(d, edit((d / ONNX).read_bytes()))

    return apply


def _flip_graph_byte(d: Path) -> None:
    data = bytearray((d / ONNX).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / ONNX).write_bytes(bytes(data))


def _torch_model(d: Path, **manifest_changes: Any) -> Any:
    """The artifact's torch model (loaded without checks: the good artifact's), its manifest changed."""
    from models.artifacts import load_artifact

    good = load_artifact(d)
    from models.inference import LoadedModel

    return LoadedModel(good.module, {**good.manifest, **manifest_changes}, good.scaler, good.device)


def _graph_of_another_window(d: Path) -> None:
    """A real graph of the same model for windows one row longer, under a matching sha256."""
    from models.onnx_export import export_graph

    manifest = _load_manifest(d)
    window = manifest["window"] + 1
    _set_graph(d, export_graph(_torch_model(d, window=window, score={**manifest.get("score", {}), "steps": window})))


def _graph_of_other_weights(d: Path) -> None:
    """A graph of the same architecture with every weight moved, under a matching sha256 (exported_from kept: the
    manifest claims the old weights). Only the reference windows can tell."""
    import torch

    from models.onnx_export import export_graph

    model = _torch_model(d)
    with torch.no_grad():
        for parameter in model.module.parameters():
            parameter.mul_(1.5)
    _set_graph(d, export_graph(model))


def _reference_outputs_scaled(d: Path) -> None:
    from safetensors.numpy import load, save

    tensors = dict(load((d / REFERENCE).read_bytes()))
    for name in ("sensor_errors", "forecasts"):
        if name in tensors:
            tensors[name] = tensors[name] * 1.01 + 0.01
    _set_reference(d, save(tensors))


def _reference_fewer_windows(d: Path) -> None:
    from safetensors.numpy import load, save

    tensors = dict(load((d / REFERENCE).read_bytes()))
    _set_reference(d, save({name: array[:-1] for name, array in tensors.items()}))


def _onnx_edit(**changes: Any) -> Case:
    """Fields of the manifest's onnx section replaced."""

    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        manifest["onnx"] = {**manifest["onnx"], **changes}
        _write_manifest(d, manifest)

    return apply


def _reference_edit(**changes: Any) -> Case:
    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        manifest["onnx"]["reference"] = {**manifest["onnx"]["reference"], **changes}
        _write_manifest(d, manifest)

    return apply


def _tolerance_huge(d: Path) -> None:
    manifest = _load_manifest(d)
    for entry in manifest["onnx"]["tolerance"].values():
        entry["abs"] = 1e6
    _write_manifest(d, manifest)


def _scaler_nudged(d: Path) -> None:
    """A valid scaler, 1 % off the one the graph folds in (a manifest edited after the export)."""
    manifest = _load_manifest(d)
    manifest["scaler"]["scale"] = [v * 1.01 for v in manifest["scaler"]["scale"]]
    _write_manifest(d, manifest)


def _score_steps_fewer(d: Path) -> None:
    """score.steps one less than the graph averages (a valid manifest: the torch loader takes it)."""
    manifest = _load_manifest(d)
    manifest["score"] = {**manifest.get("score", {}), "steps": max(manifest["window"] - 1, 1)}
    _write_manifest(d, manifest)


def _off_the_mean_reexported(d: Path) -> None:
    _off_the_mean(d)
    _reexport(d)


def _max_onnx_bytes(d: Path) -> int:
    from models.manifest import MAX_WEIGHTS_BYTES, expected_weight_shapes
    from models.onnx_model import max_onnx_bytes

    manifest = _load_manifest(d)
    return max_onnx_bytes(manifest, expected_weight_shapes(manifest, MAX_WEIGHTS_BYTES, d)) + 1


def _sparse_onnx(d: Path) -> None:
    size = _max_onnx_bytes(d)
    (d / ONNX).unlink()
    with (d / ONNX).open("wb") as handle:
        handle.truncate(size)
