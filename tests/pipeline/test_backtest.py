"""`plantwatch backtest` end to end: CSV -> buffers -> ScoringEngine -> alerts -> detection figures."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from monitor.commands import backtest as backtest_command
from monitor.wire.csvfile import read_csv
from tests.pipeline.conftest import SENSORS, Artifacts, normal_data

T0 = 1_732_590_000.0


def cli_main(argv: list[str]) -> int:
    """`plantwatch backtest ...` through the command module (monitor.cli would import every other command too)."""
    assert argv[0] == "backtest"
    parser = argparse.ArgumentParser(prog="plantwatch backtest")
    backtest_command.add_arguments(parser)
    return backtest_command.main(parser.parse_args(argv[1:]))


N_ROWS = 7200  # two hours at 1 Hz
FAULT = (3600, 4200)  # rows [start, end) with a +8 K bias on temp (~6 standard deviations)


def write_csv(path: Path, data: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", *SENSORS])
        for i, row in enumerate(data):
            w.writerow([f"{T0 + i:.3f}", *(f"{v:.5f}" for v in row)])


@pytest.fixture(scope="module")
def config_file(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backtest") / "plantwatch.yaml"
    path.write_text(
        "units:\n"
        "  - name: R1\n"
        "    sensors: [temp, flow, level]\n"
        f"    detector: {{name: det, artifact: {artifacts.detector}}}\n"
        f"    forecaster: {{name: fc, artifact: {artifacts.forecaster}}}\n"
        "    alerts: {min_duration_s: 10}\n"
        "scheduler: {device: cpu}\n"
    )
    return path


def backtest(config_file: Path, data: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    rc = cli_main(["backtest", "--config", str(config_file), "--data", str(data), "--out", str(out), *extra])
    text = capsys.readouterr().out
    assert rc == 0, text
    return text


def alerts(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]


def test_fault_free_csv_raises_no_alert(config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "clean.csv"
    write_csv(data, normal_data(N_ROWS, np.random.default_rng(11)))
    text = backtest(config_file, data, tmp_path / "out", capsys)
    print(text)
    assert "alert events: 0 " in text
    assert alerts(tmp_path / "out") == []
    with open(tmp_path / "out" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    # Window 16: rows 15.. are scored by the detector; the forecaster from the row after its first window on.
    assert sum(r["detector"] == "reconstruction" for r in rows) == N_ROWS - 15
    assert sum(r["detector"] == "forecast" for r in rows) == N_ROWS - 16
    assert all(float(r["score"]) < float(r["threshold"]) * 1.5 for r in rows if r["detector"] == "reconstruction")


def test_injected_fault_fires_an_alert_and_is_evaluated(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = normal_data(N_ROWS, np.random.default_rng(12))
    values[FAULT[0] : FAULT[1], 0] += 8.0
    data = tmp_path / "fault.csv"
    write_csv(data, values)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"unit,kind,start,end,sensors\nR1,bias,{T0 + FAULT[0]},{T0 + FAULT[1] - 1},temp\n")
    text = backtest(config_file, data, tmp_path / "out", capsys, "--labels", str(labels))
    print(text)
    events = alerts(tmp_path / "out")
    firing = [e for e in events if e["state"] == "firing"]
    assert firing, text
    first = min(firing, key=lambda e: float(e["ts"]))  # type: ignore[arg-type]
    assert first["unit"] == "R1" and first["schema"] == 1
    assert T0 + FAULT[0] <= float(first["ts"]) <= T0 + FAULT[0] + 30  # type: ignore[arg-type]
    assert first["sensors"][0]["sensor"] == "temp"  # type: ignore[index]
    # Every episode (one per detector here) started during the fault and resolved after it ended; later firing
    # events of an episode (severity escalation, re-notify) keep its id.
    started: dict[object, float] = {}
    for e in firing:
        started.setdefault(e["alert_id"], float(e["ts"]))  # type: ignore[arg-type]
    # Both models catch it; the +8 bias also lies beyond the training envelope, so the sensor detector may too.
    assert {"reconstruction", "forecast"} <= {e["detector"] for e in firing} <= {"reconstruction", "forecast", "sensor"}
    assert all(T0 + FAULT[0] <= ts < T0 + FAULT[1] for ts in started.values())
    resolved = {e["alert_id"]: float(e["ts"]) for e in events if e["state"] == "resolved"}  # type: ignore[arg-type]
    assert set(resolved) == set(started)
    assert all(ts >= T0 + FAULT[1] - 1 for ts in resolved.values())
    # Figures per detector that scored, then for the service as a whole; each detector caught the fault.
    sections = text.split("detector reconstruction:\n")[1].split("detector forecast:\n")
    sections = [sections[0], *sections[1].split("any detector (alert spans merged per unit):\n")]
    assert len(sections) == 3
    for section in sections:
        assert "faults: 1, detected: 1, event recall: 1.000" in section
        assert "false alarms: 0 " in section
        assert "point-wise: precision" in section
        assert "alert time on normal rows: 0.00 %" in section


def test_read_csv_semicolons_iso_time_and_missing_cells(tmp_path: Path) -> None:
    path = tmp_path / "skab_like.csv"
    path.write_text(
        "datetime;Temp K;flow;level;anomaly\n"
        "2020-03-09 10:14:33;350.1;10.0;2.0;0\n"
        "2020-03-09 10:14:34;;10.1;2.1;0\n"
        "2020-03-09T10:14:35+00:00;350.3;x;2.2;1\n"
    )
    data = read_csv(path, {"R1": ("TempK", "flow", "level")}, default_unit="R1")
    assert data.ts.tolist() == [1583748873.0, 1583748874.0, 1583748875.0]
    assert data.units == ("R1", "R1", "R1")
    np.testing.assert_array_equal(data.values["R1"], [[350.1, 10.0, 2.0], [np.nan, 10.1, 2.1], [350.3, np.nan, 2.2]])
    with pytest.raises(ValueError, match="no column for sensor 'pressure'"):
        read_csv(path, {"R1": ("pressure",)}, default_unit="R1")


def test_read_csv_with_a_unit_column_skips_unknown_units(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text("timestamp,unit,a\n1.0,R1,5\n1.0,R9,6\n2.0,R2,7\n2.0,R1,8\n")
    data = read_csv(path, {"R1": ("a",), "R2": ("a",)}, default_unit=None)
    assert data.units == ("R1", "R2", "R1")
    assert data.skipped_rows == 1
    assert data.values["R1"].ravel().tolist() == [5.0, 8.0]
    assert data.row_of_unit["R1"].tolist() == [0, 2]


def test_bad_inputs_exit_2(config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("units: []\nbogus: 1\n")
    assert cli_main(["backtest", "--config", str(bad), "--data", "x.csv"]) == 2
    assert "bogus" in capsys.readouterr().err
    no_time = tmp_path / "no_time.csv"
    no_time.write_text("a,b\n1,2\n")
    assert cli_main(["backtest", "--config", str(config_file), "--data", str(no_time)]) == 2
    assert "no time column" in capsys.readouterr().err
