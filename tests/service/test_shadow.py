"""Shadow models: a unit's candidate scores beside the active model over a real broker; nothing of it is published.

The candidate is the test detector itself with its calibrated levels lowered (a copy whose manifest threshold is
edited: the manifest holds the weights' and graph's hashes, not its own, so the copy loads as any artifact): the
same scores against a lower threshold, so a modest fault makes it fire where the active model may stay quiet.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from monitor.app import App
from monitor.backtest import run_backtest
from monitor.config import PlantwatchConfig, parse_config
from monitor.recording import recorded_files
from monitor.result_files import SHADOW_ALERTS_FILE, read_alerts
from monitor.startup import load_models, load_shadows
from monitor.wire.csvfile import read_csv
from tests.conftest import Broker, wait_until
from tests.kit.service import SpawnedService
from tests.service.conftest import (
    SENSORS,
    WINDOW,
    Publisher,
    epoch_base,
    normal_rows,
    sample_value,
    scored,
    service_config_dict,
    stop,
    with_fault,
)

CANDIDATE = "det-sensitive"
LEVEL_FACTOR = 0.6  # the candidate's calibrated levels, as a share of the active detector's
FAULT_OFFSET = 2.0  # on the fault sensor: a third of the offset the other service tests use
N_ROWS = 400
FAULT = (200, 260)
SHADOW_SERIES = {"unit": "R1", "detector": "reconstruction", "model": CANDIDATE}


def sensitive_copy(source: Path, target: Path, factor: float = LEVEL_FACTOR) -> Path:
    """``source`` copied to ``target`` with its threshold, resolve and critical levels multiplied by ``factor``."""
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    for key in ("value", "resolve_value", "critical_value"):
        manifest["threshold"][key] *= factor
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return target


@pytest.fixture(scope="module")
def candidate(artifacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sensitive_copy(artifacts["det"], tmp_path_factory.mktemp("shadow") / CANDIDATE)


def faulty_rows() -> npt.NDArray[np.float64]:
    normal = normal_rows(N_ROWS, seed=1)
    a, b = FAULT
    return np.concatenate([normal[:a], with_fault(normal[a:b], FAULT_OFFSET), normal[b:]])


def with_shadow(config: dict[str, Any], candidate: Path, unit: int = 0, name: str = CANDIDATE) -> dict[str, Any]:
    """``config`` (a service config dict) with a shadow detector on its ``unit``-th unit."""
    units = [dict(u) for u in config["units"]]
    units[unit]["shadow"] = {"detector": {"name": name, "artifact": str(candidate)}}
    return {**config, "units": units}


def backtest_events(cfg: PlantwatchConfig, rows: npt.NDArray[np.float64], t0: float, out: Path) -> Any:
    """The backtest of R1's ``rows`` (ts t0 + i) under ``cfg``, writing into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "data.csv"
    with csv_path.open("w") as fh:
        fh.write("ts,unit," + ",".join(SENSORS) + "\n")
        for i, row in enumerate(rows):
            fh.write(f"{t0 + i},R1," + ",".join(f"{v:.6f}" for v in row) + "\n")
    models = load_models(cfg, "cpu")
    models.update(load_shadows(cfg, "cpu", models).models)
    data = read_csv(csv_path, {u.name: tuple(u.sensors) for u in cfg.units}, "R1")
    return run_backtest(cfg, models, data, out_dir=out / "result")


def event_keys(events: Any) -> list[tuple[str, str, str, str]]:
    return [(e.alert_id, e.state, e.severity, e.model) for e in events]


@pytest.mark.parametrize("scorer", ["thread", "process"])
def test_a_shadow_fires_on_a_fault_publishes_nothing_and_leaves_the_active_alerts_unchanged(
    scorer: str,
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    candidate: Path,
    unique_prefix: str,
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., Any],
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/pw/#")
    base = service_config_dict(mosquitto, artifacts, unique_prefix)
    base["scheduler"] = {**base["scheduler"], "scorer": scorer}
    recording = {"path": str(tmp_path / "rec"), "rows": False, "flush_s": 0.1}
    config = {**with_shadow(base, candidate), "recording": recording}
    cfg = parse_config(config)
    app = run_app(cfg)
    t0 = epoch_base()
    rows = faulty_rows()
    pub = publisher()
    pub.rows("R1", rows, t0)
    pub.rows("R2", normal_rows(N_ROWS, seed=2), t0)
    n_windows = 2 * (N_ROWS - WINDOW + 1)
    assert wait_until(lambda: scored(app) == n_windows, timeout_s=90), scored(app)

    # The shadow fired inside the fault (and its metrics say so); R2, without a shadow, has no shadow series.
    assert wait_until(
        lambda: (sample_value(app, "plantwatch_shadow_alerts_fired_total", **SHADOW_SERIES) or 0) >= 1, 10
    )
    normalized = sample_value(app, "plantwatch_shadow_anomaly_score_normalized", **SHADOW_SERIES)
    assert normalized is not None and np.isfinite(normalized) and normalized > 0
    r2 = {**SHADOW_SERIES, "unit": "R2"}
    assert sample_value(app, "plantwatch_shadow_alerts_fired_total", **r2) is None
    assert sample_value(app, "plantwatch_shadow_failures_total", reason="load") == 0
    assert stop(app) == 0

    # Nothing of the candidate on the broker: no alert event, no retained state, no score or forecast names it.
    everything = recorder.matching(f"{unique_prefix}/pw/#")
    assert everything and not [m.topic for m in everything if CANDIDATE.encode() in m.payload]
    published = [m.json() for m in everything if m.topic == f"{unique_prefix}/pw/alerts/R1"]
    # The active model's events are those of a run without the shadow (the backtest: the same stages).
    without = backtest_events(parse_config(base), rows, t0, tmp_path / "without")
    assert [(a["alert_id"], a["state"], a["severity"], a["model"]) for a in published] == event_keys(without.events)

    # Recorded apart: the shadow's would-be events in shadow-alerts-<stamp>.jsonl, none in alerts-<stamp>.jsonl.
    shadow_files = recorded_files(tmp_path / "rec", "R1", "shadow-alerts")
    assert len(shadow_files) == 1
    shadow_events = read_alerts(shadow_files[0])
    firing = [e for e in shadow_events if e.state == "firing"]
    assert firing and {e.model for e in shadow_events} == {CANDIDATE}
    assert any(t0 + FAULT[0] <= e.ts <= t0 + FAULT[1] + WINDOW for e in firing), [e.ts - t0 for e in firing]
    active_files = recorded_files(tmp_path / "rec", "R1", "alerts")
    assert all(e.model == "det" for f in active_files for e in read_alerts(f))
    assert recorded_files(tmp_path / "rec", "R2", "shadow-alerts") == []


def test_backtest_writes_the_shadow_events_apart_and_the_active_events_are_those_without_it(
    tmp_path: Path, mosquitto: Broker, artifacts: dict[str, Path], candidate: Path
) -> None:
    base = service_config_dict(mosquitto, artifacts, "bt", unit_names=("R1",))
    rows, t0 = faulty_rows(), 1_700_000_000.0
    shadowed = backtest_events(parse_config(with_shadow(base, candidate)), rows, t0, tmp_path / "with")
    plain = backtest_events(parse_config(base), rows, t0, tmp_path / "without")
    assert event_keys(shadowed.events) == event_keys(plain.events)
    assert shadowed.scores_by_detector == plain.scores_by_detector  # the shadow's scores are counted apart
    assert shadowed.shadow_scores_by_detector["reconstruction"] == N_ROWS - WINDOW + 1
    assert [e for e in shadowed.shadow_events if e.state == "firing"]
    on_file = read_alerts(tmp_path / "with" / "result" / SHADOW_ALERTS_FILE)
    assert event_keys(on_file) == event_keys(shadowed.shadow_events)
    assert CANDIDATE not in (tmp_path / "with" / "result" / "alerts.jsonl").read_text()
    assert not (tmp_path / "without" / "result" / SHADOW_ALERTS_FILE).exists()


def test_backtest_command_prints_the_shadow_apart_and_evaluates_it_with_labels(
    tmp_path: Path, mosquitto: Broker, artifacts: dict[str, Path], candidate: Path
) -> None:
    config = with_shadow(service_config_dict(mosquitto, artifacts, "bt", unit_names=("R1",)), candidate)
    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump(config))
    t0 = 1_700_000_000.0
    backtest_events(parse_config(config), faulty_rows(), t0, tmp_path / "data")  # writes data.csv
    labels = tmp_path / "labels.csv"
    labels.write_text(f"unit,kind,start,end\nR1,drift,{t0 + FAULT[0]},{t0 + FAULT[1]}\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "backtest", "--config", str(config_path), "--data",
         str(tmp_path / "data" / "data.csv"), "--labels", str(labels), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"shadow alert events (not published; {CANDIDATE})" in result.stdout
    assert "shadow candidates:\n  detector reconstruction:" in result.stdout
    assert (out / SHADOW_ALERTS_FILE).is_file() and str(out / SHADOW_ALERTS_FILE) in result.stdout


def test_a_shadow_that_does_not_load_leaves_the_service_scoring_and_check_config_warns(
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    unique_prefix: str,
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(artifacts["det"], broken)
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")  # its sha256 no longer matches the manifest
    base = service_config_dict(mosquitto, artifacts, unique_prefix)
    base["scheduler"] = {**base["scheduler"], "scorer": "thread"}
    config = with_shadow(base, broken)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    check = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(path)], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stderr
    assert "warning: units.0.shadow.detector.artifact:" in check.stderr and "runs without this shadow" in check.stderr

    with caplog.at_level("ERROR", logger="monitor.scoring_side"):
        app = run_app(parse_config(config))
    assert any("shadow model not served" in r.getMessage() for r in caplog.records)
    assert sample_value(app, "plantwatch_shadow_failures_total", reason="load") == 1
    assert sample_value(app, "plantwatch_shadow_alerts_fired_total", **SHADOW_SERIES) is None  # no series for it
    publisher().rows("R1", normal_rows(40, seed=3), epoch_base())
    assert wait_until(lambda: scored(app) == 40 - WINDOW + 1, timeout_s=30), scored(app)
    assert app.ready() == (True, "ready")


def test_a_shadow_scoring_nan_is_stopped_and_the_active_model_keeps_scoring(
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    candidate: Path,
    unique_prefix: str,
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from models.hostile import overflowing_off_the_mean

    bad = tmp_path / "bad"
    shutil.copytree(candidate, bad)
    overflowing_off_the_mean(artifacts["det"], bad)  # loads (its probe is finite), scores inf on real windows
    base = service_config_dict(mosquitto, artifacts, unique_prefix)
    base["scheduler"] = {**base["scheduler"], "scorer": "thread"}
    app = run_app(parse_config(with_shadow(base, bad)))
    pub = publisher()
    t0 = epoch_base()
    rows = normal_rows(60, seed=4)
    with caplog.at_level("ERROR", logger="monitor.shadow"):
        pub.rows("R1", rows, t0)
        assert wait_until(lambda: scored(app) == 60 - WINDOW + 1, timeout_s=30), scored(app)
    assert sample_value(app, "plantwatch_shadow_failures_total", reason="non_finite") == 1  # once: then it is stopped
    assert CANDIDATE in app.engine.stopped_shadows
    assert [r.getMessage() for r in caplog.records if "shadow scoring is stopped" in r.getMessage()]
    assert app.ready() == (True, "ready")  # the active model is not failing
    assert sample_value(app, "plantwatch_model_reloads_total", result="rolled_back") == 0


def test_promotion_by_config_edit_and_sighup_makes_the_candidate_active(
    mosquitto: Broker,
    artifacts: dict[str, Path],
    candidate: Path,
    unique_prefix: str,
    spawned: Callable[[dict[str, Any]], SpawnedService],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., Any],
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/pw/alerts/R1")
    config = with_shadow(service_config_dict(mosquitto, artifacts, unique_prefix), candidate)
    svc = spawned(config)
    svc.start()
    pub = publisher()
    t0 = epoch_base()
    normal = normal_rows(2 * N_ROWS, seed=5)
    pub.rows("R1", normal[:100], t0)

    def scored() -> float:
        return svc.metric("plantwatch_windows_scored_total", detector="reconstruction")

    assert wait_until(lambda: scored() == 100 - WINDOW + 1, timeout_s=60), svc.log()
    assert svc.metric("plantwatch_model_info", model=CANDIDATE, kind="lstm_ae", role="detector", device="cpu") == 1

    # Promotion: the candidate becomes the unit's detector, its shadow section goes; check-config passes it.
    promoted = yaml.safe_load(svc.config_path.read_text())
    promoted["units"][0]["detector"] = promoted["units"][0].pop("shadow")["detector"]
    svc.config_path.write_text(yaml.safe_dump(promoted))
    check = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(svc.config_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0 and "warning" not in check.stderr, check.stderr
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: svc.metric("plantwatch_model_reloads_total", result="ok") == 1, timeout_s=60), svc.log()
    # R1 is scored by the candidate now; the shadow series are gone with the shadow.
    assert np.isnan(svc.metric("plantwatch_shadow_alerts_fired_total", **SHADOW_SERIES))
    a, b = FAULT
    rows = np.concatenate([normal[100:a], with_fault(normal[a:b], FAULT_OFFSET), normal[b:N_ROWS]])
    pub.rows("R1", rows, t0, first_index=100)
    assert wait_until(lambda: scored() == N_ROWS - WINDOW + 1, timeout_s=60), svc.log()
    firing = recorder.wait_for(f"{unique_prefix}/pw/alerts/R1", lambda m: m.json()["state"] == "firing", timeout_s=30)
    assert firing[0].json()["model"] == CANDIDATE  # published, as the active model it now is
    assert svc.metric("plantwatch_model_reloads_total", result="rolled_back") == 0
    assert svc.signal(signal.SIGTERM) == 0
