"""A corpus of hostile model artifacts, made from one good artifact: every one must be refused with an ArtifactError.

API:
    hostile_artifacts(tmpdir, good_artifact_dir) -> [(name, path)]   # every case, each in tmpdir/<name>
    build_case(name, good_artifact_dir, target_dir) -> Path           # one case at target_dir (replaced)
    CASE_NAMES                                                        # the cases, in a stable order
    EXPECTED_REASONS[name]                                            # ArtifactError.reason load_artifact gives
    overflowing_off_the_mean(good_artifact_dir, target_dir) -> Path   # NOT refused: passes every load check and
                                                                      # scores inf on live windows (reload rollback)

For tests (tests/models/test_hostile_artifacts.py, tests/service/test_process.py) and the fault benchmark: at
start, point a unit at ``path``; on SIGHUP, ``build_case`` the case over the directory a running service loads.
Works with any good artifact (detector or forecaster): the cases only touch fields every kind has.

Cases: hyperparameters that would allocate terabytes or are of the wrong type; JSON nested 100,000 deep; a
manifest that is not an object, misses fields, names an unknown kind or format version, is huge (a sparse file,
no disk used), not UTF-8, empty; weights that are huge (sparse), truncated, with a header lying about shapes,
offsets or dtypes, with extra or missing tensors, NaN, inf or overflowing values, of the wrong dtype; thresholds
and calibrated levels that are negative, zero, NaN or inf; a bad envelope; weights or manifest as a symlink
leaving the directory, a directory, a FIFO (whose open would block), a dangling or looping symlink. A case whose
weights are rewritten gets the matching sha256 in its manifest, so it reaches the check it is aimed at.
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


# name -> (the ArtifactError.reason load_artifact gives, how the case is made from a copy of the good artifact)
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
    "scaler_offset_beyond_float32": ("non_finite", _scaler(offset=lambda v: [1e39] * len(v))),
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
    "weights_overflowing_output": ("non_finite", _tensors(_all_values(3e38))),
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
    _, make = _CASES[name]
    target = Path(target_dir)
    _clear(target)
    shutil.copytree(good_artifact_dir, target)
    make(target)
    return target


def hostile_artifacts(tmpdir: str | Path, good_artifact_dir: str | Path) -> list[tuple[str, Path]]:
    """Every case, each in ``tmpdir/<name>``: [(name, artifact directory)] in CASE_NAMES order."""
    root = Path(tmpdir)
    root.mkdir(parents=True, exist_ok=True)
    return [(name, build_case(name, good_artifact_dir, root / name)) for name in CASE_NAMES]


def overflowing_off_the_mean(good_artifact_dir: str | Path, target_dir: str | Path) -> Path:
    """An artifact that load_artifact accepts, probe included, and that scores inf on any real window: its first
    sensor's scaler is centred exactly on the training mean with a scale of 1e-30, so the probe's windows (at the
    mean, and half a scale above it) scale to 0, while a live value more than 2e-11 from the mean scales past
    2e19 and its squared error (a detector's, or a forecaster's residual) beyond float32. What a reload's
    probation must catch (monitor/probation.py). Returns target."""
    target = Path(target_dir)
    _clear(target)
    shutil.copytree(good_artifact_dir, target)
    manifest = _load_manifest(target)
    sensor = manifest["sensors"][0]
    mean = (manifest.get("envelope") or {}).get("sensors", {}).get(sensor, {}).get("mean")
    if mean is not None:
        manifest["scaler"]["offset"][0] = mean
    manifest["scaler"]["scale"][0] = 1e-30
    _write_manifest(target, manifest)
    return target
