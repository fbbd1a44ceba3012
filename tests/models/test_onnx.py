"""The ONNX serving path: every kind exports at training and scores like torch; the ScoringEngine gives the same
Scores on both runtimes; loading an ONNX artifact leaves torch out of the process; an old artifact still loads (on
torch, with a warning) and `plantwatch export-onnx` upgrades it."""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.artifacts import load_artifact
from models.hostile import without_onnx
from models.inference import LoadedModel
from models.kinds import KINDS, NETWORK_KINDS, tensor_shapes
from models.networks import build_model
from models.onnx_export import TOLERANCE, OnnxExportError, export_onnx
from models.onnx_model import OnnxModel, load_onnx_artifact
from models.preprocessing import sliding_windows
from models.reference import compare, outputs_of, with_missing_values
from models.serving import load_for_serving
from monitor.messages import WindowJob
from monitor.scoring import ScoringEngine
from monitor.scoring_records import UnitModels
from tests.models.conftest import SENSORS, tiny_config

ALL_KINDS = NETWORK_KINDS  # the kinds with an ONNX graph (the pca has none: numpy serves it)
ROOT = Path(__file__).resolve().parents[2]


def _windows(data: np.ndarray, window: int, count: int) -> np.ndarray:
    return np.ascontiguousarray(sliding_windows(data[-(window + count - 1) :], window), dtype=np.float32)


def _outputs(model: object, windows: np.ndarray) -> dict[str, np.ndarray]:
    result = model.infer(windows)  # type: ignore[attr-defined]
    return {
        name: value
        for name in ("scores", "sensor_errors", "forecasts", "attention")
        if (value := getattr(result, name)) is not None
    }


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_exports_at_training_and_scores_like_torch(
    kind: str,
    artifact_factory,  # type: ignore[no-untyped-def]
    normal_data: np.ndarray,
) -> None:
    path = artifact_factory(kind)
    manifest = json.loads((path / "manifest.json").read_text())
    section = manifest["onnx"]
    assert section["file"] == "model.onnx" and section["bytes"] == (path / "model.onnx").stat().st_size
    assert section["opset"] == 17 and "dynamo=False" in section["exporter"]
    assert section["reference"]["windows"] == 32 and section["reference"]["source"] == "calibration"
    assert section["reference"]["missing_windows"] == 4
    assert section["tolerance"] == {name: TOLERANCE[name] for name in section["max_diff"]}
    torch_model = load_artifact(path)
    onnx_model = load_for_serving(path, "cpu")
    assert isinstance(onnx_model, OnnxModel) and str(onnx_model.device) == "cpu"
    for attr in ("name", "kind", "role", "sensors", "window", "horizon", "period_s", "score_steps", "threshold"):
        assert getattr(onnx_model, attr) == getattr(torch_model, attr), attr
    assert onnx_model.threshold_method == torch_model.threshold_method
    assert onnx_model.has_attention == torch_model.has_attention == (kind == "attention_lstm")
    assert (onnx_model.resolve_level, onnx_model.critical_level) == (
        torch_model.resolve_level,
        torch_model.critical_level,
    )
    clean = _windows(normal_data, torch_model.window, 300)
    worst: dict[str, float] = {}
    for label, windows in (("clean", clean), ("missing", with_missing_values(clean)), ("one", clean[:1])):
        a, b = _outputs(onnx_model, windows), _outputs(torch_model, windows)
        assert a.keys() == b.keys()
        tolerance = {name: TOLERANCE.get(name, TOLERANCE["sensor_errors"]) for name in b}
        diffs, problem = compare(a, b, tolerance)
        assert problem is None, (label, problem)
        for name, diff in diffs.items():
            worst[f"{name} abs"] = max(worst.get(f"{name} abs", 0.0), diff["abs"])
            worst[f"{name} rel"] = max(worst.get(f"{name} rel", 0.0), diff["rel"])
        if label == "missing":  # the window without any value of one sensor: NaN there, finite elsewhere
            nan_rows = np.isnan(a["scores"] if "scores" in a else a["forecasts"][:, 0, :].sum(axis=1))
            assert nan_rows.sum() == 1
    print(
        f"{kind}: export {section['seconds']:.2f} s, max |onnx - torch| "
        + ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
    )


@pytest.mark.parametrize("kind", ["lstm_ae", "seq2seq", "attention_lstm"])
def test_batches_of_any_size_and_an_empty_one(kind: str, artifact_factory, normal_data: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    model = load_for_serving(artifact_factory(kind))
    torch_model = load_artifact(artifact_factory(kind))
    windows = _windows(normal_data, model.window, 64)
    for size in (1, 2, 3, 17, 64):
        a, b = _outputs(model, windows[:size]), _outputs(torch_model, windows[:size])
        for name in b:
            assert a[name].shape == b[name].shape
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5)
    empty = model.infer(np.zeros((0, model.window, len(SENSORS)), np.float32))
    reference = torch_model.infer(np.zeros((0, model.window, len(SENSORS)), np.float32))
    for name in ("scores", "sensor_errors", "forecasts", "attention"):
        x, y = getattr(empty, name), getattr(reference, name)
        assert (x is None) == (y is None) and (x is None or x.shape == y.shape), name
    with pytest.raises(ValueError, match="expects windows"):
        model.infer(np.zeros((2, model.window + 1, len(SENSORS)), np.float32))


def test_to_cpu_is_the_model_and_another_device_is_a_clear_error(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    model = load_for_serving(artifact_factory("lstm_ae"))
    assert model.to("cpu") is model
    with pytest.raises(ValueError, match="served by ONNX Runtime on the CPU"):
        model.to("cuda")


def test_the_scoring_engine_gives_the_same_scores_on_both_runtimes(artifact_factory, normal_data: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    names = {"det": "lstm_ae", "fc": "lstm", "att": "attention_lstm"}

    def engine(loader: object) -> ScoringEngine:
        models = {name: loader(artifact_factory(kind)) for name, kind in names.items()}  # type: ignore[operator]
        units = {
            "A": UnitModels(SENSORS, 1.0, detector="det", forecaster="fc"),
            "B": UnitModels(SENSORS[::-1], 1.0, detector="det", forecaster="att"),  # the model's order differs
        }
        return ScoringEngine(units, models)

    torch_engine, onnx_engine = engine(load_artifact), engine(load_for_serving)
    assert all(isinstance(m, OnnxModel) for m in onnx_engine.models.values())
    assert all(isinstance(m, LoadedModel) for m in torch_engine.models.values())
    w = 16
    rows = normal_data[-80:].astype(np.float32)
    rows[40:43, 2] = np.nan  # a short gap: filled inside the windows that hold it
    for first in (w, w + 30):  # two batches: the second compares forecasts made in the first
        jobs = []
        for k in range(first, first + 30):
            window = rows[k - w + 1 : k + 1]
            jobs.append(WindowJob("A", 1000.0 + k, window, received_at=1000.0 + k, source_ts=1000.0 + k))
            jobs.append(
                WindowJob("B", 1000.0 + k, window[:, ::-1].copy(), received_at=1000.0 + k, source_ts=1000.0 + k)
            )
        a, b = torch_engine.run(jobs), onnx_engine.run(jobs)
        assert len(a.scores) == len(b.scores) > 0 and a.non_finite == b.non_finite
        for x, y in zip(a.scores, b.scores, strict=True):
            assert (x.unit, x.detector, x.model, x.ts, x.attention_steps) == (
                y.unit,
                y.detector,
                y.model,
                y.ts,
                y.attention_steps,
            )
            assert (x.threshold, x.resolve_level, x.critical_level) == (y.threshold, y.resolve_level, y.critical_level)
            assert x.score == pytest.approx(y.score, rel=1e-4, abs=1e-6)
            assert x.sensor_errors.keys() == y.sensor_errors.keys()
            for s in x.sensor_errors:
                assert x.sensor_errors[s] == pytest.approx(y.sensor_errors[s], rel=1e-4, abs=1e-6)
        for f, g in zip(a.forecasts, b.forecasts, strict=True):
            np.testing.assert_allclose(f.values, g.values, rtol=1e-5, atol=1e-5)
    forecast_scores = [s for s in b.scores if s.detector == "forecast"]
    assert forecast_scores and any(s.attention_steps for s in forecast_scores)


TORCH_FREE = """
import sys
from models.device import serving_device
from models.serving import load_for_serving
assert serving_device("auto") == "cpu" and serving_device("cpu") == "cpu"
model = load_for_serving(sys.argv[1], serving_device("auto"))
import numpy as np
scores = model.infer(np.full((4, model.window, len(model.sensors)), 1.0, np.float32))
print(type(model).__name__, "torch" in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))[:3])
"""


def test_loading_an_onnx_artifact_imports_no_torch(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    if Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir():
        pytest.skip("an NVIDIA device is present: 'auto' asks torch about CUDA here")
    path = artifact_factory("lstm_ae")
    result = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OnnxModel", "False", "[]"], result.stdout


def test_an_old_artifact_loads_on_torch_with_a_warning_and_export_onnx_upgrades_it(  # type: ignore[no-untyped-def]
    artifact_factory, normal_data: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    from monitor.commands.export_onnx import main

    old = without_onnx(shutil.copytree(artifact_factory("lstm"), tmp_path / "old"))
    assert not (old / "model.onnx").exists() and "onnx" not in json.loads((old / "manifest.json").read_text())
    weights = (old / "weights.safetensors").read_bytes()
    with caplog.at_level(logging.WARNING, logger="models.serving"):
        model = load_for_serving(old, "cpu")
    assert isinstance(model, LoadedModel)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no ONNX graph" in warnings[0] and f"plantwatch export-onnx {old}" in warnings[0]
    windows = _windows(normal_data, model.window, 20)
    before = model.infer(windows)
    assert before.forecasts is not None and np.isfinite(before.forecasts).all()

    args = argparse.Namespace(dirs=[old])
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{old}: exported model.onnx" in out and "32 synthetic reference windows" in out
    assert (old / "weights.safetensors").read_bytes() == weights  # weights untouched
    manifest = json.loads((old / "manifest.json").read_text())
    assert manifest["onnx"]["reference"]["source"] == "synthetic" and "onnxruntime" in manifest["versions"]
    upgraded = load_for_serving(old, "cpu")
    assert isinstance(upgraded, OnnxModel)
    after = upgraded.infer(windows)
    assert after.forecasts is not None
    np.testing.assert_allclose(after.forecasts, before.forecasts, rtol=1e-5, atol=1e-5)
    assert main(args) == 0
    assert f"{old}: already has a valid ONNX graph: left alone" in capsys.readouterr().out


def test_export_onnx_command_exits_2_naming_what_failed(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = shutil.copytree(artifact_factory("lstm_ae"), tmp_path / "broken")
    (broken / "weights.safetensors").write_bytes(b"not weights")
    good = without_onnx(shutil.copytree(artifact_factory("lstm_ae"), tmp_path / "good"))
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "export-onnx", str(broken), str(good), str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert errors[0].startswith(f"plantwatch export-onnx: checksum: model artifact {broken}: ")
    assert errors[1].startswith(f"plantwatch export-onnx: missing: model artifact {tmp_path / 'nowhere'}: ")
    assert result.stdout.startswith(f"{good}: exported model.onnx")
    assert isinstance(load_onnx_artifact(good), OnnxModel)


def test_export_fails_training_loudly_when_onnx_runtime_disagrees(  # type: ignore[no-untyped-def]
    normal_data: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.train import train_model

    # A tolerance of exactly 0: float32 kernels that sum in another order differ in the last bits somewhere.
    monkeypatch.setattr("models.onnx_export.TOLERANCE", {k: {"abs": 0.0, "rel": 0.0} for k in TOLERANCE})
    with pytest.raises(OnnxExportError, match="ONNX Runtime does not score like torch on 32 reference windows"):
        train_model(normal_data, SENSORS, tmp_path / "out", tiny_config("lstm_ae"), period_s=1.0)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_export_refuses_a_model_that_overflows_on_its_reference_windows(
    artifact_factory, normal_data: np.ndarray
) -> None:  # type: ignore[no-untyped-def]
    import torch

    model = load_artifact(artifact_factory("lstm_ae"))
    with torch.no_grad():
        for parameter in model.module.parameters():
            parameter.fill_(3e38)
    windows = with_missing_values(_windows(normal_data, model.window, 8))
    with pytest.raises(OnnxExportError, match="as NaN or inf where every sensor has a value"):
        export_onnx(model, windows, None, source="calibration")


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("layers", [1, 3])
def test_torch_free_tensor_shapes_equal_the_modules(kind: str, layers: int) -> None:
    horizon = 0 if KINDS[kind].role == "detector" else (1 if kind == "attention_lstm" else 4)
    sizes = {"hidden_size": 6, "num_layers": layers}
    module = build_model(kind, 3, 12, horizon, **sizes)
    assert tensor_shapes(kind, 3, 12, horizon, **sizes) == {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_reference_comparison_names_nan_and_tolerance_problems() -> None:
    expected = {"sensor_errors": np.array([[1.0, np.nan], [0.5, 0.25]], np.float32)}
    tolerance = {"sensor_errors": {"abs": 1e-3, "rel": 0.0}}
    diffs, problem = compare({"sensor_errors": expected["sensor_errors"] + 5e-4}, expected, tolerance)
    assert problem is None and math.isclose(diffs["sensor_errors"]["abs"], 5e-4, rel_tol=1e-3)
    _, problem = compare({"sensor_errors": expected["sensor_errors"] + 2e-3}, expected, tolerance)
    assert problem is not None and "3 of 3 values beyond the tolerance" in problem
    _, problem = compare({"sensor_errors": np.nan_to_num(expected["sensor_errors"])}, expected, tolerance)
    assert problem is not None and "NaN at 1 other positions" in problem


def test_reference_outputs_are_what_torch_scored(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    from models.artifacts import read_reference

    path = artifact_factory("attention_lstm")
    model = load_artifact(path)
    reference = read_reference(model.manifest, path)
    assert reference is not None and reference.actual is not None and reference.actual.shape == (32, len(SENSORS))
    again = outputs_of(model, model.infer(reference.windows))
    assert again.keys() == reference.outputs.keys() == {"forecasts", "attention"}
    for name, values in again.items():
        assert values.tobytes() == reference.outputs[name].tobytes(), name
