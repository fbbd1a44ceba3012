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

Modules: this one holds the case table (name -> expected reason, how the case is made) and builds the cases; the
edits that make them are models.hostile_edits (manifest, weights file, files) and models.hostile_onnx_edits
(model.onnx, its reference windows, the graph re-exported). A new kind's cases are new lines of the table here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from models.hostile_edits import (
    MANIFEST,
    ONNX,
    REFERENCE,
    WEIGHTS,
    Case,
    _all_from_zero,
    _all_values,
    _as_directory,
    _as_fifo,
    _as_float64,
    _drop_tensor,
    _dtype_f16,
    _duplicate_sensor,
    _edit,
    _edit_in,
    _envelope_min_above_max,
    _envelope_stat,
    _extra_tensor,
    _fill_first,
    _flip_last_byte,
    _load_manifest,
    _manifest_text,
    _max_manifest_bytes,
    _max_weights_bytes,
    _nested_field,
    _off_the_mean,
    _offsets_beyond,
    _pickle_weights,
    _replace_in_manifest,
    _scaler,
    _score_steps_over_window,
    _sensors,
    _sparse,
    _symlink,
    _symlink_outside,
    _tensors,
    _transpose_first,
    _weights_bytes,
    _weights_header,
    _write_manifest,
)
from models.hostile_onnx_edits import (
    _and_reexport,
    _flip_graph_byte,
    _graph_bytes,
    _graph_of_another_window,
    _graph_of_other_weights,
    _off_the_mean_reexported,
    _onnx_edit,
    _reference_edit,
    _reference_fewer_windows,
    _reference_outputs_scaled,
    _scaler_nudged,
    _score_steps_fewer,
    _sparse_onnx,
    _tolerance_huge,
)

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
