"""The model contract (models.model_api.ScoringModel), river-style: every check runs against every kind of the
registry (models.kinds.KINDS) on every runtime that serves it (models.kinds.RUNTIMES: torch eager and ONNX Runtime
for a network, numpy for the pca). A new kind or runtime is served once it passes this file.

The models are the tiny recipe of tests/models/conftest.py (``artifact_factory``: window 16, hidden 8, 2 epochs on
3,000 rows of models.synthetic.normal_process), trained once per session and shared with the other model tests;
the windows they score here are a later stretch of the same process (``fresh`` below), never trained on.

What every (kind, runtime) must do:

- meet the Protocol, with the registry's role and horizon and calibrated levels in order;
- shapes: a detector's scores [B] and sensor_errors [B, S], a forecaster's forecasts [B, H, S] (attention [B, W]
  with attention), float32, for B = 0, 1, 5 and 37; a window of the wrong shape is a ValueError;
- the missing-value policy the ScoringEngine relies on (monitor/scoring.py: it drops a NaN score and judges a
  model on complete windows only): a window with a gap scores as that window filled inside itself
  (models.preprocessing.fill_windows), finite; a sensor with no value in a window makes exactly that sensor's
  outputs NaN (and a detector's score), nothing else;
- batched equals one by one, within BATCH_RTOL (the padding to a few batch sizes included);
- a detector's score is the mean of its sensor errors; a forecaster's residual_score is ((forecast - actual) /
  scale)² per sensor and their mean, as the threshold was calibrated on;
- save and load again (the runtime's own writer: safetensors for torch and the pca, the graph exported again for
  ONNX Runtime) scores bit for bit as before; ``to("cpu")`` too;
- ONNX Runtime equals torch within the export's tolerance (models.onnx_export.TOLERANCE), NaN at the same places;
- a quality floor on one big bias fault (``test_quality_floor``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.artifacts import load_artifact, read_reference, save_artifact
from models.inference import LoadedModel
from models.kinds import KINDS, NETWORK_KINDS, RUNTIMES
from models.model_api import InferenceResult, ScoringModel, padded_batch
from models.onnx_export import TOLERANCE, export_onnx
from models.onnx_model import OnnxModel, load_onnx_artifact
from models.pca import PcaDetector
from models.pca_artifact import load_pca_artifact, save_pca_artifact
from models.preprocessing import fill_windows, sliding_windows
from models.reference import compare, with_missing_values
from models.serving import load_for_serving
from models.synthetic import normal_process
from tests.models.conftest import SENSORS

ROOT = Path(__file__).resolve().parents[2]
CASES = [(kind, runtime) for kind in KINDS for runtime in RUNTIMES[kind]]
IDS = [f"{kind}-{runtime}" for kind, runtime in CASES]
LOADERS: dict[str, Callable[[Path], ScoringModel]] = {
    "torch": load_artifact,
    "onnx": load_onnx_artifact,
    "numpy": load_pca_artifact,
}
RUNTIME_TYPES = {"torch": LoadedModel, "onnx": OnnxModel, "numpy": PcaDetector}
FIELDS = ("scores", "sensor_errors", "forecasts", "attention")
W = 16  # tests/models/conftest.py tiny_config's window
# A window scored in a batch of B and alone: float32 reductions regrouped by the batch size (oneDNN and ONNX
# Runtime pick kernels per shape) move an output by a few ulps; 1e-5 relative is ~100 ulps, and far finer than any
# threshold's own uncertainty.
BATCH_RTOL, BATCH_ATOL = 1e-5, 1e-6
# float32 means of S values: a handful of ulps.
MEAN_RTOL = 1e-6


@pytest.fixture(scope="module")
def fresh() -> np.ndarray:
    """[1200, 5] the training process (same mixing, conftest's normal_data), later and with another seed."""
    return normal_process(1200, len(SENSORS), seed=12, start=3000)


@pytest.fixture(scope="module")
def served(artifact_factory) -> Callable[[str, str], ScoringModel]:  # type: ignore[no-untyped-def]
    """The model of ``kind`` loaded by ``runtime``'s loader (once per module)."""
    cache: dict[tuple[str, str], ScoringModel] = {}

    def get(kind: str, runtime: str) -> ScoringModel:
        if (kind, runtime) not in cache:
            cache[(kind, runtime)] = LOADERS[runtime](artifact_factory(kind))
        return cache[(kind, runtime)]

    return get


def _windows(data: np.ndarray, count: int, start: int = 0) -> np.ndarray:
    return np.ascontiguousarray(sliding_windows(data[start : start + count + W - 1], W), dtype=np.float32)


def _outputs(result: InferenceResult) -> dict[str, np.ndarray]:
    return {name: value for name in FIELDS if (value := getattr(result, name)) is not None}


def _bitwise_equal(a: InferenceResult, b: InferenceResult) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_meets_the_protocol_with_the_registry_s_description(
    kind: str,
    runtime: str,
    served: Callable[[str, str], ScoringModel],
    artifact_factory,  # type: ignore[no-untyped-def]
) -> None:
    model = served(kind, runtime)
    spec = KINDS[kind]
    assert isinstance(model, ScoringModel) and isinstance(model, RUNTIME_TYPES[runtime])
    assert (model.kind, model.role, model.sensors, model.window, model.period_s) == (kind, spec.role, SENSORS, W, 1.0)
    assert model.horizon == spec.default_horizon  # the tiny recipe takes each kind's default
    assert 0 < model.resolve_level <= model.threshold <= model.critical_level < np.inf
    assert model.envelope is not None and set(model.envelope["sensors"]) == set(SENSORS)
    assert str(model.device) == "cpu"
    # What the service loads on the CPU: the ONNX graph for a network, numpy for the pca.
    serving = load_for_serving(artifact_factory(kind), "cpu")
    assert type(serving) is (OnnxModel if spec.network else PcaDetector)


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_output_shapes_and_dtypes(
    kind: str, runtime: str, served: Callable[[str, str], ScoringModel], fresh: np.ndarray
) -> None:
    model = served(kind, runtime)
    s, h = len(SENSORS), model.horizon
    for batch in (0, 1, 5, 37):
        result = model.infer(_windows(fresh, batch) if batch else np.zeros((0, W, s), np.float32))
        if model.role == "detector":
            expected = {"scores": (batch,), "sensor_errors": (batch, s)}
        else:
            expected = {"forecasts": (batch, h, s)}
            if KINDS[kind].has_attention:
                expected["attention"] = (batch, W)
        got = _outputs(result)
        assert {name: value.shape for name, value in got.items()} == expected, batch
        assert all(value.dtype == np.float32 for value in got.values())
        assert all(np.isfinite(value).all() for value in got.values())
    for wrong in ((2, W + 1, s), (2, W, s - 1), (W, s)):
        with pytest.raises(ValueError, match="expects windows"):
            model.infer(np.zeros(wrong, np.float32))


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_missing_values_policy(
    kind: str, runtime: str, served: Callable[[str, str], ScoringModel], fresh: np.ndarray
) -> None:
    model = served(kind, runtime)
    clean = _windows(fresh, 3, start=100)
    windows = clean.copy()
    windows[1, 3:7, 2] = np.nan  # a gap of one sensor: filled inside the window
    windows[1, 0, 4] = np.nan  # and a missing first value (filled backwards)
    windows[2, :, 1] = np.nan  # sensor s1 has no value in this window at all
    result = _outputs(model.infer(windows))
    filled = _outputs(model.infer(fill_windows(windows[1:2])))
    for name, value in result.items():
        assert np.isfinite(value[:2]).all(), name  # the clean window and the gap window
        np.testing.assert_allclose(value[1:2], filled[name], rtol=BATCH_RTOL, atol=BATCH_ATOL, err_msg=name)
    if model.role == "detector":
        assert np.isnan(result["scores"][2])
        assert np.isnan(result["sensor_errors"][2, 1]) and np.isfinite(np.delete(result["sensor_errors"][2], 1)).all()
    else:
        forecasts = result["forecasts"][2]  # [H, S]
        assert np.isnan(forecasts[:, 1]).all() and np.isfinite(np.delete(forecasts, 1, axis=1)).all()
        if "attention" in result:
            assert np.isfinite(result["attention"][2]).all()


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_batched_equals_one_by_one(
    kind: str, runtime: str, served: Callable[[str, str], ScoringModel], fresh: np.ndarray
) -> None:
    model = served(kind, runtime)
    windows = _windows(fresh, 37, start=200)  # 37 windows: scored as 64 (padded), and each alone as 1
    windows[5, 2:9, 0] = np.nan
    batched = _outputs(model.infer(windows))
    alone = [_outputs(model.infer(windows[i : i + 1])) for i in range(len(windows))]
    worst = 0.0
    for name, value in batched.items():
        single = np.concatenate([a[name] for a in alone])
        np.testing.assert_allclose(value, single, rtol=BATCH_RTOL, atol=BATCH_ATOL, err_msg=name)
        worst = max(worst, float(np.max(np.abs(value - single) / np.maximum(np.abs(single), 1e-30))))
    print(f"{kind}/{runtime}: batched vs alone, largest relative difference {worst:.1e}")


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_score_is_the_mean_of_the_per_sensor_errors(
    kind: str, runtime: str, served: Callable[[str, str], ScoringModel], fresh: np.ndarray
) -> None:
    model = served(kind, runtime)
    windows = with_missing_values(_windows(fresh, 20, start=300))  # four of them with missing values
    result = model.infer(windows)
    if model.role == "detector":
        assert result.scores is not None and result.sensor_errors is not None
        assert (result.sensor_errors[np.isfinite(result.sensor_errors)] >= 0).all()
        np.testing.assert_allclose(result.scores, result.sensor_errors.mean(axis=1), rtol=MEAN_RTOL)
        return
    assert result.forecasts is not None
    rows = np.arange(300 + W, 300 + W + 20)  # the row after each window: what its one-step forecast is for
    forecast, actual = result.forecasts[:, 0], fresh[rows].astype(np.float32)
    score, per_sensor = model.residual_score(forecast, actual)
    scale = manifest_scale(model)
    np.testing.assert_allclose(per_sensor, ((forecast - actual) / scale) ** 2, rtol=MEAN_RTOL)
    np.testing.assert_allclose(score, per_sensor.mean(axis=1), rtol=MEAN_RTOL)
    assert score.shape == (20,) and per_sensor.shape == (20, len(SENSORS))
    zero, _ = model.residual_score(actual, actual)
    assert (zero == 0).all()
    with pytest.raises(ValueError, match="residual_score expects"):
        model.residual_score(forecast, actual[:, :2])


def manifest_scale(model: ScoringModel) -> np.ndarray:
    """[S] the scaler's scale as the artifact's manifest states it (what the threshold was calibrated with)."""
    assert isinstance(model, LoadedModel | OnnxModel | PcaDetector)
    return np.asarray(model.manifest["scaler"]["scale"], dtype=np.float32)


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_save_and_load_again_scores_bit_for_bit(  # type: ignore[no-untyped-def]
    kind: str, runtime: str, served: Callable[[str, str], ScoringModel], artifact_factory, fresh, tmp_path: Path
) -> None:
    model = served(kind, runtime)
    windows = with_missing_values(_windows(fresh, 20, start=400))
    if runtime == "numpy":
        assert isinstance(model, PcaDetector)
        again = load_pca_artifact(save_pca_artifact(tmp_path / "again", model))
    else:
        torch_model = load_artifact(artifact_factory(kind))
        bundle = None
        if runtime == "onnx":  # the graph exported again from the torch model, verified on the stored references
            reference = read_reference(torch_model.manifest, artifact_factory(kind))
            assert reference is not None
            bundle = export_onnx(torch_model, reference.windows, reference.actual, source="calibration")
        path = save_artifact(tmp_path / "again", torch_model.module, dict(torch_model.manifest), onnx=bundle)
        again = LOADERS[runtime](path)
    assert type(again) is type(model)
    _bitwise_equal(model.infer(windows), again.infer(windows))


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_to_cpu_scores_bit_for_bit(
    kind: str, runtime: str, served: Callable[[str, str], ScoringModel], fresh: np.ndarray
) -> None:
    model = served(kind, runtime)
    windows = _windows(fresh, 9, start=500)
    before = model.infer(windows)
    moved = model.to("cpu")
    assert isinstance(moved, ScoringModel) and str(moved.device) == "cpu"
    _bitwise_equal(before, moved.infer(windows))
    _bitwise_equal(before, model.infer(windows))  # the model moved from keeps working


@pytest.mark.parametrize("kind", NETWORK_KINDS)
def test_onnx_runtime_equals_torch_within_the_export_tolerance(
    kind: str, served: Callable[[str, str], ScoringModel], fresh: np.ndarray
) -> None:
    clean = _windows(fresh, 100, start=600)
    for windows in (clean, with_missing_values(clean), clean[:1]):
        onnx = _outputs(served(kind, "onnx").infer(windows))
        torch_eager = _outputs(served(kind, "torch").infer(windows))
        assert onnx.keys() == torch_eager.keys()
        tolerance = {name: TOLERANCE.get(name, TOLERANCE["sensor_errors"]) for name in torch_eager}
        _, problem = compare(onnx, torch_eager, tolerance)  # NaN at the same places, within abs + rel
        assert problem is None, problem


# The quality floor. A bias of BIAS training standard deviations on one of S sensors, held for FAULT_ROWS rows:
# far outside the normal range (the tiny models' outputs are bounded by their tanh states: none can follow it). A
# model that does not follow the bias keeps it in its error, adding BIAS² / S to the score of every window (or
# one-step forecast) that lies inside the fault, for every score that is a mean of squared scaled errors (the
# networks'). Asked of every kind: most fault windows (the median) score above every normal window of the run
# (the max), i.e. at the threshold that passes all normal windows more than half the fault's windows alarm; and of
# the squared-error kinds: the median rises by at least half of BIAS² / S (the model copies under 30 % of the bias).
BIAS = 5.0
FAULT_SENSOR = 2
FAULT_ROWS = slice(600, 900)


@pytest.mark.parametrize(("kind", "runtime"), CASES, ids=IDS)
def test_quality_floor_on_one_big_bias_fault(  # type: ignore[no-untyped-def]
    kind: str, runtime: str, served: Callable[[str, str], ScoringModel], fresh: np.ndarray, normal_data
) -> None:
    model = served(kind, runtime)
    faulty = fresh.copy()
    faulty[FAULT_ROWS, FAULT_SENSOR] += BIAS * normal_data[:, FAULT_SENSOR].std()
    windows = np.ascontiguousarray(sliding_windows(faulty, W), dtype=np.float32)  # window i: rows i .. i + W - 1
    first = np.arange(len(windows))
    if model.role == "detector":
        scores = model.infer(windows).scores
        last = first + W - 1  # the row a window's score stands for
    else:
        forecasts = model.infer(windows[:-1]).forecasts  # each window's forecast of the row after it
        assert forecasts is not None
        scores, _ = model.residual_score(forecasts[:, 0], faulty[W:].astype(np.float32))
        first, last = first[:-1], first[:-1] + W  # the forecast row, and the window it was made from
    assert scores is not None and np.isfinite(scores).all()
    normal = scores[last < FAULT_ROWS.start]
    fault = scores[(first >= FAULT_ROWS.start) & (last < FAULT_ROWS.stop)]
    rise = float(np.median(fault) - np.median(normal))
    ideal = BIAS**2 / len(SENSORS)
    print(
        f"{kind}/{runtime}: normal median {np.median(normal):.3f} max {normal.max():.3f}; "
        f"fault median {np.median(fault):.3f} (rise {rise:.2f}, BIAS²/S {ideal:.2f}); threshold {model.threshold:.3f}"
    )
    assert np.median(fault) > normal.max()
    if KINDS[kind].network:
        assert rise >= 0.5 * ideal


def test_padded_batch_sizes() -> None:
    """The sizes both network runtimes run a batch at (models.model_api.padded_batch; moved from the scheduler)."""
    assert [padded_batch(n) for n in (0, 1, 2, 3, 5, 17, 32, 33, 64, 65, 512, 513)] == [
        0,
        1,
        2,
        4,
        8,
        32,
        32,
        64,
        64,
        96,
        512,
        544,
    ]
    assert len({padded_batch(n) for n in range(1, 513)}) == 21  # the shapes oneDNN ever sees up to 512


PCA_TORCH_FREE = """
import sys
from models.serving import load_for_serving
import numpy as np
model = load_for_serving(sys.argv[1], "cpu")
scores = model.infer(np.full((4, model.window, len(model.sensors)), 1.0, np.float32)).scores
heavy = sorted(m for m in ("torch", "onnxruntime", "sklearn") if m in sys.modules)
print(type(model).__name__, bool(np.isfinite(scores).all()), heavy)
"""


def test_serving_a_pca_imports_neither_torch_nor_onnx_runtime_nor_scikit_learn(artifact_factory) -> None:  # type: ignore[no-untyped-def]
    path = artifact_factory("pca")
    result = subprocess.run(
        [sys.executable, "-c", PCA_TORCH_FREE, str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PcaDetector", "True", "[]"], result.stdout
