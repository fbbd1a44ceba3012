"""`plantwatch simulate` / `plantwatch replay`: outputs, and bad input -> one line on stderr, non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main as cli_main
from simulators import read_labels, read_table


def test_offline_simulate_writes_data_and_labels(tmp_path: Path, capsys) -> None:
    out, labels = tmp_path / "data.csv", tmp_path / "labels.csv"
    argv = ["simulate", "--scenario", "demo", "--duration", "5m", "--seed", "7"]
    assert cli_main([*argv, "--out", str(out), "--labels", str(labels), "--start", "2026-03-01T00:00:00Z"]) == 0
    assert "wrote 600 rows (2 units x 300 samples, 8 sensors)" in capsys.readouterr().out
    table = read_table(out)
    assert table.timestamps[0] == 1772323200.0 and table.units[:2] == ("reactor-01", "reactor-02")
    (label,) = read_labels(labels)
    assert (label.unit, label.kind, label.start, label.end) == ("reactor-01", "bias", 1772323260.0, 1772323380.0)
    # The demo's fault is plain to see: +6 K on the reactor temperature of reactor-01 only.
    temp = table.values[0::2, 0]
    assert temp[60:180].mean() - temp[:60].mean() > 4.0
    again = tmp_path / "again.csv"
    assert cli_main([*argv, "--out", str(again), "--start", "2026-03-01T00:00:00Z"]) == 0
    assert out.read_bytes() == again.read_bytes()


def test_random_scenario_by_name(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    assert cli_main(["simulate", "--scenario", "random:5:3", "--duration", "120", "--out", str(out)]) == 0
    table = read_table(out)
    assert table.values.shape == (360, 8) and np.isfinite(table.values).all()


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *argv], capture_output=True, text=True, timeout=120, check=False
    )


def test_unknown_fault_kind_in_a_subprocess_is_one_line_without_traceback(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("units: 1\nfaults:\n  - {kind: bais, start: 10, duration: 10}\n")
    done = run_cli("simulate", "--scenario", str(scenario), "--duration", "60", "--out", str(tmp_path / "d.csv"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "faults[0].kind: unknown fault kind 'bais'; valid kinds: bias, drift" in done.stderr


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["simulate", "--scenario", "nope.yaml", "--duration", "1", "--out", "x.csv"],
            "scenario file nope.yaml not found",
        ),
        (["simulate", "--scenario", "demo", "--out", "x.csv"], "offline runs need --duration"),
        (["simulate", "--scenario", "demo", "--duration", "soon", "--out", "x.csv"], "--duration: expected a duration"),
        (["simulate", "--scenario", "demo", "--duration", "10"], "give --out CSV"),
        (
            ["simulate", "--scenario", "demo", "--duration", "10", "--out", "/nonexistent/dir/x.csv"],
            "cannot write output",
        ),
        (["simulate", "--scenario", "demo", "--broker", "localhost:notaport"], "port 'notaport' is not a number"),
        (["simulate", "--scenario", "random:x", "--duration", "1", "--out", "x.csv"], "random:SEED"),
        (["replay", "/nonexistent.csv", "--broker", "localhost:1", "--unit", "u"], "cannot read /nonexistent.csv"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], fragment: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_replay_rejects_a_file_without_time_column_or_unit(tmp_path: Path, capsys) -> None:
    no_time = tmp_path / "a.csv"
    no_time.write_text("x,y\n1,2\n")
    assert cli_main(["replay", str(no_time), "--broker", "localhost:1", "--unit", "u"]) == 2
    assert "no time column" in capsys.readouterr().err
    no_unit = tmp_path / "b.csv"
    no_unit.write_text("timestamp,y\n1,2\n")
    assert cli_main(["replay", str(no_unit), "--broker", "localhost:1"]) == 2
    assert "give --unit" in capsys.readouterr().err
    binary = tmp_path / "c.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert cli_main(["replay", str(binary), "--broker", "localhost:1", "--unit", "u"]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err


def test_the_demo_scenario_file_injects_the_fault_plantwatch_demo_injects() -> None:
    from monitor.commands.simulate import SCENARIO_DIR
    from monitor.demo.options import FAULT_SENSOR, FAULT_UNIT, DemoOptions
    from simulators import load_scenario

    (fault,) = load_scenario(SCENARIO_DIR / "demo.yaml").faults
    demo = DemoOptions()
    assert (fault.unit, fault.sensors, fault.magnitude) == (FAULT_UNIT, (FAULT_SENSOR,), demo.fault_magnitude)
    assert (fault.start_s, fault.duration_s) == (demo.fault_at_s, demo.fault_duration_s)
    comment = (SCENARIO_DIR / "demo.yaml").read_text().split("name:")[0]
    assert "60 s in, for\n# 2 min" in comment


def test_a_named_scenario_is_also_found_in_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    """An installed package has no config/scenarios of its own: the image's working directory holds them."""
    (tmp_path / "config" / "scenarios").mkdir(parents=True)
    (tmp_path / "config" / "scenarios" / "site-only.yaml").write_text("units: {names: [K-1]}\nseed: 4\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "site.csv"
    assert cli_main(["simulate", "--scenario", "site-only", "--duration", "60", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[1].split(",")[1] == "K-1"
