"""Detection-quality figures: event recall, false alarms per unit-day, delays, point-wise and SKAB FAR/MAR."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from monitor.evaluation import Label, episodes_from_events, evaluate, load_labels, pointwise
from monitor.messages import AlertEvent

T0 = 1_700_000_000.0


def event(alert_id: str, state: str, ts: float, unit: str = "R1", sensor: str = "temp") -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        unit=unit,
        state=state,  # type: ignore[arg-type]
        detector="reconstruction",
        ts=T0 + ts,
        started_at=T0 + ts - 2,
        score=2.0,
        threshold=1.0,
        severity="warning",
        sensors=((sensor, 0.7), ("flow", 0.3)),
        model="m",
    )


def test_episodes_collapse_renotify_and_keep_the_first_firing() -> None:
    events = [
        event("a", "firing", 100),
        event("a", "firing", 700),  # re-notify
        event("a", "resolved", 800),
        event("b", "firing", 900),  # never resolved
    ]
    eps = episodes_from_events(events)
    assert [(e.alert_id, e.detected_at - T0, e.resolved_at) for e in eps] == [
        ("a", 100.0, T0 + 800),
        ("b", 900.0, None),
    ]
    assert eps[0].top_sensor == "temp"


def test_evaluate_recall_false_alarms_delay_and_points() -> None:
    labels = [
        Label("R1", "drift", T0 + 1000, T0 + 1999),
        Label("R1", "stuck", T0 + 5000, T0 + 5099),  # missed
        Label("R2", "step", T0 + 3000, T0 + 3099),
    ]
    events = [
        event("fa", "firing", 200),  # a false alarm: 200..259
        event("fa", "resolved", 260),
        event("d1", "firing", 1030),  # detects the drift after 30 s, active until 2100
        event("d1", "resolved", 2100),
        event("d2", "firing", 3010, unit="R2", sensor="pressure"),  # detects the step after 10 s
        event("d2", "resolved", 3200, unit="R2"),
    ]
    timelines = {"R1": T0 + np.arange(0, 8640), "R2": T0 + np.arange(0, 8640)}  # 0.1 day each
    report = evaluate(episodes_from_events(events), labels, timelines, tolerance_s=60)
    assert report.n_faults == 3
    assert report.detected == 2
    assert report.event_recall == pytest.approx(2 / 3)
    assert [r.delay_s for r in report.labels] == [30.0, None, 10.0]
    assert report.labels[2].top_sensor == "pressure"
    assert report.false_alarms == 1 and report.false_alarm_ids == ("fa",)
    assert report.unit_days == pytest.approx(2 * 8639 / 86400)
    assert report.false_alarms_per_unit_day == pytest.approx(1 / (2 * 8639 / 86400))
    assert report.delay_median_s == 20.0
    assert report.delay_p90_s == pytest.approx(28.0)
    # Rows: R1 predicted 200..259 (60, all FP), 1030..2099 (1070: 970 TP in 1030..1999, 100 FP);
    # R1 truth 1000..1999 (1000) + 5000..5099 (100); R2 predicted 3010..3199 (190: 90 TP, 100 FP), truth 100.
    p = report.points
    assert (p.tp, p.fp, p.fn) == (970 + 90, 60 + 100 + 100, (1000 - 970) + 100 + (100 - 90))
    assert p.tn == 2 * 8640 - p.tp - p.fp - p.fn
    assert p.far_pct == pytest.approx(100 * p.fp / (p.fp + p.tn))
    assert p.mar_pct == pytest.approx(100 * p.fn / (p.fn + p.tp))
    text = report.format()
    assert "event recall: 0.667" in text
    assert "R1 stuck" in text and "missed" in text


def test_alert_before_the_fault_and_still_active_is_neither_detection_nor_false_alarm() -> None:
    labels = [Label("R1", "drift", T0 + 100, T0 + 200)]
    events = [event("early", "firing", 50), event("early", "resolved", 150)]
    report = evaluate(episodes_from_events(events), labels, {"R1": T0 + np.arange(0, 300)})
    assert report.detected == 0
    assert report.false_alarms == 0


def test_no_faults_no_alerts() -> None:
    report = evaluate([], [], {"R1": T0 + np.arange(0, 86401)})
    assert math.isnan(report.event_recall)
    assert report.false_alarms_per_unit_day == 0.0
    assert report.unit_days == pytest.approx(1.0)
    assert report.points.tn == 86401


def test_pointwise_counts() -> None:
    m = pointwise([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 1, 1, 1)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3) and m.f1 == pytest.approx(2 / 3)
    assert m.far_pct == 50.0 and m.mar_pct == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="shape"):
        pointwise([1, 0], [1])


def test_load_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("unit,kind,start,end,sensors\nR1,drift,100,200,temp;flow\nR2,spike,5,5,\n")
    assert load_labels(path) == [Label("R1", "drift", 100, 200, ("temp", "flow")), Label("R2", "spike", 5, 5, ())]
    path.write_text("unit,kind,start,end,sensors\nR1,drift,300,200,temp\n")
    with pytest.raises(ValueError, match=r"labels\.csv:2"):
        load_labels(path)
    path.write_text("unit,start\nR1,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        load_labels(path)
