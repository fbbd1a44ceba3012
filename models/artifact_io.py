"""Reading an artifact's files without trusting them: bounded sizes, regular files only, bounded JSON, checked headers;
and writing them so that a reader never sees half a file. No torch: every kind's writer and loader use it.

API:
    ArtifactError(message, reason, path)          # a refused artifact; reason in ARTIFACT_ERROR_REASONS
    read_artifact_file(directory, name, max_bytes) -> bytes
    parse_json(raw, what, directory, max_depth) -> Any
    safetensors_layout(data, name, directory) -> {tensor name: (dtype, shape)}
    atomic_write(path, data); write_manifest(directory, manifest)   # write then rename; sorted, indented, no NaN
    library_versions() -> {"plantwatch", "python", "numpy", "safetensors": version}   # a manifest's ``versions``

``read_artifact_file``: ``name`` must be a regular file inside ``directory`` (a symlink is followed only when its
target resolves inside the directory: a ConfigMap-style ``..data`` link is fine, ``/etc/shadow`` is not), no larger
than ``max_bytes``. Both are decided from ``lstat``/``stat`` *before* the file is opened, so a FIFO (whose open
would block the process) and a sparse 1 TB file are refused without a read; the file is then opened with
``O_NOFOLLOW | O_NONBLOCK`` and checked again on the open descriptor (a file swapped in between is refused too).

``parse_json``: the nesting depth is measured before ``json.loads`` (100,000 ``[`` would exhaust the parser's
recursion), strings must be UTF-8, and NaN / Infinity are refused; numbers that overflow a float (1e400) are
left to the caller's finite checks.

``safetensors_layout``: reads the safetensors header (an 8-byte little-endian length, then a JSON object) itself,
so that every tensor's dtype, shape and byte range can be checked against the architecture before
``safetensors`` allocates anything: offsets inside the buffer, contiguous, covering it exactly, each range as long
as its shape and dtype say.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ARTIFACT_ERROR_REASONS: tuple[str, ...] = (
    "missing",  # directory, manifest, weights, ONNX or reference file not there
    "invalid_manifest",  # not JSON, nested too deep, non-finite numbers, a missing, mistyped or out-of-range field
    "format_version",  # a format_version this code does not read
    "unsafe_format",  # weights not in safetensors (pickle, .pt, ...), a file outside the directory or not regular
    "too_large",  # a file or the architecture its hyperparameters describe is over a limit
    "checksum",  # a file's sha256 (weights, ONNX graph, reference) differs from the manifest
    "corrupt",  # weights or reference not a readable safetensors file, an ONNX graph ONNX Runtime cannot build
    "shape_mismatch",  # tensors, or the ONNX graph's inputs / outputs, do not fit the manifest
    "non_finite",  # NaN / inf weights, or the model scores a probe window as NaN / inf
    "scaler",  # scaler parameters invalid
    "sensor_mismatch",  # sensors differ from what the caller expects
    "onnx_mismatch",  # model.onnx exported from other weights / scaler, or scoring its reference unlike torch
    "precision",  # a reduced precision (fp16 / bf16) moves the model's scores too far from fp32's
)

# A safetensors header lists a few dozen tensors: a few KB. Bounded so a lying length cannot make us slice or
# parse gigabytes; it is counted inside the weights file's own limit anyway.
MAX_SAFETENSORS_HEADER_BYTES = 1024 * 1024
# A header is {name: {dtype, shape, data_offsets}, "__metadata__": {...}}: depth 3.
MAX_SAFETENSORS_HEADER_DEPTH = 4
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


MANIFEST_FILE = "manifest.json"  # models.manifest.MANIFEST_NAME (which imports this module)


def atomic_write(path: Path, data: bytes) -> None:
    """Write then rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """The manifest as every artifact writer writes it (sorted keys, indented, no NaN), atomically."""
    text = json.dumps(manifest, sort_keys=True, indent=2, allow_nan=False) + "\n"
    atomic_write(out / MANIFEST_FILE, text.encode("utf-8"))


def library_versions() -> dict[str, str]:
    """The versions a manifest records whatever the kind (the torch writer adds torch's)."""
    import safetensors

    try:
        from importlib.metadata import version

        plantwatch_version = version("plantwatch")
    except Exception:
        plantwatch_version = "unknown"
    return {
        "plantwatch": plantwatch_version,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


class ArtifactError(ValueError):
    """A model artifact that is refused; ``reason`` is one of ``ARTIFACT_ERROR_REASONS``."""

    def __init__(self, message: str, reason: str, path: Path | str | None = None) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        prefix = f"model artifact {self.path}: " if self.path is not None else "model artifact: "
        super().__init__(prefix + message)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _check_regular(st: os.stat_result, name: str, max_bytes: int, directory: Path) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{name} is {_file_kind(st.st_mode)}, not a regular file", "unsafe_format", directory)
    if st.st_size > max_bytes:
        raise ArtifactError(
            f"{name} is {st.st_size} bytes, over the limit of {max_bytes} bytes", "too_large", directory
        )


def read_artifact_file(directory: Path, name: str, max_bytes: int) -> bytes:
    """The bytes of regular file ``name`` inside ``directory``, at most ``max_bytes``; see the module docstring."""
    path = directory / name
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            target = path.resolve(strict=True)
            if not target.is_relative_to(directory.resolve(strict=True)):
                raise ArtifactError(
                    f"{name} is a symlink to {target}, outside the artifact directory", "unsafe_format", directory
                )
            path, st = target, os.lstat(target)  # resolved: no symlink left in the path
    except FileNotFoundError:
        raise ArtifactError(f"{name} is missing", "missing", directory) from None
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError on 3.11), permissions, ...
        raise ArtifactError(f"{name} cannot be read: {exc}", "missing", directory) from exc
    _check_regular(st, name, max_bytes, directory)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ArtifactError(f"{name} cannot be opened: {exc}", "unsafe_format", directory) from exc
    with os.fdopen(fd, "rb") as handle:
        _check_regular(os.fstat(handle.fileno()), name, max_bytes, directory)  # the file actually opened
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise ArtifactError(f"{name} is over the limit of {max_bytes} bytes", "too_large", directory)
    return data


# A JSON string (escapes included); possessive, so a hostile run of quotes and backslashes cannot backtrack.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)


def json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON text ``raw`` (brackets inside strings do not count); no parsing."""
    structure = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    step = (np.isin(structure, (ord("["), ord("{"))).astype(np.int64)) - np.isin(structure, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not allowed")


def parse_json(raw: bytes, what: str, directory: Path, max_depth: int) -> Any:
    """``raw`` as JSON, nested at most ``max_depth`` deep, UTF-8, without NaN / Infinity; else ArtifactError."""
    depth = json_depth(raw)
    if depth > max_depth:
        raise ArtifactError(
            f"{what} is nested {depth} levels deep, over the limit of {max_depth}", "invalid_manifest", directory
        )
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{what} is not UTF-8: {exc}", "invalid_manifest", directory) from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: belt and braces behind the depth bound
        raise ArtifactError(f"{what} is not valid JSON: {exc}", "invalid_manifest", directory) from exc


def safetensors_layout(data: bytes, name: str, directory: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Check the safetensors header of ``data``; ``{tensor: (dtype, shape)}``. See the module docstring."""

    def corrupt(message: str) -> ArtifactError:
        return ArtifactError(f"weights file {name} is not a valid safetensors file: {message}", "corrupt", directory)

    if len(data) < 8:
        raise corrupt(f"{len(data)} bytes, shorter than the header length field")
    length = int.from_bytes(data[:8], "little")
    if length > MAX_SAFETENSORS_HEADER_BYTES or 8 + length > len(data):
        raise corrupt(f"header length {length} does not fit the file ({len(data)} bytes)")
    try:
        header = parse_json(data[8 : 8 + length], "the safetensors header", directory, MAX_SAFETENSORS_HEADER_DEPTH)
    except ArtifactError as exc:
        raise corrupt(str(exc).split(": ", 1)[-1]) from exc
    if not isinstance(header, dict):
        raise corrupt("the header is not a JSON object")
    buffer_bytes = len(data) - 8 - length
    layout: dict[str, tuple[str, tuple[int, ...]]] = {}
    ranges: list[tuple[int, int, str]] = []
    for tensor, entry in header.items():
        if tensor == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise corrupt(f"tensor {tensor!r}: entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise corrupt(f"tensor {tensor!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and 0 <= d < 2**40 for d in shape):
            raise corrupt(f"tensor {tensor!r}: shape must be a list of non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise corrupt(f"tensor {tensor!r}: data_offsets must be two integers")
        begin, end = offsets
        if not 0 <= begin <= end <= buffer_bytes:
            raise corrupt(f"tensor {tensor!r}: data_offsets {offsets} outside the {buffer_bytes}-byte buffer")
        if end - begin != math.prod(shape) * _DTYPE_BYTES[dtype]:
            raise corrupt(f"tensor {tensor!r}: {end - begin} bytes for shape {shape} of {dtype}")
        layout[tensor] = (dtype, tuple(shape))
        ranges.append((begin, end, tensor))
    position = 0
    for begin, end, tensor in sorted(ranges):
        if begin != position:
            raise corrupt(f"tensor {tensor!r}: data_offsets overlap or leave a gap at byte {position}")
        position = end
    if position != buffer_bytes:
        raise corrupt(f"the tensors cover {position} of the {buffer_bytes} buffer bytes")
    return layout
