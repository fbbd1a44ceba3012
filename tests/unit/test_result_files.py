"""scores.csv and alerts.jsonl (monitor/result_files.py): what FilesSink writes, read_scores / read_alerts read."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.messages import AlertEvent
from monitor.result_files import FilesSink, read_alerts, read_scores
from monitor.wire.payloads import DetectorScore, ScoredRow

EVENT = AlertEvent(
    alert_id="R1:reconstruction:100000",
    unit="R1",
    state="firing",
    detector="reconstruction",
    ts=102.0,
    started_at=100.0,
    score=3.0,
    threshold=1.5,
    severity="critical",
    sensors=(("b", 0.9), ("a", 0.1)),
    model="det",
    calibrated_threshold=1.0,
)


def row(ts: float, score: float) -> ScoredRow:
    return ScoredRow(
        "R1",
        ts,
        {
            "reconstruction": DetectorScore(score, 1.5, 1.0, "det", {"a": 0.1 * score, "b": 0.9 * score}),
            "forecast": DetectorScore(score / 2, 2.0, 2.0, "fc", {}),
        },
    )


def test_files_sink_writes_what_the_readers_read_back(tmp_path: Path) -> None:
    with FilesSink(tmp_path / "out") as files:
        files.scored([row(101.0, 0.5), row(102.0, 3.0)])
        files.alert(EVENT)
        assert files.rows_written == 4 and files.events_written == 1
    lines = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert lines[0] == "unit,ts,detector,model,score,threshold,calibrated_threshold,top_sensor"
    assert lines[1:3] == ["R1,101.000,reconstruction,det,0.5,1.5,1,b", "R1,101.000,forecast,fc,0.25,2,2,"]
    scores = read_scores(tmp_path / "out" / "scores.csv")
    assert scores["R1"]["reconstruction"].score.tolist() == [0.5, 3.0]
    assert scores["R1"]["reconstruction"].threshold.tolist() == [1.5, 1.5]  # the threshold in force
    assert scores["R1"]["forecast"].model == "fc"
    assert read_alerts(tmp_path / "out" / "alerts.jsonl") == [EVENT]


def test_readers_name_a_bad_file(tmp_path: Path) -> None:
    bad_scores = tmp_path / "scores.csv"
    bad_scores.write_text("unit,ts\nR1,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        read_scores(bad_scores)
    bad_alerts = tmp_path / "alerts.jsonl"
    bad_alerts.write_text('{"schema": 1}\n\nnot json\n')
    with pytest.raises(ValueError, match=r"alerts\.jsonl:1: not an alert event"):
        read_alerts(bad_alerts)
