"""The edits a hostile case makes to a fresh copy of the good artifact: its manifest, its weights file, its files.

API (builders for models/hostile.py's case table; each returns or is a ``Case``, a function that edits the
artifact directory in place)::

    MANIFEST, WEIGHTS, ONNX, REFERENCE        # the artifact's file names
    _load_manifest(d), _write_manifest(d, m)  # the manifest as a dict, unchecked
    _edit(kind=...), _edit_in("threshold", value=-1.0), _replace_in_manifest("threshold.value", "NaN"),
    _manifest_text("[" * 100_000), _envelope_stat("mean", "NaN"), _scaler(scale=...), _sensors(100_000), ...
    _sparse(WEIGHTS, size_of)                 # a sparse file: huge on paper, no disk used
    _weights_bytes(edit), _weights_header(edit), _tensors(edit)   # the weights rewritten, sha256 made to match
    _symlink_outside(name), _symlink(name, target), _as_directory(name), _as_fifo(name)
    _off_the_mean(d)                          # the scaler of overflowing_off_the_mean (not refused at load)

Why apart from the table: the table (models.hostile) is what a reader or a new kind's cases change, one line a
case; how each file is made hostile is the same for every kind and lives here. The names keep their leading
underscore: they are the corpus's builders, imported by models.hostile alone, not an API. A case whose weights
are rewritten gets the matching sha256 in its manifest, so it reaches the check it is aimed at.
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


def _off_the_mean(target: Path) -> None:
    manifest = _load_manifest(target)
    sensor = manifest["sensors"][0]
    mean = (manifest.get("envelope") or {}).get("sensors", {}).get(sensor, {}).get("mean")
    if mean is not None:
        manifest["scaler"]["offset"][0] = mean
    manifest["scaler"]["scale"][0] = 1e-30
    _write_manifest(target, manifest)
