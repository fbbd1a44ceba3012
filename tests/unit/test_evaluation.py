"""Detection-quality figures: event recall, false alarms per unit-day, delays, point-wise and SKAB FAR/MAR, per
detector and merged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.evaluation import (
    ANY,
    episodes_from_events,
    evaluate,
    evaluate_by_detector,
    merge_episodes,
    pointwise,
)
from monitor.messages import AlertEvent
from monitor.wire.labels import Label

T0 = 1_700_000_000.0


def event(
    alert_id: str, state: str, ts: float, unit: str = "R1", sensor: str = "temp", detector: str = "reconstruction"
) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        unit=unit,
        state=state,  # type: ignore[arg-type]
        detector=detector,
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
    assert report.n_faults == 3 and report.left_out == ()
    assert report.detected == 2 and report.already_alerting == 0
    assert [r.status for r in report.labels] == ["detected", "missed", "detected"]
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
    # Normal rows: outside [1000, 2059] and [5000, 5159] on R1 (7420), outside [3000, 3159] on R2 (8480). Alerting
    # there: R1 200..259 and 2060..2099 (d1 past the tolerance), R2 3160..3199.
    assert (report.normal_rows, report.normal_rows_alerting) == (7420 + 8480, 60 + 40 + 40)
    text = report.format()
    assert "event recall: 0.667" in text
    assert "R1 stuck" in text and "missed" in text


def test_alert_started_before_the_fault_is_a_false_alarm_and_the_fault_already_alerting() -> None:
    labels = [Label("R1", "drift", T0 + 100, T0 + 200)]
    events = [event("early", "firing", 50), event("early", "resolved", 150)]  # announced 50 s before, runs into it
    report = evaluate(episodes_from_events(events), labels, {"R1": T0 + np.arange(0, 300)}, tolerance_s=60)
    assert report.false_alarms == 1 and report.false_alarm_ids == ("early",)
    (r,) = report.labels
    assert (r.status, r.delay_s, r.alert_id, r.detected, r.caught) == ("already_alerting", None, "early", False, True)
    # Counted in recall (the operator was being alerted), apart from detections, and not in the delays.
    assert (report.detected, report.already_alerting, report.event_recall) == (0, 1, 1.0)
    assert report.delays_s == [] and math.isnan(report.delay_median_s)
    text = report.format()
    assert (
        "faults: 1, detected: 0, event recall: 1.000 (already alerting at the fault's start, counted in recall: 1)"
        in text
    )
    assert "R1 drift [1700000100, 1700000200]: already alerting (alert early announced before the start" in text


def test_an_alert_resolved_before_the_fault_starts_does_not_make_it_already_alerting() -> None:
    labels = [Label("R1", "drift", T0 + 100, T0 + 200)]
    events = [event("early", "firing", 50), event("early", "resolved", 100)]  # over the instant the fault starts
    report = evaluate(episodes_from_events(events), labels, {"R1": T0 + np.arange(0, 300)})
    assert [r.status for r in report.labels] == ["missed"]
    assert report.false_alarms == 1 and report.event_recall == 0.0


def test_a_new_episode_inside_the_fault_after_an_earlier_one_detects_it() -> None:
    labels = [Label("R1", "drift", T0 + 100, T0 + 200)]
    events = [
        event("early", "firing", 50),  # a false alarm, resolved during the fault
        event("early", "resolved", 120),
        event("new", "firing", 130, sensor="flow"),  # announced 30 s into the fault
        event("new", "resolved", 230),
    ]
    report = evaluate(episodes_from_events(events), labels, {"R1": T0 + np.arange(0, 300)}, tolerance_s=60)
    (r,) = report.labels
    assert (r.status, r.delay_s, r.alert_id, r.top_sensor) == ("detected", 30.0, "new", "flow")
    assert report.false_alarm_ids == ("early",)
    assert report.delays_s == [30.0]
    assert "R1 drift [1700000100, 1700000200]: detected after 30.0 s (top sensor flow)" in report.format()


def test_labels_of_absent_units_or_times_are_left_out_and_counted() -> None:
    timelines = {"R1": T0 + np.arange(1000, 2000), "R2": np.array([])}  # R2: no rows at all
    before = Label("R1", "drift", T0 + 500, T0 + 1100)  # started before the data: its rows still count as faulty
    inside = Label("R1", "step", T0 + 1500, T0 + 1600)
    after = Label("R1", "stuck", T0 + 3000, T0 + 3100)
    absent = Label("R9", "spike", T0 + 1200, T0 + 1300)
    empty = Label("R2", "spike", T0 + 1200, T0 + 1300)
    events = [
        event("x", "firing", 1050),  # inside the fault that started before the data: not a false alarm
        event("x", "resolved", 1080),
        event("y", "firing", 1510),
        event("y", "resolved", 1560),
    ]
    report = evaluate(episodes_from_events(events), [before, inside, after, absent, empty], timelines)
    assert [r.label for r in report.labels] == [inside]
    assert report.left_out == (before, after, absent, empty)
    assert report.labels[0].delay_s == 10.0 and report.event_recall == 1.0
    assert report.false_alarms == 0
    # Truth rows: 1000..1100 (the left-out fault, 101) + 1500..1600 (101); predicted 1050..1079, 1510..1559.
    p = report.points
    assert (p.tp, p.fp, p.fn) == (30 + 50, 0, (101 - 30) + (101 - 50))
    assert "labels left out (unit not in the data, or starting outside its time range): 4" in report.format()


def two_detector_events() -> list[AlertEvent]:
    """Faults A [100, 199] and B [600, 699] on R1; reconstruction (r*) and forecast (f*) episodes."""
    fc = "forecast"
    return [
        event("r1", "firing", 90),  # before A, runs into it
        event("f1", "firing", 120, detector=fc),  # inside A, while r1 fires
        event("r1", "resolved", 150),
        event("f1", "resolved", 300, detector=fc),
        event("r2", "firing", 400),  # one false incident seen by both detectors
        event("f2", "firing", 410, detector=fc),
        event("r2", "resolved", 420),
        event("f2", "resolved", 450, detector=fc),
        event("r3", "firing", 610),  # inside B
        event("r3", "resolved", 700),
    ]


def test_evaluate_by_detector_splits_and_merges() -> None:
    labels = [Label("R1", "A", T0 + 100, T0 + 199), Label("R1", "B", T0 + 600, T0 + 699)]
    timelines = {"R1": T0 + np.arange(0, 1000)}
    episodes = episodes_from_events(two_detector_events())
    detectors = ("reconstruction", "forecast", "sensor")  # "sensor" never alerted: it still gets its figures
    reports = evaluate_by_detector(episodes, labels, timelines, tolerance_s=0.0, detectors=detectors)
    assert list(reports) == [*detectors, ANY]

    rec = reports["reconstruction"]
    assert [(r.status, r.delay_s) for r in rec.labels] == [("already_alerting", None), ("detected", 10.0)]
    assert (rec.episodes, rec.false_alarm_ids, rec.event_recall) == (3, ("r1", "r2"), 1.0)

    fc = reports["forecast"]
    assert [(r.status, r.delay_s) for r in fc.labels] == [("detected", 20.0), ("missed", None)]
    assert (fc.episodes, fc.false_alarm_ids, fc.event_recall) == (2, ("f2",), 0.5)

    sensor = reports["sensor"]
    assert (sensor.episodes, sensor.false_alarms, sensor.event_recall) == (0, 0, 0.0)
    assert [r.status for r in sensor.labels] == ["missed", "missed"]

    # Merged per unit: r1+f1 (90..300, announced before A), r2+f2 (400..450), r3: three alarms, two false; A
    # finds r1+f1 already active, B is detected by r3.
    both = reports[ANY]
    assert both.episodes == 3
    assert both.false_alarm_ids == ("r1+f1", "r2+f2")
    assert [(r.status, r.delay_s, r.alert_id) for r in both.labels] == [
        ("already_alerting", None, "r1+f1"),
        ("detected", 10.0, "r3"),
    ]
    # Point-wise, "any" is the union of the spans: 90..299, 400..449, 610..699.
    assert both.points.tp + both.points.fp == 210 + 50 + 90

    # Without a list, the detectors come from the episodes, in order of first appearance.
    assert list(evaluate_by_detector(episodes, labels, timelines)) == ["reconstruction", "forecast", ANY]
    with pytest.raises(ValueError, match="any"):
        evaluate_by_detector(episodes, labels, timelines, detectors=[ANY])


def test_merge_episodes_joins_overlapping_and_touching_spans_per_unit() -> None:
    events = [
        event("a", "firing", 0),
        event("a", "resolved", 10),
        event("b", "firing", 10, detector="forecast"),  # touches a: no gap the operator could see
        event("c", "firing", 5, unit="R2"),  # another unit: never merged with R1's
        event("c", "resolved", 8, unit="R2"),
        event("d", "firing", 50),  # b never resolves: d falls inside it
    ]
    merged = merge_episodes(episodes_from_events(events))
    assert [(e.unit, e.alert_id, e.detected_at - T0, e.resolved_at, e.detector) for e in merged] == [
        ("R1", "a+b+d", 0.0, None, ANY),
        ("R2", "c", 5.0, T0 + 8, ANY),
    ]


def test_alert_time_share_on_normal_rows() -> None:
    labels = [Label("R1", "drift", T0 + 100, T0 + 199)]
    events = [
        event("d", "firing", 150),  # detects the fault, resolves 60 s after its end
        event("d", "resolved", 260),
        event("fa", "firing", 500),
        event("fa", "resolved", 550),
    ]
    timelines = {"R1": T0 + np.arange(0, 1000)}
    report = evaluate(episodes_from_events(events), labels, timelines, tolerance_s=50)
    # Normal rows: outside [100, 249], 850. Alerting there: 250..259 (d past the tolerance) and 500..549 (fa).
    assert (report.normal_rows, report.normal_rows_alerting) == (850, 60)
    assert report.alert_share_normal == pytest.approx(60 / 850)
    expected = "alert time on normal rows: 7.06 % (60 of 850 rows outside faults + tolerance and settling)"
    assert expected in report.format()
    # SKAB's FAR keeps its definition: truth is [start, end] only, FP = 200..259 and 500..549.
    assert report.points.far_pct == pytest.approx(100 * 110 / 900)
    # Without a tolerance, the share is FAR / 100.
    strict = evaluate(episodes_from_events(events), labels, timelines, tolerance_s=0)
    assert strict.alert_share_normal == pytest.approx(strict.points.far_pct / 100)


def test_no_faults_no_alerts() -> None:
    report = evaluate([], [], {"R1": T0 + np.arange(0, 86401)})
    assert math.isnan(report.event_recall)
    assert report.alert_share_normal == 0.0 and report.normal_rows == 86401
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


def test_an_alarm_in_a_settling_span_is_counted_apart_and_one_after_it_is_false() -> None:
    # A process fault [100, 199] whose effect lasts to 1200 (settled); tolerance 60 s.
    labels = [Label("R1", "cooling", T0 + 100, T0 + 199, settled=T0 + 1200)]
    events = [
        event("found", "firing", 150),  # inside the fault: the detection
        event("found", "resolved", 240),
        event("edge", "firing", 259),  # end + tolerance: still a detection window, not settling
        event("edge", "resolved", 280),
        event("after", "firing", 600),  # the plant still off normal: neither false nor a detection
        event("after", "resolved", 700),
        event("last", "firing", 1200),  # at settled: the span is (end + tolerance, settled], closed at settled
        event("last", "resolved", 1210),
        event("late", "firing", 1201),  # after it settled: false
        event("late", "resolved", 1250),
        event("other", "firing", 600, unit="R2"),  # the same time on another unit: false
        event("other", "resolved", 650, unit="R2"),
    ]
    timelines = {"R1": T0 + np.arange(0, 2000), "R2": T0 + np.arange(0, 2000)}
    report = evaluate(episodes_from_events(events), labels, timelines, tolerance_s=60)
    (r,) = report.labels
    assert (r.status, r.delay_s, r.alert_id) == ("detected", 50.0, "found")  # judged on [start, end + tolerance]
    assert report.settling_alarm_ids == ("after", "last")
    assert report.false_alarm_ids == ("other", "late")  # in order of announcement
    assert (report.episodes, report.false_alarms, report.settling_alarms) == (6, 2, 2)
    assert "false alarms: 2 over" in report.format()
    assert "in settling spans after a fault (neither false nor detections): 2" in report.format()
    # Normal rows leave out the settling span too: R1 outside [100, 1200] (899 rows) and all of R2 (2000).
    assert report.normal_rows == 899 + 2000
    # Nothing detected in the settling span: a second fault there is judged on its own window only.
    again = [*labels, Label("R1", "bias", T0 + 650, T0 + 660)]
    second = evaluate(episodes_from_events(events), again, timelines, tolerance_s=60)
    assert [x.status for x in second.labels] == ["detected", "already_alerting"]
    assert second.settling_alarm_ids == ("after", "last")


def test_without_settled_the_rules_are_unchanged() -> None:
    labels = [Label("R1", "bias", T0 + 100, T0 + 199)]  # settled = end: no settling span
    events = [event("after", "firing", 600), event("after", "resolved", 700)]
    report = evaluate(episodes_from_events(events), labels, {"R1": T0 + np.arange(0, 2000)}, tolerance_s=60)
    assert (report.false_alarm_ids, report.settling_alarms, report.normal_rows) == (("after",), 0, 2000 - 160)
    # A span shorter than the tolerance adds nothing either.
    short = [Label("R1", "bias", T0 + 100, T0 + 199, settled=T0 + 230)]
    assert (
        evaluate(episodes_from_events(events), short, {"R1": T0 + np.arange(0, 2000)}, tolerance_s=60).false_alarms == 1
    )
