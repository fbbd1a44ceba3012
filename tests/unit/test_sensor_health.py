"""The sensor detector (monitor.sensor_health) through buffers -> ScoringEngine -> AlertBoard, with a real PCA model.

Streams go through monitor.backtest.run_backtest (the service's own composition: RingBuffers, params from a
config, ScoringEngine, AlertBoard) or through the three pieces directly where a test needs to look between them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.envelope import compute_envelope, sensor_envelope
from models.pca import PcaDetector
from monitor.alerts.board import AlertBoard
from monitor.alerts.policy import AlertPolicy
from monitor.backtest import BacktestResult, run_backtest
from monitor.buffers.ring_buffers import RingBuffers
from monitor.buffers.unit_spec import UnitSpec
from monitor.config import PlantwatchConfig
from monitor.messages import AlertEvent, Reading, Score, WindowJob
from monitor.scoring import ScoringEngine
from monitor.scoring_records import UnitModels
from monitor.sensor_health import HealthSpec, SensorHealth, envelope_bounds
from monitor.wire.csvfile import CsvData, read_csv

SENSORS = ("temp", "flow", "level")
T0 = 1_732_590_000.0
WINDOW = 8
FAULT = (200, 300)  # rows of the test stream a fault covers
N_TEST = 500


def normal(n: int, rng: np.random.Generator, start: int = 0) -> np.ndarray:
    """[n, 3] smooth coupled signals with noise (a healthy unit)."""
    t = np.arange(start, start + n, dtype=np.float64)
    base = np.sin(2 * np.pi * t / 60.0)
    temp = 350.0 + 2.0 * base + rng.normal(0, 0.1, n)
    flow = 10.0 + 0.5 * np.cos(2 * np.pi * t / 60.0) + rng.normal(0, 0.05, n)
    level = 2.0 + 0.1 * base + rng.normal(0, 0.01, n)
    return np.stack([temp, flow, level], axis=1)


def envelope_of(data: np.ndarray, sensors: tuple[str, ...], window: int) -> dict[str, Any]:
    """What an artifact's ``envelope`` holds, computed from the training rows."""
    windows = np.lib.stride_tricks.sliding_window_view(data, window, axis=0)  # [N, S, W]
    min_window_std = windows.std(axis=2).min(axis=0)
    return {
        "sensors": {
            s: {
                "min": float(data[:, j].min()),
                "max": float(data[:, j].max()),
                "mean": float(data[:, j].mean()),
                "std": float(data[:, j].std()),
                "p001": float(np.quantile(data[:, j], 0.001)),
                "p999": float(np.quantile(data[:, j], 0.999)),
                "min_window_std": float(min_window_std[j]),
            }
            for j, s in enumerate(sensors)
        }
    }


class Watched:
    """A PcaDetector whose ``infer`` records every window it is given (the models never see a silent one)."""

    def __init__(self, model: PcaDetector) -> None:
        self._model = model
        self.windows: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def infer(self, windows: Any) -> Any:
        self.windows.extend(np.asarray(windows))
        return self._model.infer(windows)


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    return normal(2000, np.random.default_rng(0))


def detector(training: np.ndarray, envelope: bool = False) -> Watched:
    det = PcaDetector.fit(training, SENSORS, name="pca", window=WINDOW, calibration="pot", target_far=1e-5)
    # The fitted PCA records its own envelope; these tests choose the window it was measured over, or none.
    if envelope:
        det.manifest["envelope"] = envelope_of(training, SENSORS, WINDOW)
    else:
        det.manifest.pop("envelope", None)
    return Watched(det)


def config(**unit: Any) -> PlantwatchConfig:
    body: dict[str, Any] = {
        "name": "R1",
        "sensors": list(SENSORS),
        "detector": {"name": "pca", "artifact": "/nonexistent"},
        "max_lateness_s": 0.0,
        "alerts": {"min_duration_s": 10},
    }
    body.update(unit)
    return PlantwatchConfig.model_validate({"units": [body]})


def stream(seed: int = 1) -> np.ndarray:
    return normal(N_TEST, np.random.default_rng(seed), start=2000)


def backtest(values: np.ndarray, model: Watched, cfg: PlantwatchConfig | None = None) -> BacktestResult:
    n = values.shape[0]
    data = CsvData(T0 + np.arange(n, dtype=np.float64), ("R1",) * n, {"R1": values}, {"R1": np.arange(n)}, 0)
    return run_backtest(cfg or config(), {"pca": model}, data, batch_size=64)  # type: ignore[dict-item]


def sensor_events(result: BacktestResult) -> list[AlertEvent]:
    return [e for e in result.events if e.detector == "sensor"]


def one_episode(events: list[AlertEvent]) -> tuple[AlertEvent, AlertEvent]:
    firing = [e for e in events if e.state == "firing"]
    resolved = [e for e in events if e.state == "resolved"]
    assert firing and len(resolved) == 1, events
    assert {e.alert_id for e in events} == {firing[0].alert_id}
    return firing[0], resolved[0]


def rows_of(ts: float) -> int:
    return round(ts - T0)


def test_healthy_stream_raises_no_sensor_alert(training: np.ndarray) -> None:
    model = detector(training, envelope=True)
    result = backtest(stream(), model, config(limits={"temp": {"min": 300, "max": 400}}))
    # The sensor detector raises nothing (the PCA baseline's own false alarms are not this test's business).
    assert sensor_events(result) == []
    assert result.skipped == {}
    assert result.jobs == N_TEST - WINDOW + 1
    # Every valid window got a model score and a sensor score, all healthy.
    assert result.scores == 2 * result.jobs


def test_silent_sensor_fires_naming_it_and_resolves_when_it_is_back(training: np.ndarray) -> None:
    values = stream()
    values[FAULT[0] : FAULT[1], 1] = np.nan  # flow sends nothing for 100 rows
    model = detector(training)
    result = backtest(values, model)
    # Gap accounting as before: the rows past the hold-over (3) and the windows still holding them are skipped.
    assert result.skipped == {"gap": (FAULT[1] - FAULT[0] - 3) + WINDOW - 1}
    # The models never saw a silent window, and scored exactly the valid ones.
    assert len(model.windows) == result.jobs
    assert all(np.isfinite(w).all() for w in model.windows)
    firing, resolved = one_episode(sensor_events(result))
    assert firing.reason == "silent" and firing.sensors[0][0] == "flow" and firing.model == "pca"
    # Fires at the third silent row (3 of 5): rows 203, 204, 205 are the first past the hold-over.
    assert rows_of(firing.started_at) == FAULT[0] + 3 and rows_of(firing.ts) == FAULT[0] + 5
    # Resolves after 10 quiet rows once the sensor is back (the recovering rows count: no window needed).
    assert rows_of(resolved.ts) == FAULT[1] + 9
    assert resolved.sensors == firing.sensors


def test_silence_through_a_csv_whose_column_goes_empty(training: np.ndarray, tmp_path: Path) -> None:
    values = stream(2)
    path = tmp_path / "run.csv"
    lines = ["timestamp,temp,flow,level"]
    for k, (temp, flow, level) in enumerate(values.tolist()):
        cell = "" if FAULT[0] <= k < FAULT[1] else f"{level:.6f}"
        lines.append(f"{T0 + k:.3f},{temp:.6f},{flow:.6f},{cell}")
    path.write_text("\n".join(lines) + "\n")
    data = read_csv(path, {"R1": SENSORS}, "R1")
    result = run_backtest(config(), {"pca": detector(training)}, data, out_dir=tmp_path / "out")  # type: ignore[dict-item]
    firing, resolved = one_episode(sensor_events(result))
    assert firing.reason == "silent" and firing.sensors[0][0] == "level"
    assert FAULT[0] < rows_of(firing.ts) < FAULT[1] < rows_of(resolved.ts)
    assert '"reason": "silent"' in (tmp_path / "out" / "alerts.jsonl").read_text()


def test_stuck_sensor_fires_stuck_and_resolves(training: np.ndarray) -> None:
    values = stream(3)
    values[FAULT[0] : FAULT[1], 0] = values[FAULT[0] - 1, 0]  # temp holds its last good value
    result = backtest(values, detector(training))  # no envelope: the exact-constant rule
    firing, resolved = one_episode(sensor_events(result))
    assert firing.reason == "stuck" and firing.sensors[0][0] == "temp"
    # The window (8 rows) is constant from row 206 on; third such window fires.
    assert rows_of(firing.started_at) == FAULT[0] + WINDOW - 2
    assert rows_of(firing.ts) == FAULT[0] + WINDOW
    assert FAULT[1] <= rows_of(resolved.ts) <= FAULT[1] + 12


def test_stuck_by_envelope_std_and_never_for_a_sensor_flat_in_training(training: np.ndarray) -> None:
    flat_training = np.column_stack([training, np.full(len(training), 5.0)])  # "mode": a flat sensor
    sensors = (*SENSORS, "mode")
    det = PcaDetector.fit(flat_training, sensors, name="pca", window=WINDOW, calibration="pot", target_far=1e-5)
    det.manifest["envelope"] = envelope_of(flat_training, sensors, WINDOW)
    values = np.column_stack([stream(4), np.full(N_TEST, 5.0)])
    rng = np.random.default_rng(5)
    # flow nearly stuck: not exactly constant (the exact rule would miss it), std far under training's smallest.
    values[FAULT[0] : FAULT[1], 1] = 10.2 + rng.normal(0, 1e-5, FAULT[1] - FAULT[0])
    cfg = config(sensors=list(sensors))
    result = backtest(values, Watched(det), cfg)
    firing, _ = one_episode(sensor_events(result))
    assert firing.reason == "stuck" and firing.sensors[0][0] == "flow"
    assert FAULT[0] < rows_of(firing.ts) <= FAULT[0] + WINDOW + 2
    # "mode" was constant all along, in training too: never stuck, with the exact-constant rule on.
    assert all(e.sensors[0][0] != "mode" for e in result.events)


def test_value_beyond_configured_limits_fires_out_of_range(training: np.ndarray) -> None:
    values = stream(6)
    values[FAULT[0] : FAULT[1], 2] = 9.0  # level reads 9 m in a 5 m tank
    cfg = config(limits={"level": {"min": 0.0, "max": 5.0}})
    model = detector(training)
    result = backtest(values, model, cfg)
    firing, resolved = one_episode(sensor_events(result))
    assert firing.reason == "out_of_range" and firing.sensors[0][0] == "level"
    assert rows_of(firing.started_at) == FAULT[0] and rows_of(firing.ts) == FAULT[0] + 2
    assert firing.severity == "critical"  # 4 m beyond a 5 m range: 1.5 + 0.8 > 2
    assert rows_of(resolved.ts) == FAULT[1] + 9
    # Since the limits are applied at the door (issue 11), the 9 m values are refused, not scored: the models
    # saw no value beyond the limits, and level was missing for those rows (3 held over, then gap windows).
    assert result.rejected == {"out_of_range": FAULT[1] - FAULT[0]}
    assert result.skipped == {"gap": (FAULT[1] - FAULT[0] - 3) + WINDOW - 1}
    assert max(float(w[:, 2].max()) for w in model.windows) <= 5.0


def test_a_broken_transmitter_is_a_sensor_fault_not_an_anomaly(training: np.ndarray) -> None:
    """RELIABILITY B5: level reads -1e6 (outside its physical limits) for 100 rows. The values are refused as
    out_of_range, the sensor is missing for those rows (held over, then its windows skipped), the sensor detector
    names it out_of_range (not silent) and resolves when it is back; the models never see -1e6."""
    values = stream(11)
    values[FAULT[0] : FAULT[1], 2] = -1e6
    model = detector(training)
    result = backtest(values, model, config(limits={"level": {"min": 0.0, "max": 5.0}}))
    assert result.rejected == {"out_of_range": FAULT[1] - FAULT[0]}
    firing, resolved = one_episode(sensor_events(result))
    assert firing.reason == "out_of_range" and firing.sensors[0][0] == "level" and firing.severity == "critical"
    assert rows_of(firing.started_at) == FAULT[0]  # from the first refused value, through the hold-over rows
    assert rows_of(resolved.ts) == FAULT[1] + 9
    # No anomaly alert from it: the reconstruction detector never scored a window holding -1e6 (the PCA baseline's
    # own false alarms elsewhere in the stream are not this test's business).
    during = [e for e in result.events if e.detector != "sensor" and FAULT[0] <= rows_of(e.ts) < FAULT[1] + WINDOW]
    assert during == []
    assert all(np.isfinite(w).all() and w[:, 2].min() > 0.0 for w in model.windows)
    # The hold-over rows' windows end in level's last good value (row 199), as for a missing value.
    held = [w for w in model.windows if np.isclose(w[-1, 2], np.float32(values[FAULT[0] - 1, 2]))]
    assert len(held) >= 3
    # Without limits the same stream is scored as it comes: an anomaly alert on garbage, and "stuck" at -1e6.
    unlimited = backtest(values, detector(training))
    assert any(e.detector == "reconstruction" and rows_of(e.started_at) == FAULT[0] for e in unlimited.events)
    assert {e.reason for e in sensor_events(unlimited)} == {"stuck"}


def test_far_outside_the_training_envelope_is_out_of_range_only_with_an_envelope(training: np.ndarray) -> None:
    values = stream(7)
    # flow spans ~9.3..10.7 in training: 20 is beyond max + 1 span (noisy: not stuck as well)
    values[FAULT[0] : FAULT[1], 1] = 20.0 + np.random.default_rng(70).normal(0, 0.05, FAULT[1] - FAULT[0])
    with_envelope = sensor_events(backtest(values, detector(training, envelope=True)))
    firing, _ = one_episode(with_envelope)
    assert firing.reason == "out_of_range" and firing.sensors[0][0] == "flow"
    # The model score of the same rows says the unit is outside what the model was trained on.
    assert firing.outside_envelope == ()  # the sensor detector's own score carries no envelope
    assert sensor_events(backtest(values, detector(training))) == []  # no envelope, no limits: nothing


def test_model_scores_carry_the_sensors_outside_the_envelope(training: np.ndarray) -> None:
    model = detector(training, envelope=True)
    env = model.envelope["sensors"]
    engine = ScoringEngine({"R1": UnitModels(SENSORS, detector="pca", envelope_margin=0.05)}, {"pca": model})  # type: ignore[dict-item]
    window = stream(8)[:WINDOW].astype(np.float32)
    inside = WindowJob("R1", T0, window, T0, T0)
    temp_span = env["temp"]["max"] - env["temp"]["min"]
    edge = window.copy()
    edge[-1, 0] = env["temp"]["max"] + 0.02 * temp_span  # inside the 5 % margin
    beyond = window.copy()
    beyond[-1, 0] = env["temp"]["max"] + 0.10 * temp_span
    beyond[-1, 2] = env["level"]["min"] - 0.10 * (env["level"]["max"] - env["level"]["min"])
    older = window.copy()
    older[0, 1] = 100.0  # only the newest row counts
    jobs = [inside, WindowJob("R1", T0 + 1, edge, T0, T0), WindowJob("R1", T0 + 2, beyond, T0, T0)]
    jobs.append(WindowJob("R1", T0 + 3, older, T0, T0))
    scores = engine.run(jobs).scores
    assert [s.outside_envelope for s in scores] == [(), (), ("temp", "level"), ()]
    # No envelope (older artifacts) or the check off: nothing.
    off = ScoringEngine({"R1": UnitModels(SENSORS, detector="pca", envelope_margin=None)}, {"pca": model})  # type: ignore[dict-item]
    assert [s.outside_envelope for s in off.run(jobs).scores] == [()] * 4
    plain = ScoringEngine({"R1": UnitModels(SENSORS, detector="pca")}, {"pca": detector(training)})  # type: ignore[dict-item]
    assert [s.outside_envelope for s in plain.run(jobs).scores] == [()] * 4


def test_a_day_of_silence_fires_stays_firing_with_bounded_records_then_resolves(training: np.ndarray) -> None:
    spec = UnitSpec(SENSORS, max_lateness_s=0.0, max_gap_periods=3, window_rows=WINDOW, silent_rows=5)
    buffers = RingBuffers({"R1": spec})
    model = detector(training)
    units = {"R1": UnitModels(SENSORS, detector="pca", health=HealthSpec())}
    engine = ScoringEngine(units, {"pca": model})  # type: ignore[dict-item]
    board = AlertBoard({"R1": AlertPolicy(min_duration_s=10)})
    values = normal(200, np.random.default_rng(9))
    events: list[AlertEvent] = []
    records: list[WindowJob] = []

    def feed(k: int, row: np.ndarray) -> None:
        res = buffers.add(Reading("R1", T0 + k, dict(zip(SENSORS, row.tolist(), strict=True)), T0 + k))
        records.extend(res.records)
        for score in engine.run(res.records).scores:
            event = board.update(score)
            if event is not None:
                events.append(event)

    for k in range(100):
        feed(k, values[k])
    assert events == []
    # The whole unit is silent for a day; its next reading closes 86,400 rows at once.
    records.clear()
    model.windows.clear()
    feed(100 + 86_400, values[100])
    health_only = [r for r in records if not r.valid]
    assert len(health_only) <= 5 + 1 + 2  # rows past the hold-over one by one, the span's end, the new row
    assert [rows_of(r.end_ts) for r in health_only][-2:] == [100 + 86_399, 100 + 86_400]
    assert health_only[-2].silent == SENSORS and health_only[-1].silent == ()
    firing = [e for e in events if e.state == "firing"]
    assert firing and firing[0].detector == "sensor" and firing[0].reason == "silent"
    tracker = board.tracker("R1", "sensor")
    assert tracker.firing is not None  # still firing: the span's end record was silent too
    assert rows_of(tracker.firing.ts) >= 100 + 86_399  # re-notified at the span's end (renotify_s 600)
    for j in range(1, 40):
        feed(100 + 86_400 + j, values[100 + j])
    assert tracker.firing is None
    assert events[-1].state == "resolved" and events[-1].alert_id == firing[0].alert_id
    assert len(model.windows) == sum(1 for r in records if r.valid)
    assert all(np.isfinite(w).all() for w in model.windows)


def test_rules_can_be_switched_off(training: np.ndarray) -> None:
    values = stream(10)
    values[FAULT[0] : FAULT[1], 1] = np.nan
    values[350:450, 0] = values[349, 0]
    off = config(sensor_health={"silent": False, "stuck": False})
    assert sensor_events(backtest(values, detector(training), off)) == []
    disabled = backtest(values, detector(training), config(sensor_health={"enabled": False}))
    assert sensor_events(disabled) == [] and disabled.scores == disabled.jobs
    assert len(sensor_events(backtest(values, detector(training)))) >= 4  # on by default: two episodes


def test_sensor_score_shape() -> None:
    health = SensorHealth({"R1": (SENSORS, HealthSpec(limits={"temp": (0.0, 100.0)}))})
    window = np.tile(np.array([[50.0, 1.0, 2.0]], dtype=np.float32), (4, 1))
    window[:, 2] += np.arange(4, dtype=np.float32)  # level moves, temp and flow are constant
    window[-1, 0] = 150.0  # temp newest beyond its limit by half the range
    silent = WindowJob("R1", T0 + 1, window[-1:], T0, T0, valid=False, silent=("flow",))
    healthy = WindowJob("R1", T0 + 2, window[-1:] * 0 + 1, T0, T0, valid=False)
    scored = health.score([WindowJob("R1", T0, window, T0, T0), silent, healthy], {"R1": "det"})
    s: list[Score] = [sc for _, sc in scored]
    assert [i for i, _ in scored] == [0, 1, 2]
    assert s[0].detector == "sensor" and s[0].model == "det" and s[0].threshold == 1.0
    assert s[0].sensor_errors == pytest.approx({"temp": 2.0, "flow": 1.5, "level": 0.0})
    assert s[0].score == pytest.approx(2.0) and s[0].reason == "out_of_range"
    assert s[0].resolve_level == 0.5 and s[0].critical_level == 2.0
    assert s[1].reason == "out_of_range" and s[1].sensor_errors["flow"] == 1.5  # no stuck test on one row
    assert s[2].score == 0.0 and s[2].reason == ""
    lo, hi = envelope_bounds({"sensors": {"temp": {"min": 0, "max": 10}, "flow": {"min": 1, "max": 1}}}, SENSORS, 1.0)
    assert lo[0] == -10 and hi[0] == 20 and math.isnan(lo[1]) and math.isnan(hi[2])
    with pytest.raises(ValueError, match="stuck_rows"):
        HealthSpec(stuck_rows=1)
    with pytest.raises(ValueError, match="min < max"):
        HealthSpec(limits={"temp": (1.0, 1.0)})


def test_a_value_refused_at_the_door_scores_from_its_refused_value() -> None:
    """WindowJob.out_of_range (the buffers' record of values refused as outside the limits): the window holds the
    hold-over value (or NaN), the badness comes from the refused value, as if the window had held it."""
    spec = HealthSpec(limits={"temp": (0.0, 100.0)})
    health = SensorHealth({"R1": (SENSORS, spec), "R2": (SENSORS, HealthSpec(out_of_range=False))})
    held = np.array([[50.0, 1.0, 2.0], [50.0, 1.5, 2.5]], dtype=np.float32)  # temp held over: constant
    moving = held + np.array([[0.0], [1.0]], dtype=np.float32)
    jobs = [
        WindowJob("R1", T0, held, T0, T0, out_of_range=(("temp", -1e6),)),
        WindowJob("R1", T0 + 1, held[-1:] * np.nan, T0, T0, valid=False, out_of_range=(("temp", 110.0),)),
        WindowJob("R1", T0 + 2, moving, T0, T0, out_of_range=(("flow", 7.0),)),  # no limits for flow in this spec
        WindowJob("R2", T0, moving, T0, T0, out_of_range=(("temp", -1e6),)),  # the rule is off for R2
    ]
    s = [sc for _, sc in health.score(jobs, {"R1": "det", "R2": "det"})]
    assert s[0].reason == "out_of_range" and s[0].score == 3.0  # capped: -1e6 is far beyond a 100-wide range
    # The held-over copies are not "stuck": out_of_range is the only thing said of temp.
    assert s[0].sensor_errors == {"temp": 3.0, "flow": 0.0, "level": 0.0}
    assert s[1].reason == "out_of_range" and s[1].sensor_errors["temp"] == pytest.approx(1.6)  # 1.5 + 10 / 100
    assert s[2].reason == "out_of_range" and s[2].sensor_errors["flow"] == 1.5
    assert s[3].score == 0.0 and s[3].reason == ""


SPIKE_ROWS = (210, 240, 270)


def spiky_detector(training: np.ndarray) -> Watched:
    """A detector whose envelope is the one training writes (models.envelope), step scales included."""
    det = PcaDetector.fit(training, SENSORS, name="pca", window=WINDOW, calibration="pot", target_far=1e-5)
    det.manifest["envelope"] = compute_envelope(training, SENSORS, WINDOW, 1.0)
    return Watched(det)


def test_spikes_fire_on_each_out_and_back_and_resolve_once_it_leaves_the_rows(training: np.ndarray) -> None:
    values = stream(12)
    for row in SPIKE_ROWS:
        values[row, 0] += 3.0  # temp: a one-row jump far beyond its step scale, and straight back
    events = sensor_events(backtest(values, spiky_detector(training)))
    firing = [e for e in events if e.state == "firing"]
    resolved = [e for e in events if e.state == "resolved"]
    assert len(firing) == len(resolved) == len(SPIKE_ROWS), events  # one episode per spike: they are far apart
    assert {e.reason for e in events} == {"spikes"} and {e.sensors[0][0] for e in events} == {"temp"}
    for row, fired, done in zip(SPIKE_ROWS, firing, resolved, strict=True):
        # Seen when the next row closes the out-and-back; the third window holding it fires (3 of 5).
        assert rows_of(fired.started_at) == row + 1 and rows_of(fired.ts) == row + 3
        assert rows_of(done.ts) <= row + WINDOW + 10  # resolve_hits windows after it left the window


def test_a_step_is_not_a_spike_and_old_envelopes_have_no_spike_test(training: np.ndarray) -> None:
    values = stream(13)
    values[FAULT[0] : FAULT[1], 0] += 3.0  # the same size as a step: a bias, not an out-and-back
    assert [e for e in sensor_events(backtest(values, spiky_detector(training))) if e.reason == "spikes"] == []
    spiky = stream(12)
    for row in SPIKE_ROWS:
        spiky[row, 0] += 3.0
    # An envelope written before step scales existed (no "step_scale"): the rule has no unit, so no test.
    assert sensor_events(backtest(spiky, detector(training, envelope=True))) == []
    # And off by configuration.
    off = config(sensor_health={"spikes": False})
    assert sensor_events(backtest(spiky, spiky_detector(training), off)) == []


def test_healthy_stream_raises_no_spike_alert_with_the_step_scale(training: np.ndarray) -> None:
    assert sensor_events(backtest(stream(), spiky_detector(training))) == []
    assert sensor_envelope(training[:, 0], WINDOW)["step_scale"] > 0


def quantised(n: int, rng: np.random.Generator) -> np.ndarray:
    """A flow read in steps of 1.0 with 0.001 of jitter, holding its value about half the time (SKAB's flow rate)."""
    level = 10.0 + np.cumsum(rng.choice([-1.0, 0.0, 0.0, 1.0], n))
    level = np.clip(level, 8.0, 12.0)
    return level + rng.normal(0.0, 0.001, n) * (rng.random(n) < 0.6)


def test_a_quantised_flip_seen_in_training_is_no_spike(training: np.ndarray) -> None:
    """The step scale of such a sensor is its jitter: a one-quantum flip and back is hundreds of scales, yet the
    history is full of them. The largest training step is the floor, so only an out-and-back beyond it is a spike."""
    rng = np.random.default_rng(5)
    history = training.copy()
    history[:, 1] = quantised(history.shape[0], rng)
    model = spiky_detector(history)
    stats = model.manifest["envelope"]["sensors"]["flow"]
    assert stats["step_scale"] < 0.01 and stats["max_step"] >= 1.0  # a jitter-sized scale, a quantum-sized floor
    values = stream(15)
    values[:, 1] = quantised(values.shape[0], rng)
    assert [e for e in sensor_events(backtest(values, model)) if e.reason == "spikes"] == []
    values[SPIKE_ROWS[0], 1] += 5.0  # beyond anything the history did, and straight back
    firing = [e for e in sensor_events(backtest(values, model)) if e.state == "firing"]
    assert [(e.reason, e.sensors[0][0]) for e in firing] == [("spikes", "flow")]


def test_spike_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="spike_k"):
        HealthSpec(spike_k=0.0)
