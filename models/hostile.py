"""A corpus of hostile model artifacts, made from one good artifact: every one must be refused with an ArtifactError.

API:
    hostile_artifacts(tmpdir, good_artifact_dir) -> [(name, path)]   # every case of CASE_NAMES, in tmpdir/<name>
    build_case(name, good_artifact_dir, target_dir) -> Path           # one case at target_dir (replaced)
    CASE_NAMES                                                        # the cases, in a stable order
    EXPECTED_REASONS[name]                                            # ArtifactError.reason both loaders give
    ONNX_CASE_NAMES                                                   # cases aimed at model.onnx and its reference
    ONNX_EXPECTED_REASONS[name]                                       # the reason the ONNX loader gives
    ONNX_TORCH_REASONS[name]                                          # the torch loader's: None where it loads
                                                                      # the case (it does not read model.onnx)
    overflowing_off_the_mean(good_artifact_dir, target_dir) -> Path   # NOT refused: passes every load check and
                                                                      # scores inf on live windows (reload rollback)
    without_onnx(artifact_dir) -> Path                                # the artifact as written before the export

For tests (tests/models/test_hostile_artifacts.py, tests/service/test_process.py) and the fault benchmark: at
start, point a unit at ``path``; on SIGHUP, ``build_case`` the case over the directory a running service loads.
Works with any good artifact (detector or forecaster): the cases only touch fields every kind has.

Cases: hyperparameters that would allocate terabytes or are of the wrong type; JSON nested 100,000 deep; a
manifest that is not an object, misses fields, names an unknown kind or format version, is huge (a sparse file,
no disk used), not UTF-8, empty; weights that are huge (sparse), truncated, with a header lying about shapes,
offsets or dtypes, with extra or missing tensors, NaN, inf or overflowing values, of the wrong dtype; thresholds
and calibrated levels that are negative, zero, NaN or inf; a bad envelope; weights or manifest as a symlink
leaving the directory, a directory, a FIFO (whose open would block), a dangling or looping symlink. A case whose
weights are rewritten gets the matching sha256 in its manifest, so it reaches the check it is aimed at; a case
aimed at the probe (weights or a scaler that overflow) also gets its ONNX graph re-exported from what it changed
(when the good artifact has one), so that the ONNX loader (models/onnx_model.py) reaches the probe too instead of
refusing the graph as exported from other weights.

Both loaders refuse every case of CASE_NAMES with its EXPECTED_REASONS (tests/models/test_hostile_artifacts.py
runs both). The ONNX cases need a good artifact with model.onnx: a checksum, garbage, truncated or empty graph, a
graph of the wrong window with a matching hash, one of other weights, reference outputs altered, reference windows
of the wrong count, a graph or reference named with a path or another suffix, symlinked out of the directory, a
FIFO, a directory, a sparse huge file, missing; a tolerance too wide to check anything; a scaler edited after the
export; and overflowing_off_the_mean with its graph re-exported (the reference windows catch it). The torch loader
refuses the ones that are in the manifest's fields and loads the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"
REFERENCE = "reference.safetensors"

Case = Callable[[Path], None]  # edits a fresh copy of the good artifact in place


def _load_manifest(d: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((d / MANIFEST).read_text())
    return data


def _write_manifest(d: Path, manifest: dict[str, Any]) -> None:
    (d / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _edit(**changes: Any) -> Case:
    """Top-level manifest fields replaced (a value of ``...`` deletes the field)."""

    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        for key, value in changes.items():
            if value is ...:
                manifest.pop(key, None)
            else:
                manifest[key] = value
        _write_manifest(d, manifest)

    return apply


def _edit_in(section: str, **changes: Any) -> Case:
    """Fields of one manifest section (``hyperparameters``, ``threshold``) replaced."""

    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        manifest[section] = {**manifest[section], **changes}
        _write_manifest(d, manifest)

    return apply


def _manifest_text(text: str | bytes) -> Case:
    def apply(d: Path) -> None:
        (d / MANIFEST).write_bytes(text.encode() if isinstance(text, str) else text)

    return apply


def _replace_in_manifest(field: str, literal: str) -> Case:
    """``"field": <its number>`` written as ``literal`` (NaN, 1e400: what json.dumps will not write)."""

    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        section, key = field.split(".")
        manifest[section][key] = "__HOSTILE__"
        (d / MANIFEST).write_text(json.dumps(manifest, indent=2).replace('"__HOSTILE__"', literal))

    return apply


def _envelope_stat(stat: str, literal: str) -> Case:
    """The first sensor's envelope statistic ``stat`` written as the JSON text ``literal``."""

    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        first = manifest["sensors"][0]
        manifest["envelope"]["sensors"][first][stat] = "__HOSTILE__"
        (d / MANIFEST).write_text(json.dumps(manifest, indent=2).replace('"__HOSTILE__"', literal))

    return apply


def _sparse(name: str, size_of: Callable[[], int]) -> Case:
    """``name`` replaced by a sparse file of ``size_of()`` bytes: huge on paper, no disk used."""

    def apply(d: Path) -> None:
        path = d / name
        path.unlink()
        with path.open("wb") as handle:
            handle.truncate(size_of())

    return apply


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    length = int.from_bytes(data[:8], "little")
    header: dict[str, Any] = json.loads(data[8 : 8 + length])
    return header, data[8 + length :]


def _join(header: dict[str, Any], buffer: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + buffer


def _set_weights(d: Path, data: bytes) -> None:
    """New weight bytes, with the manifest's sha256 and size made to match (the checksum is not what is tested)."""
    (d / WEIGHTS).write_bytes(data)
    manifest = _load_manifest(d)
    manifest["weights"] = {**manifest["weights"], "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _write_manifest(d, manifest)


def _weights_bytes(edit: Callable[[bytes], bytes]) -> Case:
    def apply(d: Path) -> None:
        _set_weights(d, edit((d / WEIGHTS).read_bytes()))

    return apply


def _weights_header(edit: Callable[[dict[str, Any]], None]) -> Case:
    """The safetensors header edited (the first tensor's entry is ``header[first]``), the buffer kept."""

    def apply(d: Path) -> None:
        header, buffer = _split((d / WEIGHTS).read_bytes())
        edit(header)
        _set_weights(d, _join(header, buffer))

    return apply


def _first_tensor(header: dict[str, Any]) -> dict[str, Any]:
    name = next(n for n in header if n != "__metadata__")
    entry: dict[str, Any] = header[name]
    return entry


def _offsets_beyond(header: dict[str, Any]) -> None:
    _first_tensor(header)["data_offsets"] = [0, 2**40]


def _dtype_f16(header: dict[str, Any]) -> None:
    _first_tensor(header)["dtype"] = "F16"  # same bytes: the range is now twice as long as the shape says


def _all_from_zero(header: dict[str, Any]) -> None:
    """Every tensor's range moved to start at byte 0: the right lengths, all overlapping."""
    for name, entry in header.items():
        if name != "__metadata__":
            begin, end = entry["data_offsets"]
            entry["data_offsets"] = [0, end - begin]


def _transpose_first(header: dict[str, Any]) -> None:
    entry = next(e for n, e in header.items() if n != "__metadata__" and len(e["shape"]) == 2)
    entry["shape"] = entry["shape"][::-1]


def _tensors(edit: Callable[[dict[str, Any]], None]) -> Case:
    """The state dict edited as torch tensors, then written as a valid safetensors file."""

    def apply(d: Path) -> None:
        from safetensors.torch import load, save

        state = dict(load((d / WEIGHTS).read_bytes()))
        edit(state)
        _set_weights(d, save(state))

    return apply


def _fill_first(value: float) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        name = sorted(state)[0]
        tensor = state[name].clone()
        tensor.view(-1)[0] = value
        state[name] = tensor

    return edit


def _all_values(value: float) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        for name, tensor in state.items():
            state[name] = tensor.clone().fill_(value)

    return edit


def _as_float64(state: dict[str, Any]) -> None:
    import torch

    for name, tensor in state.items():
        state[name] = tensor.to(torch.float64)


def _extra_tensor(state: dict[str, Any]) -> None:
    import torch

    state["extra.weight"] = torch.zeros(4, 4)


def _drop_tensor(state: dict[str, Any]) -> None:
    del state[sorted(state)[0]]


def _outside(d: Path) -> Path:
    """A directory beside the case's, holding what its symlinks point at (the good files, to show that even a
    valid file is refused when it lies outside the artifact directory)."""
    outside = d.parent / f"{d.name}.outside"
    outside.mkdir(exist_ok=True)
    return outside


def _symlink_outside(name: str) -> Case:
    def apply(d: Path) -> None:
        target = _outside(d) / name
        shutil.copyfile(d / name, target)
        (d / name).unlink()
        (d / name).symlink_to(target)

    return apply


def _as_directory(name: str) -> Case:
    def apply(d: Path) -> None:
        (d / name).unlink()
        (d / name).mkdir()

    return apply


def _as_fifo(name: str) -> Case:
    def apply(d: Path) -> None:
        (d / name).unlink()
        os.mkfifo(d / name)

    return apply


def _symlink(name: str, target: str) -> Case:
    def apply(d: Path) -> None:
        (d / name).unlink()
        (d / name).symlink_to(target)

    return apply


def _flip_last_byte(d: Path) -> None:
    data = bytearray((d / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (d / WEIGHTS).write_bytes(bytes(data))


def _pickle_weights(d: Path) -> None:
    import pickle

    payload = pickle.dumps({"not": "weights"})
    (d / "model.pt").write_bytes(payload)
    manifest = _load_manifest(d)
    manifest["weights"] = {"file": "model.pt", "sha256": hashlib.sha256(payload).hexdigest()}
    _write_manifest(d, manifest)


def _nested_field(d: Path) -> None:
    manifest = _load_manifest(d)
    manifest["training"] = {"figures": json.loads("[" * 60 + "]" * 60)}
    _write_manifest(d, manifest)


def _max_manifest_bytes() -> int:
    from models.artifacts import MAX_MANIFEST_BYTES

    return MAX_MANIFEST_BYTES + 1


def _max_weights_bytes() -> int:
    from models.artifacts import MAX_WEIGHTS_BYTES

    return MAX_WEIGHTS_BYTES + 1


def _sensors(n: int) -> Case:
    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        manifest["sensors"] = [f"x{i}" for i in range(n)]
        _write_manifest(d, manifest)

    return apply


def _duplicate_sensor(d: Path) -> None:
    manifest = _load_manifest(d)
    manifest["sensors"] = [manifest["sensors"][0]] * len(manifest["sensors"])
    _write_manifest(d, manifest)


def _scaler(**changes: Callable[[list[float]], list[float]]) -> Case:
    def apply(d: Path) -> None:
        manifest = _load_manifest(d)
        for key, change in changes.items():
            manifest["scaler"][key] = change(manifest["scaler"][key])
        _write_manifest(d, manifest)

    return apply


def _score_steps_over_window(d: Path) -> None:
    manifest = _load_manifest(d)
    manifest["score"] = {**manifest.get("score", {}), "steps": manifest["window"] + 1}
    _write_manifest(d, manifest)


def _envelope_min_above_max(d: Path) -> None:
    manifest = _load_manifest(d)
    stats = manifest["envelope"]["sensors"][manifest["sensors"][0]]
    stats["min"], stats["max"] = stats["max"] + 1.0, stats["min"]
    _write_manifest(d, manifest)


def without_onnx(d: str | Path) -> Path:
    """The artifact at ``d`` turned into one from before the ONNX export: no model.onnx, no reference, no manifest
    section (what `plantwatch export-onnx` upgrades; served by torch with a warning). Returns ``d``."""
    d = Path(d)
    for name in (ONNX, REFERENCE):
        (d / name).unlink(missing_ok=True)
    manifest = _load_manifest(d)
    manifest.pop("onnx", None)
    _write_manifest(d, manifest)
    return d


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


# name -> (the ArtifactError.reason both loaders give, how the case is made from a copy of the good artifact)
_CASES: dict[str, tuple[str, Case]] = {
    # resource exhaustion through the architecture
    "hidden_size_1e6": ("too_large", _edit_in("hyperparameters", hidden_size=1_000_000)),
    "num_layers_huge": ("too_large", _edit_in("hyperparameters", num_layers=100_000)),
    "window_huge": ("too_large", _edit(window=1_000_000_000)),
    "horizon_huge": ("too_large", _edit(horizon=1_000_000_000)),
    "sensors_100k": ("too_large", _sensors(100_000)),
    "activations_huge": ("too_large", _edit_in("hyperparameters", hidden_size=2048, num_layers=16)),
    "hidden_size_4300_digits": ("invalid_manifest", _replace_in_manifest("hyperparameters.hidden_size", "9" * 5000)),
    # hyperparameters of the wrong kind
    "hidden_size_negative": ("invalid_manifest", _edit_in("hyperparameters", hidden_size=-8)),
    "hidden_size_zero": ("invalid_manifest", _edit_in("hyperparameters", hidden_size=0)),
    "hidden_size_float": ("invalid_manifest", _edit_in("hyperparameters", hidden_size=8.5)),
    "hidden_size_string": ("invalid_manifest", _edit_in("hyperparameters", hidden_size="64")),
    "hidden_size_bool": ("invalid_manifest", _edit_in("hyperparameters", hidden_size=True)),
    "num_layers_negative": ("invalid_manifest", _edit_in("hyperparameters", num_layers=-1)),
    "window_zero": ("invalid_manifest", _edit(window=0)),
    "window_string": ("invalid_manifest", _edit(window="16")),
    "dropout_overflow": ("invalid_manifest", _replace_in_manifest("hyperparameters.dropout", "1e400")),
    "unknown_hyperparameter": ("invalid_manifest", _edit_in("hyperparameters", bogus=1)),
    "period_zero": ("invalid_manifest", _edit(period_s=0)),
    "score_steps_over_window": ("too_large", _score_steps_over_window),
    "sensors_duplicate": ("invalid_manifest", _duplicate_sensor),
    "name_huge": ("invalid_manifest", _edit(name="n" * 10_000)),
    # the manifest's JSON
    "brackets_100k": ("invalid_manifest", _manifest_text("[" * 100_000)),
    "objects_100k_deep": ("invalid_manifest", _manifest_text('{"a":' * 100_000 + "1" + "}" * 100_000)),
    "field_nested_60_deep": ("invalid_manifest", _nested_field),
    "manifest_array": ("invalid_manifest", _manifest_text("[]")),
    "manifest_string": ("invalid_manifest", _manifest_text('"a manifest"')),
    "manifest_null": ("invalid_manifest", _manifest_text("null")),
    "manifest_empty": ("invalid_manifest", _manifest_text("")),
    "manifest_not_utf8": ("invalid_manifest", _manifest_text(b'{"kind": "\xff\xfe"}')),
    "manifest_huge": ("too_large", _sparse(MANIFEST, _max_manifest_bytes)),
    "missing_kind": ("invalid_manifest", _edit(kind=...)),
    "missing_sensors": ("invalid_manifest", _edit(sensors=...)),
    "missing_threshold": ("invalid_manifest", _edit(threshold=...)),
    "missing_weights_entry": ("invalid_manifest", _edit(weights=...)),
    "missing_hyperparameters": ("invalid_manifest", _edit(hyperparameters=...)),
    "unknown_kind": ("invalid_manifest", _edit(kind="transformer")),
    "format_version_2": ("format_version", _edit(format_version=2)),
    "format_version_string": ("format_version", _edit(format_version="1")),
    # thresholds, calibrated levels, envelope, scaler
    "threshold_negative": ("invalid_manifest", _edit_in("threshold", value=-1.0)),
    "threshold_zero": ("invalid_manifest", _edit_in("threshold", value=0.0)),
    "threshold_nan": ("invalid_manifest", _replace_in_manifest("threshold.value", "NaN")),
    "threshold_inf": ("invalid_manifest", _replace_in_manifest("threshold.value", "Infinity")),
    "threshold_overflow": ("invalid_manifest", _replace_in_manifest("threshold.value", "1e400")),
    "threshold_string": ("invalid_manifest", _edit_in("threshold", value="7.9")),
    "critical_negative": ("invalid_manifest", _edit_in("threshold", critical_value=-1.0)),
    "resolve_zero": ("invalid_manifest", _edit_in("threshold", resolve_value=0.0)),
    "resolve_overflow": ("invalid_manifest", _replace_in_manifest("threshold.resolve_value", "1e999")),
    "envelope_nan": ("invalid_manifest", _envelope_stat("mean", "NaN")),
    "envelope_overflow": ("invalid_manifest", _envelope_stat("max", "-1e400")),
    "envelope_negative_std": ("invalid_manifest", _envelope_stat("std", "-1.0")),
    "envelope_min_above_max": ("invalid_manifest", _envelope_min_above_max),
    "scaler_zero_scale": ("scaler", _scaler(scale=lambda v: [0.0] * len(v))),
    "scaler_offset_beyond_float32": ("non_finite", _and_reexport(_scaler(offset=lambda v: [1e39] * len(v)))),
    # the weights file's size and content
    "weights_huge_sparse": ("too_large", _sparse(WEIGHTS, _max_weights_bytes)),
    "weights_truncated": ("corrupt", _weights_bytes(lambda b: b[: len(b) // 2])),
    "weights_empty": ("corrupt", _weights_bytes(lambda b: b"")),
    "weights_header_length_lies": ("corrupt", _weights_bytes(lambda b: (2**62).to_bytes(8, "little") + b[8:])),
    "weights_header_not_json": ("corrupt", _weights_bytes(lambda b: b[:8] + b"\xff" * (len(b) - 8))),
    "weights_header_brackets": ("corrupt", _weights_bytes(lambda b: (20_000).to_bytes(8, "little") + b"[" * 20_000)),
    "weights_offsets_beyond_buffer": ("corrupt", _weights_header(_offsets_beyond)),
    "weights_offsets_overlap": ("corrupt", _weights_header(_all_from_zero)),
    "weights_dtype_lies": ("corrupt", _weights_header(_dtype_f16)),
    "weights_shape_transposed": ("shape_mismatch", _weights_header(_transpose_first)),
    "weights_float64": ("shape_mismatch", _tensors(_as_float64)),
    "weights_extra_tensor": ("shape_mismatch", _tensors(_extra_tensor)),
    "weights_missing_tensor": ("shape_mismatch", _tensors(_drop_tensor)),
    "weights_nan": ("non_finite", _tensors(_fill_first(float("nan")))),
    "weights_inf": ("non_finite", _tensors(_fill_first(float("inf")))),
    "weights_overflowing_output": ("non_finite", _and_reexport(_tensors(_all_values(3e38)))),
    "weights_checksum": ("checksum", _flip_last_byte),
    "weights_pickle": ("unsafe_format", _pickle_weights),
    "weights_path_escape": ("unsafe_format", _edit(weights={"file": "../weights.safetensors", "sha256": "0" * 64})),
    "weights_missing": ("missing", lambda d: (d / WEIGHTS).unlink()),
    # files that are not regular files inside the directory
    "weights_symlink_outside": ("unsafe_format", _symlink_outside(WEIGHTS)),
    "weights_symlink_absolute": ("unsafe_format", _symlink(WEIGHTS, "/dev/zero")),
    "weights_directory": ("unsafe_format", _as_directory(WEIGHTS)),
    "weights_fifo": ("unsafe_format", _as_fifo(WEIGHTS)),
    "weights_symlink_loop": ("missing", _symlink(WEIGHTS, WEIGHTS)),
    "weights_symlink_dangling": ("missing", _symlink(WEIGHTS, "nowhere.safetensors")),
    "manifest_symlink_outside": ("unsafe_format", _symlink_outside(MANIFEST)),
    "manifest_directory": ("unsafe_format", _as_directory(MANIFEST)),
    "manifest_fifo": ("unsafe_format", _as_fifo(MANIFEST)),
}

CASE_NAMES: tuple[str, ...] = tuple(_CASES)
EXPECTED_REASONS: dict[str, str] = {name: reason for name, (reason, _) in _CASES.items()}

# name -> (the ONNX loader's reason, the torch loader's reason or None where it loads the case, how it is made).
_ONNX_CASES: dict[str, tuple[str, str | None, Case]] = {
    # the graph's bytes
    "onnx_checksum": ("checksum", None, _flip_graph_byte),
    "onnx_garbage": ("corrupt", None, _graph_bytes(lambda b: bytes((i * 131 + 7) % 251 for i in range(len(b))))),
    "onnx_truncated": ("corrupt", None, _graph_bytes(lambda b: b[: len(b) // 2])),
    "onnx_empty": ("corrupt", None, _graph_bytes(lambda b: b"")),
    "onnx_wrong_window": ("shape_mismatch", None, _graph_of_another_window),
    "onnx_other_weights": ("onnx_mismatch", None, _graph_of_other_weights),
    "onnx_huge_sparse": ("too_large", None, _sparse_onnx),
    "onnx_missing": ("missing", None, lambda d: (d / ONNX).unlink()),
    # names and files that are not regular files inside the directory
    "onnx_path_escape": ("unsafe_format", None, _onnx_edit(file="../model.onnx")),
    "onnx_other_suffix": ("unsafe_format", None, _onnx_edit(file="weights.safetensors")),
    "onnx_symlink_outside": ("unsafe_format", None, _symlink_outside(ONNX)),
    "onnx_symlink_absolute": ("unsafe_format", None, _symlink(ONNX, "/dev/zero")),
    "onnx_directory": ("unsafe_format", None, _as_directory(ONNX)),
    "onnx_fifo": ("unsafe_format", None, _as_fifo(ONNX)),
    # the reference windows
    "reference_outputs_altered": ("onnx_mismatch", None, _reference_outputs_scaled),
    "reference_fewer_windows": ("shape_mismatch", None, _reference_fewer_windows),
    "reference_checksum": ("checksum", None, _reference_edit(sha256="0" * 64)),
    "reference_missing": ("missing", None, lambda d: (d / REFERENCE).unlink()),
    "reference_path_escape": ("unsafe_format", None, _reference_edit(file="../reference.safetensors")),
    "reference_symlink_outside": ("unsafe_format", None, _symlink_outside(REFERENCE)),
    # the manifest's onnx section: refused by both loaders (the manifest is theirs alike)
    "onnx_tolerance_huge": ("invalid_manifest", "invalid_manifest", _tolerance_huge),
    "onnx_opset_string": ("invalid_manifest", "invalid_manifest", _onnx_edit(opset="17")),
    "onnx_section_list": ("invalid_manifest", "invalid_manifest", _edit(onnx=[])),
    "onnx_sha256_not_hex": ("invalid_manifest", "invalid_manifest", _onnx_edit(sha256="z" * 64)),
    "reference_windows_huge": ("too_large", "too_large", _reference_edit(windows=10**9)),
    # what the graph folds in, changed in the manifest after the export
    "onnx_scaler_edited": ("onnx_mismatch", None, _scaler_nudged),
    "onnx_score_steps_edited": ("onnx_mismatch", None, _score_steps_fewer),
    # overflowing_off_the_mean with its graph re-exported: the probe passes, the real reference windows score inf
    "onnx_overflowing_off_the_mean": ("non_finite", None, _off_the_mean_reexported),
}

ONNX_CASE_NAMES: tuple[str, ...] = tuple(_ONNX_CASES)
ONNX_EXPECTED_REASONS: dict[str, str] = {name: reason for name, (reason, _, _) in _ONNX_CASES.items()}
ONNX_TORCH_REASONS: dict[str, str | None] = {name: reason for name, (_, reason, _) in _ONNX_CASES.items()}


def _clear(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    outside = target.parent / f"{target.name}.outside"
    if outside.exists():
        shutil.rmtree(outside)


def build_case(name: str, good_artifact_dir: str | Path, target_dir: str | Path) -> Path:
    """Case ``name`` made at ``target_dir`` from a copy of ``good_artifact_dir`` (whatever was there is replaced,
    so a running service's artifact directory can be turned hostile before a SIGHUP). Returns ``target_dir``."""
    make = _CASES[name][1] if name in _CASES else _ONNX_CASES[name][2]
    target = Path(target_dir)
    _clear(target)
    shutil.copytree(good_artifact_dir, target)
    make(target)
    return target


def hostile_artifacts(tmpdir: str | Path, good_artifact_dir: str | Path) -> list[tuple[str, Path]]:
    """Every case of CASE_NAMES (both loaders refuse them), each in ``tmpdir/<name>``: [(name, artifact
    directory)] in CASE_NAMES order."""
    root = Path(tmpdir)
    root.mkdir(parents=True, exist_ok=True)
    return [(name, build_case(name, good_artifact_dir, root / name)) for name in CASE_NAMES]


def _off_the_mean(target: Path) -> None:
    manifest = _load_manifest(target)
    sensor = manifest["sensors"][0]
    mean = (manifest.get("envelope") or {}).get("sensors", {}).get(sensor, {}).get("mean")
    if mean is not None:
        manifest["scaler"]["offset"][0] = mean
    manifest["scaler"]["scale"][0] = 1e-30
    _write_manifest(target, manifest)


def overflowing_off_the_mean(good_artifact_dir: str | Path, target_dir: str | Path) -> Path:
    """An artifact that load_artifact accepts, probe included, and that scores inf on any real window: its first
    sensor's scaler is centred exactly on the training mean with a scale of 1e-30, so the probe's windows (at the
    mean, and half a scale above it) scale to 0, while a live value more than 2e-11 from the mean scales past
    2e19 and its squared error (a detector's, or a forecaster's residual) beyond float32. What a reload's
    probation must catch (monitor/probation.py). Returns target.

    Written without its ONNX graph (``without_onnx``): the ONNX loader scores the real reference windows at load
    and refuses this artifact (the case ``onnx_overflowing_off_the_mean``), so only the torch path, which probes at
    the mean alone, lets it through to probation."""
    target = Path(target_dir)
    _clear(target)
    shutil.copytree(good_artifact_dir, target)
    _off_the_mean(target)
    without_onnx(target)
    return target
