"""Fleet and range training: one model for several simulated reactors, each unit's rows kept apart; time ranges and
exclusions (label CSV, alert records) counted exactly; a recording directory; --threads; a config pointing two
units at one fleet artifact. Real files and real (tiny) training through `plantwatch train`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.segments import UnitRows, fleet_split
from models.train_config import TrainConfig, window_span
from models.train_data import TrainingSelection, load_training_rows
from models.train_rows import part_windows
from monitor.cli import main as cli_main
from monitor.messages import AlertEvent
from monitor.result_files import SCORE_COLUMNS, SCORES_FILE, FilesSink, read_scores
from monitor.wire.csvfile import read_table
from monitor.wire.labels import Label, write_labels

UNITS = ("R-101", "R-102")
FAST = ["--window", "8", "--hidden-size", "4", "--latent-size", "2", "--epochs", "1", "--no-progress"]
TINY = [*FAST, "--device", "cpu", "--allow-weak-calibration"]


def _simulate(path: Path, hours: float, seed: int, units: tuple[str, ...] = UNITS) -> Path:
    """A CSV of simulated reactors (default unit-to-unit spread: their operating points differ)."""
    from simulators import parse_scenario, simulate, write_csv

    scenario = parse_scenario({"name": "fleet", "profile": "reactor", "units": {"names": list(units)}})
    write_csv(simulate(scenario, duration_s=hours * 3600.0, seed=seed), path)
    return path


def _train(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(["train", *argv])
    out, err = capsys.readouterr()
    print(out, err)
    return code, out, err


def _manifest(directory: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((directory / "manifest.json").read_text())


def _alert(unit: str, state: str, ts: float, started_at: float) -> AlertEvent:
    return AlertEvent(
        alert_id=f"{unit}:reconstruction:{round(started_at * 1000)}",
        unit=unit,
        state=state,  # type: ignore[arg-type]
        detector="reconstruction",
        ts=ts,
        started_at=started_at,
        score=2.0,
        threshold=1.0,
        severity="warning",
        sensors=(("reactor_temp_K", 0.8),),
        model="det",
    )


def _write_alerts(directory: Path, events: list[AlertEvent]) -> Path:
    """alerts.jsonl written by the service's own writer (monitor.result_files.FilesSink)."""
    with FilesSink(directory) as sink:
        for event in events:
            sink.alert(event)
    return sink.alerts_path


@pytest.fixture(scope="module")
def two_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _simulate(tmp_path_factory.mktemp("fleet") / "normal.csv", hours=1.0, seed=5)


def test_windows_never_span_two_units_and_every_unit_is_in_every_part(two_units: Path) -> None:
    rows = load_training_rows(TrainingSelection(data=two_units, units=("all",)))
    assert [u.unit for u in rows.units] == list(UNITS) and rows.period_s == 1.0
    config = TrainConfig(kind="lstm_ae", window=8)
    split = fleet_split(rows.units, 0.2, 0.2, 0.1, min_block=window_span(config))
    first = rows.units[0].rows
    unit_of_row = np.repeat([0.0, 1.0], [u.rows for u in rows.units])
    # What crosses between the units: their operating points differ far more than any step inside one unit.
    jump = np.abs(rows.values[first] - rows.values[first - 1])
    steps = np.concatenate([np.abs(np.diff(rows.values[:first], axis=0)), np.abs(np.diff(rows.values[first:], axis=0))])
    print(f"jump between the units {np.round(jump, 3)}, largest step inside one {np.round(steps.max(axis=0), 3)}")
    assert (jump > steps.max(axis=0)).any()
    big = jump > steps.max(axis=0)
    # Row markers windowed by the trainer's own builder: each window's rows of one unit, consecutive in time.
    seconds = rows.timestamps - rows.timestamps.min()  # small enough for the builder's float32
    markers = np.stack([unit_of_row, seconds, *rows.values[:, big].T], axis=1)
    usable = np.ones(len(markers), dtype=bool)
    for name, part in split.parts().items():
        x, y = part_windows(markers, usable, part, config.window, horizon=0)
        assert y is None and x.shape[0] > 0, name
        assert (x[:, :, 0] == x[:, :1, 0]).all(), f"{name}: a window holds rows of two units"
        assert (np.diff(x[:, :, 1], axis=1) == 1.0).all(), f"{name}: a window's rows are not consecutive"
        assert (np.abs(np.diff(x[:, :, 2:], axis=1)) < jump[big]).all(), f"{name}: the units' jump inside a window"
        assert set(np.unique(x[:, 0, 0])) == {0.0, 1.0}, f"{name}: not every unit is in the {name} part"
    # A forecaster's pairs (window + horizon rows) are cut the same way.
    x, y = part_windows(markers, usable, split.train, config.window, horizon=3)
    assert y is not None and (np.concatenate([x, y], axis=1)[:, :, 0] == x[:, :1, 0]).all()
    # Each unit's newest 10 % is its holdout.
    assert [(s.start, s.stop) for s in split.holdout] == [
        (u.rows - round(u.rows * 0.1) + offset, u.rows + offset)
        for u, offset in zip(rows.units, (0, first), strict=True)
    ]


def test_a_split_cut_at_breaks_keeps_every_block_inside_one_piece() -> None:
    units = [UnitRows("a", 1000, breaks=(333, 500)), UnitRows("b", 800)]
    split = fleet_split(units, 0.2, 0.2, 0.1, min_block=9)
    edges = {0, 333, 500, 1000, 1800}
    blocks = [b for part in split.parts().values() for b in part]
    assert sorted((b.start, b.stop) for b in blocks)[0][0] == 0 and sum(b.stop - b.start for b in blocks) == 1800
    for block in blocks:
        assert not any(block.start < e < block.stop for e in edges), block


@pytest.fixture(scope="module")
def fleet_artifact(two_units: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import contextlib
    import io

    out = tmp_path_factory.mktemp("fleet-model") / "fleet"
    text = io.StringIO()
    previous = torch.get_num_threads()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        argv = ["train", "--data", str(two_units), "--units", "all", "--model", "lstm_ae", "--out", str(out)]
        code = cli_main([*argv, "--name", "fleet", *TINY, "--threads", "1"])
    torch.set_num_threads(previous)
    print(text.getvalue())
    assert code == 0, text.getvalue()
    return out, text.getvalue()


def test_fleet_model_records_its_units_and_pools_every_part(fleet_artifact: tuple[Path, str], two_units: Path) -> None:
    out, text = fleet_artifact
    table = read_table(two_units)
    manifest = _manifest(out)
    fleet = manifest["training"]["fleet"]
    for entry, unit in zip(fleet["units"], UNITS, strict=True):
        ts = table.timestamps[np.asarray(table.units) == unit]
        assert entry["unit"] == unit and entry["rows"] == ts.size and entry["pieces"] == 1
        assert entry["first_ts"] == ts.min() and entry["last_ts"] == ts.max() and entry["span_s"] == 3600.0
    assert manifest["training"]["data"]["rows"] == len(table.timestamps)
    split = manifest["training"]["split"]
    rows_a = fleet["units"][0]["rows"]
    for name in ("train", "validation", "calibration", "holdout"):
        assert any(b <= rows_a for _, b in split[name]) and any(a >= rows_a for a, _ in split[name]), name
    assert manifest["threshold"]["holdout"]["rows"] == split["holdout"] and len(split["holdout"]) == 2
    # Shared scaling, said why, with the simulated reactors' spread of operating points warned about.
    scaling = fleet["scaling"]
    assert scaling["mode"] == "shared" and "per-unit scaler" in scaling["why"]
    assert scaling["mean_spread"]["largest_pooled_std"] > scaling["mean_spread"]["warning_above"]
    assert any("pooled within-unit standard deviations" in w for w in manifest["training"]["warnings"])
    assert "warning: the units' means of sensor" in text
    # The envelope covers both units: each sensor's range spans both units' values; the time they cover once.
    envelope = manifest["envelope"]
    assert envelope["rows"] == len(table.timestamps) and envelope["span_s"] == 3600.0
    for i, sensor in enumerate(table.columns):
        assert envelope["sensors"][sensor]["min"] == np.nanmin(table.values[:, i])
        assert envelope["sensors"][sensor]["max"] == np.nanmax(table.values[:, i])
    assert "fleet model of 2 units" in text and "torch threads: 1" in text


def test_range_and_exclusions_are_counted_exactly(
    two_units: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = read_table(two_units)
    t0 = float(table.timestamps.min())
    labels = tmp_path / "incidents.csv"
    write_labels([Label("R-101", "bias", t0 + 1000.0, t0 + 1500.0), Label("R-999", "bias", t0, t0 + 9e9)], labels)
    alerts = _write_alerts(
        tmp_path / "alerts",
        [
            _alert("R-102", "firing", t0 + 2000.0, t0 + 1990.0),
            _alert("R-102", "firing", t0 + 2050.0, t0 + 1990.0),  # a re-notification: the same episode
            _alert("R-102", "resolved", t0 + 2100.0, t0 + 1990.0),
            _alert("R-102", "firing", t0 + 2810.0, t0 + 2800.0),  # never resolved: runs to the end of the data
        ],
    )
    start, stop = t0 + 600.0, t0 + 3000.0
    iso_start = "2026-01-01T00:10:00"  # t0 + 600 s: the simulator's default start is 2026-01-01T00:00:00Z
    out = tmp_path / "m"
    argv = ["--data", str(two_units), "--units", "R-101,R-102", "--from", iso_start, "--to", f"{stop:.3f}"]
    argv += ["--exclude", str(labels), "--exclude", str(alerts)]
    code, stdout, err = _train([*argv, "--model", "lstm_ae", "--out", str(out), *TINY], capsys)
    assert code == 0, err

    def ts_of(unit: str) -> np.ndarray:
        ts = table.timestamps[np.asarray(table.units) == unit]
        return ts[(ts >= start) & (ts < stop)]

    a, b = ts_of("R-101"), ts_of("R-102")
    by_labels = int(((a >= t0 + 1000.0) & (a <= t0 + 1500.0)).sum())
    by_alerts = int(((b >= t0 + 1990.0) & (b <= t0 + 2100.0)).sum() + (b >= t0 + 2800.0).sum())
    print(f"expected: in range {a.size} + {b.size}; labels {by_labels}, alerts {by_alerts}")
    in_range = a.size + b.size
    assert f"kept {in_range} of {len(table.timestamps)} rows" in stdout
    assert f"excluded {by_labels} rows by {labels} (labels, 2 periods: R-101 {by_labels})" in stdout
    assert f"excluded {by_alerts} rows by {alerts} (alerts, 2 periods: R-102 {by_alerts})" in stdout
    manifest = _manifest(out)
    units = {u["unit"]: u for u in manifest["training"]["fleet"]["units"]}
    assert units["R-101"]["rows"] == a.size - by_labels and units["R-101"]["pieces"] == 2
    # R-102's open episode takes its rows to the end: no rows after it, so no second cut
    assert units["R-102"]["rows"] == b.size - by_alerts and units["R-102"]["pieces"] == 2
    assert manifest["training"]["data"]["rows"] == in_range - by_labels - by_alerts
    selection = manifest["training"]["selection"]
    assert selection["from"] == start and selection["to"] == stop
    assert [r["rows"] for r in selection["exclusions"]] == [
        {"R-101": by_labels, "R-102": 0},
        {"R-101": 0, "R-102": by_alerts},
    ]
    assert manifest["training"]["data"]["first_ts"] == start
    # No block of the split (so no window) spans a cut: inside each block the rows are one period apart.
    rows = load_training_rows(
        TrainingSelection(data=two_units, units=UNITS, time_from=start, time_to=stop, exclude=(labels, alerts))
    )
    for name, blocks in manifest["training"]["split"].items():
        if isinstance(blocks, list):
            for lo, hi in blocks:
                assert (np.diff(rows.timestamps[lo:hi]) == 1.0).all(), (name, lo, hi)


def test_a_recording_directory_trains_with_its_alert_periods_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = read_table(_simulate(tmp_path / "all.csv", hours=1.0, seed=9, units=("R-101",)))
    t0 = float(source.timestamps.min())
    recording = tmp_path / "recording"
    unit_dir = recording / "R-101"
    unit_dir.mkdir(parents=True)
    lines = (tmp_path / "all.csv").read_text().splitlines()
    header, body = lines[0], lines[1:]
    # Two row files whose names sort against their times (the reader orders them by first timestamp), with a 10 min
    # stop of the recorder between them, the newest being written (a torn last line); one with a header only (just
    # rotated); the recording's scores, which are not sensor data.
    (unit_dir / "rows-2.csv").write_text("\n".join([header, *body[:1500]]) + "\n")
    (unit_dir / "rows-10.csv").write_text("\n".join([header, *body[2100:]]) + "\n" + body[0][:20])
    (unit_dir / "rows-11.csv").write_text(header + "\n")
    (unit_dir / "scores-1.csv").write_text(",".join(SCORE_COLUMNS) + f"\nR-101,{t0},reconstruction,det,1,2,2,\n")
    alerts = _write_alerts(
        tmp_path / "episode",
        [_alert("R-101", "firing", t0 + 2510.0, t0 + 2500.0), _alert("R-101", "resolved", t0 + 2700.0, t0 + 2500.0)],
    )
    (unit_dir / "alerts-1.jsonl").write_text(alerts.read_text() + '{"schema": 1, "alert_id": "R-1')
    out = tmp_path / "m"
    code, stdout, err = _train(["--data", str(recording), "--model", "lstm_ae", "--out", str(out), *TINY], capsys)
    assert code == 0, err
    kept = source.timestamps[np.r_[0:1500, 2100 : len(body)]]
    episode = int(((kept >= t0 + 2500.0) & (kept <= t0 + 2700.0)).sum())
    assert "read 2 CSV files under" in stdout and "skipped 2 without data rows or holding scores" in stdout
    assert "leaving out the alert episodes recorded in" in stdout and "--keep-alert-periods" in stdout
    assert f"excluded {episode} rows by the 1 alert file in {recording} (alerts, 1 period: R-101 {episode})" in stdout
    assert "cut at time gaps longer than 6 periods (no window spans one): R-101 1" in stdout
    fleet = _manifest(out)["training"]["fleet"]["units"]
    assert fleet == [
        {
            "unit": "R-101",
            "rows": kept.size - episode,
            "pieces": 3,
            "first_ts": t0,
            "last_ts": float(kept.max()),
            "span_s": float(kept.max()) - t0 + 1.0,
        }
    ]
    # --keep-alert-periods: the episode's rows are trained on too.
    keep = tmp_path / "keep"
    code, stdout, err = _train(
        ["--data", str(recording), "--model", "lstm_ae", "--out", str(keep), "--keep-alert-periods", *TINY], capsys
    )
    assert code == 0, err
    assert "keeping the periods of the 1 alert file" in stdout
    assert _manifest(keep)["training"]["fleet"]["units"][0]["rows"] == kept.size
    assert _manifest(keep)["training"]["fleet"]["units"][0]["pieces"] == 2


def test_threads_option_sets_torch_threads(two_units: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    forecaster = [a for a in TINY if a not in ("--latent-size", "2")]  # a forecaster, through the same data path
    argv = ["--data", str(two_units), "--unit", "R-102", "--model", "lstm", "--out", str(out), *forecaster]
    argv += ["--threads", "2"]
    code, stdout, err = _train(argv, capsys)
    assert code == 0, err
    assert "torch threads: 2\n" in stdout and torch.get_num_threads() == 2
    manifest = _manifest(out)
    assert manifest["training"]["figures"]["torch_threads"] == 2
    assert [u["unit"] for u in manifest["training"]["fleet"]["units"]] == ["R-102"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "holds units R-101, R-102: choose one with --unit, or several with --units"),
        (["--units", "R-101,R-999"], "no rows of unit 'R-999'"),
        (["--units", "all", "--from", "2030-01-01T00:00:00"], "unit R-101: no rows left after the time range"),
        (["--units", "all", "--from", "2026-01-01T00:59:50"], "unit R-101: too few rows for window 8: 10 rows"),
        (["--units", "all", "--from", "100", "--to", "50"], "--from must be before --to"),
        (["--units", "all", "--exclude", "absent.csv"], "cannot read absent.csv: no such file"),
    ],
)
def test_bad_selections_exit_2_with_one_line(
    extra: list[str], expected: str, two_units: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    code, _, err = _train(["--data", str(two_units), "--model", "lstm_ae", "--out", str(out), *TINY, *extra], capsys)
    assert code == 2 and expected in err
    assert len(err.strip().splitlines()) == 1 and not (out / "manifest.json").exists()


def test_one_fleet_artifact_serves_two_units(
    fleet_artifact: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact, _ = fleet_artifact
    data = _simulate(tmp_path / "run.csv", hours=0.1, seed=21)
    sensors = ", ".join(read_table(data).columns)
    config = tmp_path / "plantwatch.yaml"
    config.write_text(
        "units:\n"
        + "".join(
            f"  - name: {unit}\n    sensors: [{sensors}]\n    detector: {{name: fleet, artifact: {artifact}}}\n"
            for unit in UNITS
        )
        + "scheduler: {device: cpu}\n"
    )
    assert cli_main(["check-config", str(config)]) == 0
    out = tmp_path / "out"
    assert cli_main(["backtest", "--config", str(config), "--data", str(data), "--out", str(out)]) == 0
    print(capsys.readouterr().out)
    scores = read_scores(out / SCORES_FILE)
    rows_per_unit = len(read_table(data).timestamps) // 2
    for unit in UNITS:
        series = scores[unit]["reconstruction"]
        assert series.model == "fleet" and series.ts.size == rows_per_unit - 8 + 1
        assert np.isfinite(series.score).all() and math.isclose(
            series.threshold[0],
            _manifest(artifact)["threshold"]["value"],
            rel_tol=1e-5,  # scores.csv: 6 digits
        )


def test_choosing_the_training_rows_imports_no_torch(two_units: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    labels = tmp_path / "labels.csv"
    write_labels([Label("R-101", "bias", 0.0, 1.0)], labels)
    code = (
        "import sys; from pathlib import Path; from models.train_data import TrainingSelection, load_training_rows; "
        f"rows = load_training_rows(TrainingSelection(Path({str(two_units)!r}), units=['all'], "
        f"exclude=[Path({str(labels)!r})])); print(len(rows.units), 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2", "False"]


def test_a_pca_fleet_is_split_per_unit_too(two_units: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pca"
    argv = ["--data", str(two_units), "--units", "all", "--model", "pca", "--out", str(out), "--window", "8"]
    code, stdout, err = _train([*argv, "--no-progress", "--allow-weak-calibration"], capsys)
    assert code == 0, err
    manifest = _manifest(out)
    rows = [u["rows"] for u in manifest["training"]["fleet"]["units"]]
    assert manifest["training"]["split"]["holdout"] == [
        [rows[0] - round(rows[0] * 0.1), rows[0]],
        [sum(rows) - round(rows[1] * 0.1), sum(rows)],
    ]
    assert "fleet model of 2 units" in stdout and "pooled within-unit standard deviations" in err
