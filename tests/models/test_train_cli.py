"""`plantwatch train`: a good CSV gives an artifact; bad input gives one line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.artifacts import load_artifact
from models.synthetic import normal_process
from monitor.cli import main as cli_main

SENSORS = ["reactor_temp_K", "jacket_temp_K", "pressure_bar"]


def _write_csv(
    path: Path, rows: int = 400, sep: str = ",", unit: str | None = "R-101", time: str = "timestamp"
) -> Path:
    data = normal_process(rows, len(SENSORS), seed=3)
    header = [time, *(["unit"] if unit else []), *SENSORS]
    lines = [sep.join(header)]
    for i, row in enumerate(data):
        iso = f"2024-01-01T00:{i // 30:02d}:{2 * (i % 30):02d}"
        stamp = f"{1_700_000_000 + 2.0 * i:.1f}" if time == "timestamp" else iso
        cells = [stamp, *([unit] if unit else []), *(f"{v:.5f}" for v in row)]
        lines.append(sep.join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


FAST = ["--window", "8", "--hidden-size", "4", "--epochs", "1", "--no-progress", "--device", "cpu"]
# 400 rows cannot support the default target (POT at 1e-4): the commands that must write an artifact say so.
WEAK = ["--allow-weak-calibration"]


def test_train_writes_an_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = _write_csv(tmp_path / "normal.csv")
    out = tmp_path / "model"
    code, stdout, err = _run(["--data", str(csv_path), "--model", "gru", "--out", str(out), *FAST, *WEAK], capsys)
    print(stdout, err)
    assert code == 0, err
    model = load_artifact(out, expected_sensors=SENSORS)
    assert model.kind == "gru" and model.period_s == 2.0 and model.window == 8
    assert model.manifest["training"]["data"]["rows"] == 400
    assert "wrote" in stdout


def test_train_reads_semicolons_and_iso_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = _write_csv(tmp_path / "skab-like.csv", sep=";", unit=None, time="datetime")
    out = tmp_path / "model"
    code, _, err = _run(
        ["--data", str(csv_path), "--model", "lstm_ae", "--out", str(out), "--calibration", "pot", *FAST, *WEAK],
        capsys,
    )
    assert code == 0, err
    model = load_artifact(out)
    # POT asked for, but 400 rows hold too few excesses for a tail fit: the manifest names the fallback
    assert model.manifest["threshold"]["requested_method"] == "pot"
    assert model.period_s == 2.0 and model.threshold_method in ("quantile", "max_margin")
    assert model.sensors == tuple(SENSORS)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_file", "no such file"),
        ("missing_column", "missing column(s) flow_m3_h"),
        ("non_numeric", "'hot' is not a number"),
        ("too_few_rows", "too few rows for window 8"),
        ("no_time_column", "no time column"),
        ("wrong_unit", "no rows of unit 'R-999'"),
        ("bad_device", "CUDA is not available"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    case: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = _write_csv(tmp_path / "normal.csv")
    extra: list[str] = []
    if case == "missing_file":
        csv_path = tmp_path / "absent.csv"
    elif case == "missing_column":
        extra = ["--sensors", "reactor_temp_K,flow_m3_h"]
    elif case == "non_numeric":
        lines = csv_path.read_text().splitlines()
        cells = lines[5].split(",")
        cells[3] = "hot"
        lines[5] = ",".join(cells)
        csv_path.write_text("\n".join(lines) + "\n")
    elif case == "too_few_rows":
        csv_path = _write_csv(tmp_path / "short.csv", rows=30)
    elif case == "no_time_column":
        csv_path.write_text(csv_path.read_text().replace("timestamp", "when", 1))
    elif case == "wrong_unit":
        extra = ["--unit", "R-999"]
    elif case == "bad_device":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        extra = ["--device", "cuda"]
    fast = [a for a in FAST if a not in ("--device", "cpu")] if case == "bad_device" else FAST
    code, _, err = _run(
        ["--data", str(csv_path), "--model", "lstm", "--out", str(tmp_path / "m"), *fast, *extra], capsys
    )
    print(f"{case}: exit {code}: {err.strip()}")
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_unsupported_target_exits_2_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = _write_csv(tmp_path / "normal.csv")
    args = ["--data", str(csv_path), "--model", "lstm_ae", "--out", str(tmp_path / "m"), *FAST]
    code, _, err = _run(args, capsys)
    print(f"refused: exit {code}: {err.strip()}")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "does not support target FAR 0.0001" in err and "--allow-weak-calibration" in err and "more" in err
    assert not (tmp_path / "m" / "manifest.json").exists()
    code, stdout, err = _run([*args, *WEAK], capsys)
    print(f"allowed: exit {code}\n{stdout}{err}")
    assert code == 0 and (tmp_path / "m" / "manifest.json").is_file()
    assert "n_effective" in stdout and "holdout FAR" in stdout and "NOT supported" in stdout
    assert "warning: the calibration does not support" in err
    assert "warning: the data covers 0.2 h; a day or more is recommended" in err
    # a target the data can carry: no refusal, no calibration warning
    longer = _write_csv(tmp_path / "longer.csv", rows=3000)
    lax = ["--data", str(longer), "--model", "lstm_ae", "--out", str(tmp_path / "lax"), *FAST]
    code, stdout, err = _run([*lax, "--calibration", "quantile", "--target-far", "0.2"], capsys)
    print(stdout, err)
    assert code == 0 and "(quantile, target FAR 0.2, supported)" in stdout and "does not support" not in err


def test_train_command_module_does_not_import_torch() -> None:
    code = "import sys, monitor.commands.train, monitor.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_period_from_median_step(tmp_path: Path) -> None:
    from monitor.wire.csvfile import read_table

    table = read_table(_write_csv(tmp_path / "a.csv", rows=50)).for_unit()
    assert table.period_s() == 2.0 and table.unit == "R-101" and table.values.shape == (50, 3)
    assert np.all(np.diff(table.timestamps) > 0)


def test_cli_kinds_match_the_registry() -> None:
    from models.networks import KINDS
    from monitor.commands.train import MODEL_KINDS

    assert set(MODEL_KINDS) == set(KINDS)


def test_train_model_pca_writes_an_artifact_served_with_numpy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from models.pca import PcaDetector
    from models.serving import load_for_serving

    csv_path = _write_csv(tmp_path / "normal.csv")
    out = tmp_path / "pca"
    code, stdout, err = _run(
        ["--data", str(csv_path), "--model", "pca", "--out", str(out), "--window", "8", *WEAK], capsys
    )
    assert code == 0, err
    assert "wrote" in stdout and "pca (detector)" in stdout and "components explaining" in stdout
    model = load_for_serving(out, expected_sensors=SENSORS)
    assert isinstance(model, PcaDetector) and model.window == 8 and model.period_s == 2.0
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("format_version", "scaler", "score", "threshold", "envelope", "training", "weights", "versions"):
        assert key in manifest, key
    assert manifest["training"]["data"]["rows"] == 400 and manifest["threshold"]["holdout"] is not None
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "weights.safetensors"]
    # a network's size does not apply to a pca: refused like any bad option
    code, _, err = _run(
        ["--data", str(csv_path), "--model", "pca", "--out", str(tmp_path / "x"), "--hidden-size", "4"], capsys
    )
    assert code == 2 and "hidden_size does not apply to model kind 'pca'" in err


def test_train_help_lists_every_kind_of_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from models.kinds import KINDS

    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(kind in text for kind in KINDS) and "lstm_ae (default)" in text
