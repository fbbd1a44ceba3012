"""`plantwatch report`: a PNG from backtest-format scores, alerts, labels and data (no training needed)."""

from __future__ import annotations

import argparse
import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from monitor.alerts.event_payload import event_to_dict
from monitor.commands import report as report_command
from monitor.messages import AlertEvent
from monitor.report import reduce_points
from monitor.result_files import read_alerts, read_scores

SENSORS = ("reactor_temp_K", "jacket_temp_K", "level_m")
T0 = 1767225600.0
FAULT = (T0 + 600.0, T0 + 900.0)


def write_inputs(root: Path) -> dict[str, Path]:
    """A 30-minute, 2-unit run at 1 s: R1 has a reactor_temp_K bias in FAULT, alerted by both detectors."""
    rng = np.random.default_rng(0)
    ts = T0 + np.arange(1800, dtype=np.float64)
    in_fault = (ts >= FAULT[0]) & (ts < FAULT[1])
    paths = {name: root / name for name in ("scores.csv", "alerts.jsonl", "labels.csv", "data.csv")}
    with open(paths["data.csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "unit", *SENSORS])
        for unit in ("R1", "R2"):
            values = rng.normal(0, 1, (ts.size, len(SENSORS))) + np.array([350.0, 300.0, 2.0])
            if unit == "R1":
                values[in_fault, 0] += 6.0
            for t, row in zip(ts, values, strict=True):
                w.writerow([f"{t:.3f}", unit, *(f"{v:.4f}" for v in row)])
    with open(paths["scores.csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["unit", "ts", "detector", "model", "score", "threshold", "top_sensor"])
        for unit in ("R1", "R2"):
            for detector, model, threshold in (("reconstruction", "det", 1.3), ("forecast", "fc", 5.0)):
                score = rng.gamma(4.0, threshold / 8.0, ts.size)
                if unit == "R1":
                    score[in_fault] *= 60.0
                for t, s in zip(ts, score, strict=True):
                    w.writerow([unit, f"{t:.3f}", detector, model, f"{s:.6g}", f"{threshold:.6g}", "reactor_temp_K"])
    events = []
    for detector in ("reconstruction", "forecast"):
        start = FAULT[0] + 2.0
        for state, at in (("firing", start), ("resolved", FAULT[1] + 40.0)):
            events.append(
                AlertEvent(
                    alert_id=f"R1:{detector}:{round(start * 1000)}",
                    unit="R1",
                    state=state,  # type: ignore[arg-type]
                    detector=detector,  # type: ignore[arg-type]
                    ts=at,
                    started_at=start,
                    score=80.0 if state == "firing" else 0.5,
                    threshold=1.3,
                    severity="critical",
                    sensors=(("reactor_temp_K", 0.93), ("jacket_temp_K", 0.04)),
                    model="det" if detector == "reconstruction" else "fc",
                )
            )
    paths["alerts.jsonl"].write_text("".join(json.dumps(event_to_dict(e)) + "\n" for e in events))
    paths["labels.csv"].write_text(f"unit,kind,start,end,sensors\nR1,bias,{FAULT[0]},{FAULT[1]},reactor_temp_K\n")
    return paths


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND", "PNG is truncated"
    return width, height


def run_report(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    report_command.add_arguments(parser)
    return report_command.main(parser.parse_args(argv))


def test_report_renders_a_png_per_unit_with_signals_scores_alerts_and_faults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = write_inputs(tmp_path)
    out = tmp_path / "report.png"
    argv = ["--scores", str(p["scores.csv"]), "--alerts", str(p["alerts.jsonl"]), "--out", str(out)]
    rc = run_report([*argv, "--labels", str(p["labels.csv"]), "--data", str(p["data.csv"])])
    assert rc == 0
    assert "2 unit(s), 2 alert episode(s), 1 labelled fault(s)" in capsys.readouterr().out
    width, height = png_size(out)
    # 2 units x (signals + 2 detectors) = 6 panels of ~230 px at 100 dpi, 1500 px wide.
    assert width == 1500
    assert 1200 <= height <= 1800
    assert 50_000 < out.stat().st_size < 3_000_000


def test_report_without_data_or_labels_draws_the_score_panels_only(tmp_path: Path) -> None:
    p = write_inputs(tmp_path)
    out = tmp_path / "scores-only.png"
    assert run_report(["--scores", str(p["scores.csv"]), "--alerts", str(p["alerts.jsonl"]), "--out", str(out)]) == 0
    width, height = png_size(out)
    assert width == 1500
    assert 900 <= height <= 1200  # 4 panels


def test_report_refuses_a_file_that_is_not_a_scores_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write_inputs(tmp_path)
    out = tmp_path / "x.png"
    assert run_report(["--scores", str(p["labels.csv"]), "--alerts", str(p["alerts.jsonl"]), "--out", str(out)]) == 2
    assert "not a scores file" in capsys.readouterr().err
    assert not out.exists()


def test_readers_return_what_the_files_hold(tmp_path: Path) -> None:
    p = write_inputs(tmp_path)
    scores = read_scores(p["scores.csv"])
    assert sorted(scores) == ["R1", "R2"]
    assert sorted(scores["R1"]) == ["forecast", "reconstruction"]
    series = scores["R1"]["reconstruction"]
    assert series.model == "det" and series.ts.size == 1800 and float(series.threshold[0]) == pytest.approx(1.3)
    events = read_alerts(p["alerts.jsonl"])
    assert [e.state for e in events] == ["firing", "resolved", "firing", "resolved"]
    assert events[0].sensors[0] == ("reactor_temp_K", 0.93)


def test_reduce_points_keeps_a_one_sample_spike() -> None:
    ts = np.arange(100_000, dtype=np.float64)
    values = np.zeros(100_000)
    values[54_321] = 9.0
    xs, ys = reduce_points(ts, values, max_points=1000)
    assert xs.size <= 1000 and ys.size == xs.size
    assert float(ys.max()) == 9.0
