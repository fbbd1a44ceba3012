"""Artifacts: save -> load is bitwise identical; tampered or unsafe artifacts are refused, nothing is unpickled."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models.artifacts import ARTIFACT_ERROR_REASONS, ArtifactError, load_artifact, save_artifact
from models.device import resolve_device
from models.networks import KINDS, NETWORK_KINDS
from models.preprocessing import sliding_windows
from tests.models.conftest import SENSORS

ALL_KINDS = NETWORK_KINDS  # the torch loader's kinds (the pca's artifact: tests/models/test_contract.py)


def _windows(data: np.ndarray, window: int, count: int = 40) -> np.ndarray:
    return np.ascontiguousarray(sliding_windows(data[-(window + count - 1) :], window), dtype=np.float32)


def _copy(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(path, target)
    return target


def _edit_manifest(path: Path, **changes: object) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_load_gives_bitwise_identical_outputs(
    kind: str,
    artifact_factory,  # type: ignore[no-untyped-def]
    normal_data: np.ndarray,
    tmp_path: Path,
) -> None:
    path = artifact_factory(kind)
    first = load_artifact(path, expected_sensors=SENSORS)
    windows = _windows(normal_data, first.window)
    a = first.infer(windows)
    # Save the loaded module again under a new directory, then load that: the outputs must not move by one bit.
    second_path = save_artifact(tmp_path / "again", first.module, {k: v for k, v in first.manifest.items()})
    second = load_artifact(second_path, expected_sensors=SENSORS)
    b = second.infer(windows)
    for field in ("scores", "sensor_errors", "forecasts", "attention"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            assert x.tobytes() == y.tobytes(), field
    print(f"{kind}: role={first.role} threshold={first.threshold:.5f} ({first.threshold_method})")
    assert first.kind == kind
    assert first.sensors == SENSORS
    assert first.role == KINDS[kind].role
    assert np.isfinite(first.threshold) and first.threshold > 0
    manifest_text = (path / "manifest.json").read_text()
    assert manifest_text == json.dumps(json.loads(manifest_text), sort_keys=True, indent=2) + "\n"
    manifest = json.loads(manifest_text)
    for key in ("format_version", "hyperparameters", "period_s", "scaler", "threshold", "training", "versions"):
        assert key in manifest, key
    assert manifest["created"].endswith("+00:00")
    assert manifest["training"]["data"]["rows"] == normal_data.shape[0]
    assert len(manifest["weights"]["sha256"]) == 64


def test_infer_shapes_and_scores(artifact_factory, normal_data: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    det = load_artifact(artifact_factory("lstm_ae"))
    r = det.infer(_windows(normal_data, det.window, 7))
    assert r.scores is not None and r.sensor_errors is not None
    assert r.scores.shape == (7,) and r.sensor_errors.shape == (7, len(SENSORS))
    assert np.array_equal(r.scores, r.sensor_errors.mean(axis=1))
    assert r.forecasts is None and r.attention is None
    assert det.horizon == 0

    s2s = load_artifact(artifact_factory("seq2seq"))
    r = s2s.infer(_windows(normal_data, s2s.window, 3))
    assert r.forecasts is not None and r.forecasts.shape == (3, 10, len(SENSORS))
    assert s2s.horizon == 10 and r.scores is None

    att = load_artifact(artifact_factory("attention_lstm"))
    r = att.infer(_windows(normal_data, att.window, 5))
    assert att.has_attention and r.attention is not None and r.attention.shape == (5, att.window)
    assert np.allclose(r.attention.sum(axis=1), 1.0, atol=1e-5)

    # residual score: squared scaled residual, mean over sensors
    forecast = normal_data[:4].astype(np.float32)
    actual = forecast + np.asarray(att.scaler.scale, dtype=np.float32)  # one scale unit off on every sensor
    score, per_sensor = att.residual_score(forecast, actual)
    assert per_sensor.shape == (4, len(SENSORS))
    assert np.allclose(per_sensor, 1.0, rtol=1e-4) and np.allclose(score, 1.0, rtol=1e-4)

    # a window with a sensor that has no value at all scores NaN; short gaps are filled
    windows = _windows(normal_data, det.window, 2).copy()
    windows[0, :, 1] = np.nan
    windows[1, 3:6, 2] = np.nan
    r = det.infer(windows)
    assert r.scores is not None and np.isnan(r.scores[0]) and np.isfinite(r.scores[1])

    with pytest.raises(ValueError, match="expects windows"):
        det.infer(np.zeros((2, det.window + 1, len(SENSORS)), np.float32))


def test_to_device_copy_and_resolve_device(artifact_factory, normal_data: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    m = load_artifact(artifact_factory("gru"))
    m2 = m.to("cpu")
    windows = _windows(normal_data, m.window, 5)
    assert m2 is not m and m2.device == torch.device("cpu")
    assert np.array_equal(m.infer(windows).forecasts, m2.infer(windows).forecasts)  # type: ignore[arg-type]
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def _refused(path: Path, reason: str, match: str, **kwargs: object) -> ArtifactError:
    with pytest.raises(ArtifactError, match=match) as info:
        load_artifact(path, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert reason in ARTIFACT_ERROR_REASONS
    assert isinstance(info.value, ValueError)
    print(f"refused ({reason}): {info.value}")
    return info.value


def test_tampered_weights_are_refused(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _copy(artifact_factory("lstm_ae"), tmp_path)
    weights = path / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    weights.write_bytes(bytes(data))
    err = _refused(path, "checksum", "sha256 mismatch")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["weights"]["sha256"][:12] in str(err)


def test_missing_weights_and_directory_are_refused(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _copy(artifact_factory("lstm_ae"), tmp_path)
    (path / "weights.safetensors").unlink()
    _refused(path, "missing", "missing")
    _refused(tmp_path / "nowhere", "missing", "does not exist")


def test_altered_manifest_is_refused(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = artifact_factory("lstm_ae")
    # an architecture that the weights do not fit
    path = _copy(source, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    _edit_manifest(path, hyperparameters={**manifest["hyperparameters"], "hidden_size": 9})
    _refused(path, "shape_mismatch", "do not fit")
    # a different sha256 in the manifest
    shutil.rmtree(path)
    path = _copy(source, tmp_path)
    _edit_manifest(path, weights={**manifest["weights"], "sha256": "0" * 64})
    _refused(path, "checksum", "sha256 mismatch")
    # non-finite numbers are not JSON
    shutil.rmtree(path)
    path = _copy(source, tmp_path)
    text = (
        (path / "manifest.json")
        .read_text()
        .replace(f'"value": {json.dumps(manifest["threshold"]["value"])}', '"value": NaN')
    )
    (path / "manifest.json").write_text(text)
    _refused(path, "invalid_manifest", "not valid JSON")
    # a scaler that would divide by zero
    shutil.rmtree(path)
    path = _copy(source, tmp_path)
    _edit_manifest(path, scaler={**manifest["scaler"], "scale": [0.0] * len(SENSORS)})
    _refused(path, "scaler", "scale")


NEW_THRESHOLD_FIELDS = (
    "n_effective",
    "decorrelation_windows",
    "resolve_value",
    "resolve_quantile",
    "critical_value",
    "supported",
    "needed_rows",
    "holdout",
    "warnings",
    "message",
    "requested_method",
)


def test_old_manifest_without_calibration_fields_loads_with_fallback_levels(  # type: ignore[no-untyped-def]
    artifact_factory, tmp_path: Path
) -> None:
    source = artifact_factory("lstm_ae")
    current = load_artifact(source)
    assert current.envelope is not None and set(current.envelope["sensors"]) == set(SENSORS)
    assert current.resolve_level == current.calibration["resolve_value"] < current.threshold
    assert current.critical_level == current.calibration["critical_value"] > current.threshold
    path = _copy(source, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    old = {k: v for k, v in manifest["threshold"].items() if k not in NEW_THRESHOLD_FIELDS}
    old["calibration_rows"] = [2400, 3000]  # the former chronological split's one range
    del manifest["envelope"]
    manifest["threshold"] = old
    (path / "manifest.json").write_text(json.dumps(manifest))
    model = load_artifact(path)
    assert model.envelope is None and model.calibration == old
    assert model.resolve_level == pytest.approx(0.8 * model.threshold)
    assert model.critical_level == pytest.approx(2.0 * model.threshold)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"critical_value": 1e-6}, "critical_value is below"),
        ({"critical_value": 0.0}, "critical_value must be > 0"),
        ({"resolve_value": -1.0}, "resolve_value must be > 0"),
        ({"value": 0}, "threshold.value must be a finite number > 0"),
        ({"value": -2.5}, "threshold.value must be a finite number > 0"),
        ({"resolve_quantile": 1.5}, "resolve_quantile must be a number in"),
        ({"resolve_value": 1e9}, "resolve_value is above"),
        ({"n_effective": "many"}, "n_effective must be a finite number"),
        ({"supported": "yes"}, "supported must be true or false"),
        ({"needed_rows": -3}, "needed_rows"),
        ({"warnings": "none"}, "warnings must be a list"),
        ({"holdout": {"far": "high"}}, "holdout.far"),
    ],
)
def test_bad_calibration_fields_are_refused(change: dict, message: str, artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def,type-arg]
    path = _copy(artifact_factory("lstm_ae"), tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    _edit_manifest(path, threshold={**manifest["threshold"], **change})
    _refused(path, "invalid_manifest", message)


def test_bad_envelope_is_refused(artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _copy(artifact_factory("lstm_ae"), tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    envelope = manifest["envelope"]
    _edit_manifest(path, envelope={**envelope, "sensors": {"not_a_sensor": {}}})
    _refused(path, "invalid_manifest", "envelope.sensors")
    bad = {**envelope["sensors"], SENSORS[0]: {**envelope["sensors"][SENSORS[0]], "min": "low"}}
    _edit_manifest(path, envelope={**envelope, "sensors": bad})
    _refused(path, "invalid_manifest", f"envelope.sensors.{SENSORS[0]}")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_format_version_is_refused(version: object, artifact_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _copy(artifact_factory("lstm_ae"), tmp_path)
    _edit_manifest(path, format_version=version)
    _refused(path, "format_version", "unsupported format_version")


def test_wrong_sensors_are_refused(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    path = artifact_factory("lstm_ae")
    _refused(path, "sensor_mismatch", "missing from the model", expected_sensors=[*SENSORS[:-1], "pressure_bar"])
    _refused(path, "sensor_mismatch", "different order", expected_sensors=tuple(reversed(SENSORS)))
    assert load_artifact(path, expected_sensors=list(SENSORS)).sensors == SENSORS


class _Payload:
    """Unpickling this creates a marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_in_place_of_weights_is_refused_and_never_unpickled(
    artifact_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "unpickled-marker"
    payload = pickle.dumps(_Payload(marker))
    calls: list[str] = []

    def forbidden(name: str):  # type: ignore[no-untyped-def]
        def fail(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} called while loading an artifact")

        return fail

    monkeypatch.setattr(pickle, "load", forbidden("pickle.load"))
    monkeypatch.setattr(pickle, "loads", forbidden("pickle.loads"))
    monkeypatch.setattr(torch, "load", forbidden("torch.load"))

    source = artifact_factory("lstm_ae")
    # 1. a pickle written over weights.safetensors: the checksum no longer matches
    path = _copy(source, tmp_path)
    (path / "weights.safetensors").write_bytes(payload)
    _refused(path, "checksum", "sha256 mismatch")
    # 2. the same, with the manifest's sha256 updated to match: still not a safetensors file
    import hashlib

    manifest = json.loads((path / "manifest.json").read_text())
    _edit_manifest(path, weights={**manifest["weights"], "sha256": hashlib.sha256(payload).hexdigest()})
    _refused(path, "corrupt", "not a valid safetensors file")
    # 3. a manifest pointing at a pickle file (model.pt) or outside the directory
    shutil.rmtree(path)
    path = _copy(source, tmp_path)
    (path / "model.pt").write_bytes(payload)
    _edit_manifest(path, weights={"file": "model.pt", "sha256": hashlib.sha256(payload).hexdigest()})
    _refused(path, "unsafe_format", "only a .safetensors file")
    _edit_manifest(path, weights={"file": "../weights.safetensors", "sha256": "0" * 64})
    _refused(path, "unsafe_format", "only a .safetensors file")
    # a good artifact still loads with pickle and torch.load forbidden
    assert load_artifact(source).kind == "lstm_ae"
    assert not marker.exists()
    assert calls == []
