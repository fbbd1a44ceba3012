"""Adaptive thresholds (monitor.thresholds) through the alert tracker that owns them, on real score streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.alerts.board import AlertBoard
from monitor.alerts.policy import AlertPolicy
from monitor.alerts.tracker import AlertTracker
from monitor.messages import AlertEvent, Score
from monitor.thresholds import AdaptiveThreshold, AdaptPolicy, gpd_level

T0 = 1_767_225_600.0
HOUR_S = 3600.0


def calibrated_levels(rng: np.random.Generator, n: int = 200_000, target_far: float = 1e-4) -> tuple[float, float]:
    """Threshold (the 1 - target quantile) and resolve level (99 %) of the 'normal' scores: |N(0, 1)| + 1."""
    sample = np.abs(rng.standard_normal(n)) + 1.0
    return float(np.quantile(sample, 1 - target_far)), float(np.quantile(sample, 0.99))


def score(ts: float, value: float, threshold: float, resolve: float, outside: tuple[str, ...] = ()) -> Score:
    return Score(
        "R1",
        "reconstruction",
        "m",
        ts,
        value,
        threshold,
        {"a": value},
        ts,
        ts,
        resolve_level=resolve,
        critical_level=2 * threshold,
        outside_envelope=outside,
    )


def feed(tracker: AlertTracker, values: np.ndarray, threshold: float, resolve: float, t0: float) -> list[AlertEvent]:
    events = []
    for i, v in enumerate(values):
        event = tracker.update(score(t0 + i, float(v), threshold, resolve))
        if event is not None:
            events.append(event)
    return events


def test_gpd_level_of_an_exponential_tail_matches_its_quantile() -> None:
    rng = np.random.default_rng(0)
    excesses = rng.exponential(2.0, 5000).tolist()
    # Peaks at rate 1 %: the level exceeded by 1e-4 of all scores is the 99th percentile of the excesses.
    level = gpd_level(excesses, 0.01, 1e-4)
    assert level is not None and level == pytest.approx(2.0 * math.log(100), rel=0.1)
    assert gpd_level(excesses, 0.01, 0.05) is None  # the target is not in the tail above the base


def test_on_the_calibration_distribution_the_threshold_stays_put() -> None:
    rng = np.random.default_rng(1)
    threshold, resolve = calibrated_levels(rng)
    tracker = AlertTracker("R1", "reconstruction", AlertPolicy())
    events = feed(tracker, np.abs(rng.standard_normal(6 * 3600)) + 1.0, threshold, resolve, T0)
    assert tracker.adaptive.peaks == 100  # it learned (a 1 % peak rate over 6 h fills the window)
    assert 1.0 <= tracker.adaptive.ratio <= 1.1
    assert len(events) <= 2  # the calibrated rate: about two hits in 21,600 scores, rarely three of five


def test_noisier_normal_operation_raises_the_threshold_within_the_drift_bound() -> None:
    rng = np.random.default_rng(2)
    threshold, resolve = calibrated_levels(rng)
    policy = AlertPolicy()
    tracker = AlertTracker("R1", "reconstruction", policy)
    hours = 8
    noisier = np.abs(rng.standard_normal(hours * 3600)) * 1.25 + 1.0  # normal scores 25 % wider than calibrated
    events = feed(tracker, noisier, threshold, resolve, T0)
    ratio = tracker.adaptive.ratio
    assert ratio > 1.1  # it followed the wider distribution up
    assert ratio <= 1.0 + policy.adapt.max_drift_per_hour * hours + 1e-9
    # After adapting, the same noise no longer alerts: the last 4 hours raise at most one episode.
    late = [e for e in events if e.state == "firing" and e.ts >= T0 + 4 * HOUR_S]
    assert len(late) <= 1, late
    assert all(e.threshold >= e.calibrated_threshold for e in events)


def test_a_slow_drift_fault_is_not_learned_and_still_alerts() -> None:
    rng = np.random.default_rng(3)
    threshold, resolve = calibrated_levels(rng)
    # The k-of-n rule alone (fire_evidence 0); with the default evidence rule: the test below.
    tracker = AlertTracker("R1", "reconstruction", AlertPolicy(fire_evidence=0.0))
    normal = np.abs(rng.standard_normal(2 * 3600)) + 1.0
    assert not [e for e in feed(tracker, normal, threshold, resolve, T0) if e.state == "firing"]
    # A ramp over hours: the score's level rises by the whole calibrated threshold in 4 h (a drifting sensor).
    n = 6 * 3600
    ramp = np.abs(rng.standard_normal(n)) + 1.0 + threshold * np.arange(n) / (4 * 3600)
    events = feed(tracker, ramp, threshold, resolve, T0 + 2 * 3600)
    firing = [e for e in events if e.state == "firing"]
    assert firing, "the ramp was learned as normal"
    first = firing[0]
    # It fires long before the ceiling (2x) could be reached, and the threshold in force never ran away.
    assert first.ts - (T0 + 2 * 3600) < 3 * 3600
    assert first.threshold <= 2 * threshold
    assert tracker.firing is not None  # and it stays firing while the drift lasts


def test_no_learning_while_firing_near_an_episode_or_outside_the_envelope() -> None:
    rng = np.random.default_rng(4)
    threshold, resolve = calibrated_levels(rng)
    policy = AlertPolicy(min_duration_s=0, adapt=AdaptPolicy(guard_s=600), fire_evidence=0.0)
    tracker = AlertTracker("R1", "reconstruction", policy)
    # An episode: five hits fire it, ten quiet scores resolve it.
    events = feed(tracker, np.array([threshold * 1.5] * 5 + [1.0] * 10), threshold, resolve, T0)
    assert [e.state for e in events] == ["firing", "resolved"]
    before = tracker.adaptive.snapshot()["seen"]
    # Within the guard after the resolve: peaks above the base are not learned.
    feed(tracker, np.full(500, resolve * 1.01), threshold, resolve, T0 + 20)
    assert tracker.adaptive.snapshot()["seen"] == before
    # Outside the envelope, never.
    for i in range(50):
        tracker.update(score(T0 + 2000 + i, resolve * 1.01, threshold, resolve, outside=("a",)))
    assert tracker.adaptive.snapshot()["seen"] == before
    feed(tracker, np.full(5, resolve * 1.01), threshold, resolve, T0 + 3000)
    assert tracker.adaptive.snapshot()["seen"] == before + 5


def test_outside_the_envelope_alerts_are_warnings_or_suppressed() -> None:
    threshold, resolve = 4.0, 2.0
    for rule, expected in (("warn", ["warning"]), ("suppress", []), ("alert", ["critical"])):
        tracker = AlertTracker("R1", "reconstruction", AlertPolicy(outside_envelope=rule))  # type: ignore[arg-type]
        events = [tracker.update(score(T0 + i, 3 * threshold, threshold, resolve, outside=("a",))) for i in range(5)]
        fired = [e for e in events if e is not None]
        assert [e.severity for e in fired] == expected, rule
        assert all(e.outside_envelope == ("a",) for e in fired)


def test_an_episode_that_was_outside_the_envelope_stays_a_warning() -> None:
    threshold, resolve = 4.0, 2.0
    tracker = AlertTracker("R1", "reconstruction", AlertPolicy())
    events = [tracker.update(score(T0 + i, 3 * threshold, threshold, resolve, outside=("a",))) for i in range(5)]
    # Back inside the envelope with a score far beyond the critical level: the episode does not escalate.
    events += [tracker.update(score(T0 + 5 + i, 5 * threshold, threshold, resolve)) for i in range(700)]
    fired = [e for e in events if e is not None]
    assert fired and {e.severity for e in fired} == {"warning"}


def test_a_critical_episode_that_leaves_the_envelope_is_re_announced_as_a_warning() -> None:
    threshold, resolve = 4.0, 2.0
    tracker = AlertTracker("R1", "reconstruction", AlertPolicy())
    events = [tracker.update(score(T0 + i, 3 * threshold, threshold, resolve)) for i in range(5)]
    events += [tracker.update(score(T0 + 5 + i, 3 * threshold, threshold, resolve, outside=("a",))) for i in range(5)]
    events += [tracker.update(score(T0 + 10 + i, 3 * threshold, threshold, resolve)) for i in range(5)]
    fired = [(e.severity, e.outside_envelope) for e in events if e is not None]
    assert fired == [("critical", ()), ("warning", ("a",))]


def test_resolve_on_the_calibrated_level_and_severity_from_the_tail() -> None:
    threshold, resolve = 4.0, 1.0
    policy = AlertPolicy(min_duration_s=0, adapt=AdaptPolicy(False), fire_evidence=0.0)  # k of n alone
    tracker = AlertTracker("R1", "reconstruction", policy)
    s = [score(T0 + i, v, threshold, resolve) for i, v in enumerate([5, 5, 5, 9.0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2])]
    events = [e for e in (tracker.update(x) for x in s) if e is not None]
    assert [(e.state, e.severity) for e in events] == [("firing", "warning"), ("firing", "critical")]
    # Scores of 2.0 sit under the old 0.8 x threshold rule (3.2) but over the calibrated resolve level (1.0):
    # the episode stays open until normal scores come back.
    quiet = [tracker.update(score(T0 + 20 + i, 0.5, threshold, resolve)) for i in range(10)]
    resolved = [e for e in quiet if e is not None]
    assert len(resolved) == 1 and resolved[0].state == "resolved" and resolved[0].severity == "critical"
    assert resolved[0].normalized_score == pytest.approx(0.5 / threshold)


def test_the_adapted_threshold_survives_a_restart_through_the_retained_state() -> None:
    rng = np.random.default_rng(5)
    threshold, resolve = calibrated_levels(rng)
    board = AlertBoard({"R1": AlertPolicy()})
    for i, v in enumerate(np.abs(rng.standard_normal(6 * 3600)) * 1.25 + 1.0):
        board.update(score(T0 + i, float(v), threshold, resolve))
    ratio = board.tracker("R1", "reconstruction").adaptive.ratio
    assert ratio > 1.05
    payload = board.state_payload("R1")
    restarted = AlertBoard({"R1": AlertPolicy()})
    restarted.restore_payload("R1", payload)
    tracker = restarted.tracker("R1", "reconstruction")
    assert tracker.adaptive.ratio == ratio
    tracker.update(score(T0 + 6 * 3600 + 5, 1.0, threshold, resolve))
    assert tracker.threshold_in_force == pytest.approx(ratio * threshold)
    # A new model (another calibrated threshold) starts from its own calibration.
    tracker.update(score(T0 + 6 * 3600 + 6, 1.0, threshold * 2, resolve))
    assert tracker.threshold_in_force == threshold * 2


def test_a_malformed_threshold_state_is_refused_and_changes_nothing() -> None:
    spot = AdaptiveThreshold(AdaptPolicy())
    with pytest.raises(ValueError):
        spot.restore({"calibrated": 1.0, "base": 0.5, "ratio": "x", "seen": 1, "peaks": [], "peak_seen": []})
    with pytest.raises(ValueError):
        spot.restore(
            {
                "calibrated": 1.0,
                "base": 0.5,
                "ratio": 1.0,
                "seen": 1,
                "peaks": [1.0],
                "peak_seen": [5],
                "last_move_ts": None,
            }
        )
    assert spot.ratio == 1.0 and spot.peaks == 0
