"""`plantwatch backtest` on simulated reactor data: one clear injected fault is alerted, a fault-free run is not.

Tiny models (a few seconds of training) on 8 h of simulated normal operation. The scenarios turn off the
unit-to-unit parameter spread and the slow feed disturbances: 8 h of training data do not cover the excursions
another run's disturbances take (feed temperature above all), and a tiny model flags those as anomalies.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from monitor.commands import backtest as backtest_command
from tests.kit import train_tiny

if TYPE_CHECKING:
    from simulators.scenario import Scenario

HOUR_S = 3600.0
FAULT_START_S = 2 * HOUR_S
FAULT_DURATION_S = 600.0


@dataclass(frozen=True)
class SimFiles:
    config: Path
    clean: Path
    fault: Path
    labels: Path


def scenario(name: str, faults: list[dict[str, object]] | None = None) -> Scenario:
    from simulators import parse_scenario

    return parse_scenario(
        {
            "name": name,
            "profile": "reactor",
            "units": {"names": ["R1"]},
            "spread": 0.0,
            "disturbances": 0.0,
            "faults": faults or [],
        }
    )


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory: pytest.TempPathFactory) -> SimFiles:
    from simulators import simulate, write_csv, write_labels

    root = tmp_path_factory.mktemp("sim_backtest")
    normal = simulate(scenario("train"), duration_s=8 * HOUR_S, seed=1)
    sensors = normal.sensors
    common = {"window": 30, "epochs": 5, "train_step": 4, "calibration": "pot", "target_far": 1e-5}
    train = normal.data[0]
    det = train_tiny(train, sensors, root / "det", "lstm_ae", name="det", hidden_size=32, latent_size=8, **common)
    fc = train_tiny(train, sensors, root / "fc", "lstm", name="fc", hidden_size=32, num_layers=1, **common)
    clean = simulate(scenario("clean"), duration_s=4 * HOUR_S, seed=2)
    fault = {
        "kind": "bias",
        "unit": "R1",
        "start": FAULT_START_S,
        "duration": FAULT_DURATION_S,
        "sensors": ["reactor_temp_K"],
        "magnitude": 3.0,
    }
    faulty = simulate(scenario("fault", [fault]), duration_s=4 * HOUR_S, seed=3)
    files = SimFiles(root / "plantwatch.yaml", root / "clean.csv", root / "fault.csv", root / "labels.csv")
    write_csv(clean, files.clean)
    write_csv(faulty, files.fault)
    assert write_labels(faulty.labels, files.labels) == 1
    files.config.write_text(
        "units:\n"
        "  - name: R1\n"
        f"    sensors: [{', '.join(sensors)}]\n"
        f"    detector: {{name: det, artifact: {det}}}\n"
        f"    forecaster: {{name: fc, artifact: {fc}}}\n"
        "scheduler: {device: cpu}\n"
    )
    return files


def backtest(files: SimFiles, data: Path, labels: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    backtest_command.add_arguments(parser)
    argv = ["--config", str(files.config), "--data", str(data), "--labels", str(labels), "--out", str(out)]
    rc = backtest_command.main(parser.parse_args(argv))
    text = capsys.readouterr().out
    print(text)  # the detection figures, visible with -s
    assert rc == 0, text
    return text


def test_simulated_fault_is_alerted_on_the_right_unit_and_sensor(
    sim_files: SimFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = backtest(sim_files, sim_files.fault, sim_files.labels, tmp_path, capsys)
    assert "faults: 1, detected: 1, event recall: 1.000" in text
    assert "false alarms: 0 " in text
    assert "(top sensor reactor_temp_K)" in text
    assert "windows skipped: 0" in text


def test_simulated_fault_free_run_raises_no_alert(
    sim_files: SimFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_faults = tmp_path / "no_faults.csv"
    no_faults.write_text("unit,kind,start,end,sensors\n")
    text = backtest(sim_files, sim_files.clean, no_faults, tmp_path, capsys)
    assert "alert events: 0 " in text
    assert "false alarms: 0 over 0.167 unit-days = 0.00 per unit-day" in text
    assert (tmp_path / "alerts.jsonl").read_text() == ""
