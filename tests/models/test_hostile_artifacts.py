"""The hostile artifact corpus (models/hostile.py): every case is an ArtifactError with its reason, in process,
without a crash, a hang (FIFOs) or an allocation the limits did not bound; from the torch loader (load_artifact)
and from the serving loader on the CPU (models.serving.load_for_serving: ONNX Runtime) alike, and the cases aimed at
model.onnx and its reference from the serving loader (the torch loader, which does not read them, loads most)."""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.artifact_io import ARTIFACT_ERROR_REASONS, json_depth
from models.artifacts import LIMITS, ArtifactError, load_artifact, probe_windows
from models.hostile import (
    CASE_NAMES,
    EXPECTED_REASONS,
    ONNX_CASE_NAMES,
    ONNX_EXPECTED_REASONS,
    ONNX_TORCH_REASONS,
    build_case,
    hostile_artifacts,
)
from models.onnx_model import OnnxModel
from models.serving import load_for_serving
from tests.models.conftest import SENSORS

LOADERS = {"torch": load_artifact, "onnx": load_for_serving}


def test_the_corpus_has_at_least_30_cases_and_known_reasons() -> None:
    assert len(CASE_NAMES) >= 30
    assert set(EXPECTED_REASONS.values()) <= set(ARTIFACT_ERROR_REASONS)
    assert set(ONNX_EXPECTED_REASONS.values()) | {r for r in ONNX_TORCH_REASONS.values() if r} <= set(
        ARTIFACT_ERROR_REASONS
    )
    assert not set(CASE_NAMES) & set(ONNX_CASE_NAMES)
    # the categories the hardening issue lists are all there
    for name in ("hidden_size_1e6", "brackets_100k", "weights_nan", "weights_fifo", "weights_symlink_outside"):
        assert name in CASE_NAMES


def _refused(load: object, path: Path, reason: str) -> ArtifactError:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ArtifactError) as info:
        load(path)  # type: ignore[operator]
    assert info.value.reason == reason, str(info.value)
    assert str(path) in str(info.value)
    # Refused before anything big was allocated (ru_maxrss is in KiB on Linux): the limits act first.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 300 * 1024
    return info.value


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("kind", ["lstm_ae", "lstm"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_hostile_case_is_an_artifact_error(  # type: ignore[no-untyped-def]
    name: str, kind: str, loader: str, artifact_factory, tmp_path: Path
) -> None:
    good = artifact_factory(kind)
    path = build_case(name, good, tmp_path / name)
    error = _refused(LOADERS[loader], path, EXPECTED_REASONS[name])
    print(f"{name} ({kind}, {loader}): {error.reason}: {str(error).split(': ', 1)[1][:160]}")


@pytest.mark.parametrize("kind", ["lstm_ae", "lstm"])
@pytest.mark.parametrize("name", ONNX_CASE_NAMES)
def test_every_onnx_case_is_refused_by_the_serving_loader(
    name: str, kind: str, artifact_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = build_case(name, artifact_factory(kind), tmp_path / name)
    error = _refused(load_for_serving, path, ONNX_EXPECTED_REASONS[name])
    print(f"{name} ({kind}, onnx): {error.reason}: {str(error).split(': ', 1)[1][:160]}")
    torch_reason = ONNX_TORCH_REASONS[name]
    if torch_reason is None:  # the torch loader does not read model.onnx: the CUDA path serves such an artifact
        assert load_artifact(path).kind == kind
    else:
        _refused(load_artifact, path, torch_reason)


def test_hostile_artifacts_builds_every_case_and_leaves_the_good_one_alone(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = artifact_factory("lstm_ae")
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    cases = hostile_artifacts(tmp_path / "corpus", good)
    assert [name for name, _ in cases] == list(CASE_NAMES)
    assert all(path.parent == tmp_path / "corpus" for _, path in cases)
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert load_artifact(good).kind == "lstm_ae"
    assert isinstance(load_for_serving(good), OnnxModel)
    # build_case replaces what was there: a service's directory can be turned hostile and good again
    target = tmp_path / "served"
    shutil.copytree(good, target)
    build_case("weights_fifo", good, target)
    assert not (target / "weights.safetensors").is_file()
    shutil.rmtree(target)
    shutil.copytree(good, target)
    assert load_artifact(target).kind == "lstm_ae"


def test_sparse_huge_weights_are_refused_by_size_without_reading(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = build_case("weights_huge_sparse", artifact_factory("lstm_ae"), tmp_path / "case")
    weights = path / "weights.safetensors"
    assert os.stat(weights).st_blocks == 0  # sparse: no disk used by the test either
    with pytest.raises(ArtifactError, match="over the limit") as info:
        load_artifact(path)
    assert info.value.reason == "too_large"


def test_weights_limit_is_a_parameter(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    good = artifact_factory("lstm_ae")
    size = (good / "weights.safetensors").stat().st_size
    assert load_artifact(good, max_weights_bytes=size).kind == "lstm_ae"
    with pytest.raises(ArtifactError, match="bytes of float32 weights, over the limit") as info:
        load_artifact(good, max_weights_bytes=1000)  # the architecture alone is over it: refused before reading
    assert info.value.reason == "too_large"


def test_symlinks_inside_the_directory_are_followed(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A ConfigMap-style layout (files linked to a versioned subdirectory of the artifact) still loads."""
    path = tmp_path / "linked"
    shutil.copytree(artifact_factory("lstm_ae"), path / "..v1")
    for name in ("manifest.json", "weights.safetensors"):
        (path / name).symlink_to(Path("..v1") / name)
    assert load_artifact(path).kind == "lstm_ae"


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}], "c": "\\"[["}') == 3
    assert json_depth(b"[" * 1000) == 1000
    assert json_depth(b"") == 0
    assert json_depth(b'"unterminated [[[') == 3  # invalid JSON: an over-estimate, refused either way


def test_limits_table_names_every_hyperparameter_of_every_kind() -> None:
    from models.networks import KINDS

    for spec in KINDS.values():
        assert set(spec.seed_hyperparameters) <= set(LIMITS)


def test_probe_windows_sit_at_the_training_mean(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    model = load_artifact(artifact_factory("lstm_ae"))
    windows = probe_windows(model)
    assert windows.shape == (2, model.window, len(SENSORS))
    assert model.envelope is not None
    means = [model.envelope["sensors"][s]["mean"] for s in SENSORS]
    assert np.allclose(windows[0, 0], means, rtol=1e-6)
    assert np.isfinite(model.infer(windows).scores).all()  # type: ignore[arg-type]
