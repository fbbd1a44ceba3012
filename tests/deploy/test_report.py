"""`plantwatch report`: a PNG from backtest-format scores, alerts, labels and data (no training needed)."""

from __future__ import annotations

import argparse
import csv
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from monitor.alerts.event_payload import event_to_dict
from monitor.commands import report as report_command
from monitor.messages import AlertEvent
from monitor.report import draw_report, read_signals, reduce_points
from monitor.report_panels import log_tick_values
from monitor.result_files import read_alerts, read_scores
from monitor.wire.labels import read_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
    # 2 units x (a row of 3 sensor panels + 2 detector panels), 1500 px wide.
    assert width == 1500
    assert 1100 <= height <= 1500
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


def draw(tmp_path: Path, units: str = "raw") -> Figure:
    """The report of write_inputs, laid out as savefig lays it out."""
    p = write_inputs(tmp_path)
    signals = read_signals(p["data.csv"], ["R1", "R2"])
    labels = read_labels(p["labels.csv"])
    fig = draw_report(read_scores(p["scores.csv"]), read_alerts(p["alerts.jsonl"]), labels=labels, signals=signals,
                      units=units)  # type: ignore[arg-type]  # fmt: skip
    fig.canvas.draw()
    return fig


@pytest.fixture
def figure(tmp_path: Path) -> Iterator[Figure]:
    import matplotlib.pyplot as plt

    fig = draw(tmp_path)
    yield fig
    plt.close(fig)


def _panels(fig: Figure, unit: str) -> list[Axes]:
    subfig = next(s for s in fig.subfigs if s.get_suptitle().startswith(unit + ":"))
    return list(subfig.axes)


def test_signals_are_drawn_per_sensor_in_their_engineering_units(figure: Figure) -> None:
    r1 = _panels(figure, "R1")
    titles = [ax.get_title(loc="left") for ax in r1[:3]]
    # The alerted sensor first and marked; each panel is the CSV's column under its name, in its own units.
    assert titles == ["reactor_temp_K  (named by the alerts)", "jacket_temp_K", "level_m"]
    low, high = r1[0].get_ylim()
    assert 345 < low < 350 and 356 < high < 362  # about 350 K, and the 6 K bias on top of it
    low, high = r1[2].get_ylim()
    assert -3 < low < 2 < high < 7  # level_m around 2 m
    assert not any(t.get_text().startswith(("+", "1e")) for t in r1[0].get_yticklabels())  # plain numbers


def test_z_units_draw_every_sensor_standardised_on_one_axis(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = draw(tmp_path, units="z")
    r1 = _panels(fig, "R1")
    plt.close(fig)
    assert r1[0].get_ylabel().startswith("signals, z-score")
    assert [line.get_label() for line in r1[0].get_lines()] == ["reactor_temp_K (alerted)", "jacket_temp_K", "level_m"]
    assert len(r1) == 3  # the z panel and the two detectors


def test_each_score_panel_has_several_labelled_ticks_and_a_legend_naming_its_shades(figure: Figure) -> None:
    for unit, alerted in (("R1", True), ("R2", False)):
        for ax in _panels(figure, unit)[3:]:
            low, high = ax.get_ylim()
            labelled = [t for t in ax.get_yticklabels() if t.get_text() and low <= t.get_position()[1] <= high]
            assert len(labelled) >= 3, [t.get_text() for t in labelled]
            names = [t.get_text() for t in ax.get_legend().get_texts()]
            detector = ax.get_ylabel().split("\n")[0]
            expected = ["threshold in force", *([f"{detector} alert", "known fault (labels)"] if alerted else [])]
            assert names[0].startswith("score (") and names[1:] == expected


def test_log_ticks_label_narrow_and_wide_axes() -> None:
    assert [f"{v:g}" for v in log_tick_values(0.65, 1.3)] == ["0.7", "0.8", "0.9", "1", "1.2"]
    assert [f"{v:g}" for v in log_tick_values(0.54, 279)] == ["1", "3", "10", "30", "100"]
    assert len(log_tick_values(0.9, 1.1)) >= 3 and len(log_tick_values(1e-3, 1e5)) == 9


def test_episode_notes_sit_at_their_episode_inside_the_panel_and_say_when_they_resolved(figure: Figure) -> None:
    renderer = figure.canvas.get_renderer()
    for ax in _panels(figure, "R1")[3:]:
        (note,) = ax.texts
        assert note.get_text() == (
            "top: reactor_temp_K 93%\nfired 2 s after the fault began\nresolved 40 s after it ended"
        )
        box, panel = note.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1
        # Horizontally at the episode: it starts within a few points of the firing time.
        fired = ax.transData.transform((float(FAULT[0] + 2.0) / 86400.0, 1.0))[0]
        assert abs(box.x0 - fired) < 15
    footer = figure.get_supxlabel().replace("\n", " ")
    assert "An episode outlives its fault: a window is the newest W rows" in footer
