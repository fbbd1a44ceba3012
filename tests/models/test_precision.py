"""scheduler.precision on the torch path: a reduced-precision copy is checked against fp32 on the reference windows
and refused when its scores move too far from the threshold's fp32 footing (models/artifacts.py step 7).

There is no GPU here: the check runs on the CPU, where torch computes fp16 and bf16 LSTMs in a converted copy the
same way models/inference.py applies the precision on CUDA; what CUDA's kernels do to the scores is not run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.artifacts import ArtifactError, load_artifact, precision_scores, read_reference
from models.serving import load_for_serving


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", ["lstm_ae", "lstm", "seq2seq"])
def test_a_reduced_precision_within_the_tolerance_is_served(kind: str, precision: str, artifact_factory) -> None:  # type: ignore[no-untyped-def]
    import torch

    path = artifact_factory(kind)
    full = load_artifact(path)
    reduced = load_artifact(path, precision=precision)
    assert reduced.precision == precision and full.precision == "fp32"
    assert next(reduced.module.parameters()).dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    reference = read_reference(full.manifest, Path(path))
    assert reference is not None
    a = precision_scores(full, reference.windows, reference.actual)
    b = precision_scores(reduced, reference.windows, reference.actual)
    shift = np.nanmax(np.abs(b.astype(np.float64) - a) / full.threshold)
    assert 0 < shift <= 0.02  # really computed in another precision, and within the tolerance
    print(f"{kind} {precision}: scores move by up to {shift:.3%} of the threshold on 32 reference windows")


def test_a_precision_that_moves_the_scores_too_far_is_refused(
    artifact_factory, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("models.artifacts.PRECISION_TOLERANCE", 1e-9)
    path = artifact_factory("lstm_ae")
    with pytest.raises(ArtifactError, match="precision bf16 is refused for this model") as info:
        load_artifact(path, precision="bf16")
    assert info.value.reason == "precision" and "serve it in fp32" in str(info.value)
    assert load_artifact(path).precision == "fp32"  # fp32 is never refused for this


def test_an_artifact_without_reference_windows_is_checked_on_synthetic_ones(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from models.hostile import without_onnx

    old = without_onnx(shutil.copytree(artifact_factory("lstm"), tmp_path / "old"))
    assert load_artifact(old, precision="bf16").precision == "bf16"


def test_the_cpu_serving_path_refuses_a_reduced_precision(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="applies on CUDA only"):
        load_for_serving(artifact_factory("lstm_ae"), "cpu", precision="bf16")
    with pytest.raises(ValueError, match="unknown precision"):
        load_artifact(artifact_factory("lstm_ae"), precision="int8")
