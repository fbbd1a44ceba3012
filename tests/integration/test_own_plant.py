"""A plant engineer's first day with their own data, walked with real processes only (the README's "Your own plant").

Every step is a command a user types: ``plantwatch simulate`` plays a two-reactor plant live over a private
mosquitto, ``plantwatch run`` (a subprocess) records what it sees, ``plantwatch train`` fits one fleet model to
the recording by time range with an incident left out, the fleet model scores as a shadow beside the bootstrap
model, and a config change plus SIGHUP promotes it; ``plantwatch check-config`` passes each config first.

Event time starts at a fixed epoch (as in test_simulator_e2e) so the ranges and the incident are known here;
the live simulator plays it at 100x, which the service scores on event time.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulators.reactor import REACTOR_SENSORS
from tests.kit import Broker, wait_until
from tests.kit.service import SpawnedService

UNITS = ("R-101", "R-102")
START = 1_767_225_600  # 2026-01-01T00:00:00Z
WINDOW = 16
RECORD_S = 2400  # phase 1: 40 min recorded, with an incident on R-102
INCIDENT_S, INCIDENT_LEN_S = 1200, 300
SHADOW_S = 600  # phase 2: 10 min with the candidate as a shadow
PROMOTED_S = 600  # phase 3: 10 min after promotion, a fault on R-101
FAULT_AT_S, FAULT_LEN_S = 180, 240
TINY = ["--window", str(WINDOW), "--hidden-size", "16", "--epochs", "6", "--threads", "1", "--no-progress"]


def plantwatch(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``plantwatch ARGS`` as a user runs it; a failure shows its output."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if check:
        command = " ".join(args)
        assert done.returncode == 0, f"plantwatch {command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def scenario(path: Path, fault: dict[str, Any] | None) -> Path:
    """The same two reactors every phase (same seed, no drift between units); ``fault`` injected if given."""
    body: dict[str, Any] = {"units": {"names": list(UNITS)}, "spread": 0.0, "disturbances": 0.0, "seed": 11}
    if fault:
        body["faults"] = [{"kind": "bias", "magnitude": 6.0, "sensors": ["reactor_temp_K"], **fault}]
    path.write_text(yaml.safe_dump(body))
    return path


def service_config(broker: Broker, recording: Path, units: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "units": units,
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "own-plant-svc"},
        "scheduler": {"device": "cpu", "max_lag_s": 300},  # 100x event time: a burst is not "behind"
        "recording": {"path": str(recording), "max_mb": 64},
        "outputs": {"publish_scores": False, "publish_forecasts": False},
    }


def unit(name: str, detector: tuple[str, Path], shadow: tuple[str, Path] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "sensors": list(REACTOR_SENSORS),
        "detector": {"name": detector[0], "artifact": str(detector[1])},
        "alerts": {"fire_hits": 5, "fire_window": 5, "min_duration_s": 30},
    }
    if shadow:
        entry["shadow"] = {"detector": {"name": shadow[0], "artifact": str(shadow[1])}}
    return entry


def check_config(service: SpawnedService, cwd: Path) -> str:
    return plantwatch("check-config", str(service.config_path), cwd=cwd).stdout


def play(broker: Broker, plant: Path, start: int, duration_s: int, cwd: Path) -> None:
    """``plantwatch simulate`` live at 100x; returns once every reading is published."""
    plantwatch(
        "simulate", "--scenario", str(plant), "--broker", broker.address, "--start", str(start),
        "--duration", f"{duration_s}s", "--speed", "100", cwd=cwd,
    )  # fmt: skip


def scored(service: SpawnedService) -> float:
    value = service.metric("plantwatch_windows_scored_total", detector="reconstruction")
    return 0.0 if math.isnan(value) else value  # NaN before the first window


def shadow_scoring(service: SpawnedService, name: str) -> bool:
    """The fleet candidate has scored a window of unit ``name`` (its gauge exists and is a number)."""
    gauge = "plantwatch_shadow_anomaly_score_normalized"
    return math.isfinite(service.metric(gauge, unit=name, detector="reconstruction", model="fleet"))


@pytest.mark.slow
def test_record_train_a_fleet_model_shadow_it_and_promote_it(
    tmp_path: Path, broker_factory: Callable[..., Broker], mqtt_recorder: Callable[..., Any]
) -> None:
    broker = broker_factory()
    recording = tmp_path / "recording"

    # 0. Before any history: a bootstrap model for one reactor from an exported CSV (a historian's, here simulated).
    export = tmp_path / "export.csv"
    plantwatch("simulate", "--scenario", str(scenario(tmp_path / "normal.yaml", None)), "--out", str(export),
               "--start", str(START - 7200), "--duration", "2h", cwd=tmp_path)  # fmt: skip
    boot = tmp_path / "models" / "boot"
    plantwatch("train", "--data", str(export), "--unit", "R-101", "--model", "lstm_ae", "--name", "boot",
               "--out", str(boot), "--allow-weak-calibration", *TINY, cwd=tmp_path)  # fmt: skip

    # 1. Record 40 minutes of both reactors, with an incident on R-102 (a bias on its temperature).
    service = SpawnedService(service_config(broker, recording, [unit(u, ("boot", boot)) for u in UNITS]), tmp_path)
    check_config(service, tmp_path)
    incident = {"unit": "R-102", "start": INCIDENT_S, "duration": INCIDENT_LEN_S}
    with service.start():
        play(broker, scenario(tmp_path / "phase1.yaml", incident), START, RECORD_S, tmp_path)
        expected = len(UNITS) * (RECORD_S - WINDOW + 1)
        assert wait_until(lambda: scored(service) >= expected, 120), (scored(service), expected)
    rows = sorted(recording.glob("*/rows-*.csv"))
    assert {p.parent.name for p in rows} == set(UNITS), rows

    # 2. One fleet model from the recording: the first 5 minutes cut off, the incident left out by a label file.
    incident_csv = tmp_path / "incident.csv"
    incident_csv.write_text(
        f"unit,kind,start,end\nR-102,bias,{START + INCIDENT_S},{START + INCIDENT_S + INCIDENT_LEN_S}\n"
    )
    fleet = tmp_path / "models" / "fleet"
    trained = plantwatch(
        "train", "--data", str(recording), "--units", "all", "--from", str(START + 300), "--to", str(START + RECORD_S),
        "--exclude", str(incident_csv), "--model", "lstm_ae", "--name", "fleet", "--out", str(fleet),
        "--allow-weak-calibration", *TINY, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert "fleet model of 2 units" in trained, trained
    assert f"by {incident_csv}" in trained and "R-102" in trained, trained
    assert "leaving out the alert episodes recorded in" in trained, trained  # the bootstrap model's, by default
    assert (fleet / "manifest.json").is_file()

    # 3. The fleet model as a shadow candidate on both units, beside the bootstrap model.
    shadowed = [unit(u, ("boot", boot), shadow=("fleet", fleet)) for u in UNITS]
    service = SpawnedService(service_config(broker, recording, shadowed), tmp_path, name="shadow")
    check_config(service, tmp_path)
    alerts = mqtt_recorder("plantwatch/alerts/+", broker=broker)
    with service.start():
        play(broker, scenario(tmp_path / "normal.yaml", None), START + RECORD_S, SHADOW_S, tmp_path)
        for name in UNITS:
            assert wait_until(lambda name=name: shadow_scoring(service, name), 60), service.log()[-3000:]
        failures = service.metric("plantwatch_shadow_failures_total")
        assert math.isnan(failures) or failures == 0, service.log()[-3000:]  # none, or counted zero
        assert alerts.matching(predicate=lambda m: b'"fleet"' in m.payload) == [], "a shadow's alert was published"

        # 4. Promotion: the same config with the fleet model active and no shadow, checked, then SIGHUP.
        promoted = service_config(broker, recording, [unit(u, ("fleet", fleet)) for u in UNITS])
        promoted["metrics"] = service.config["metrics"]
        service.config_path.write_text(yaml.safe_dump(promoted, sort_keys=False))
        check_config(service, tmp_path)
        assert service.proc is not None
        service.proc.send_signal(signal.SIGHUP)
        reloaded = lambda: service.metric("plantwatch_model_reloads_total", result="ok") == 1  # noqa: E731
        assert wait_until(reloaded, 120), service.log()[-3000:]
        assert service.metric("plantwatch_model_info", model="fleet", role="detector") == 1

        # 5. The promoted fleet model catches a fault on R-101 and names itself in the alert.
        fault = {"unit": "R-101", "start": FAULT_AT_S, "duration": FAULT_LEN_S}
        play(broker, scenario(tmp_path / "phase3.yaml", fault), START + RECORD_S + SHADOW_S, PROMOTED_S, tmp_path)
        by_fleet = lambda m: m.json()["model"] == "fleet" and m.json()["state"] == "firing"  # noqa: E731
        firing = [m.json() for m in alerts.wait_for("plantwatch/alerts/R-101", by_fleet, timeout_s=60)]
        fault_ts = START + RECORD_S + SHADOW_S + FAULT_AT_S
        assert fault_ts <= firing[0]["ts"] <= fault_ts + FAULT_LEN_S, (firing[0]["ts"] - fault_ts, firing)
