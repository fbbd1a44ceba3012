"""AlertTracker: k-of-n firing, hysteresis, minimum duration, re-notify, severity, restore, wire format."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from models.pca import PcaDetector
from monitor.alerts.board import AlertBoard
from monitor.alerts.event_payload import event_from_json, event_to_json
from monitor.alerts.policy import AlertPolicy
from monitor.alerts.tracker import AlertTracker, make_alert_id, top_contributors
from monitor.config import PlantwatchConfig
from monitor.messages import AlertEvent, Score
from monitor.params import specs_from_config

T0 = 1_732_590_000.0
THR = 1.0
# The k-of-n mechanics alone (fire_evidence 0); the evidence rule has its own tests (test_alert_evidence.py).
POLICY = AlertPolicy(
    fire_hits=3,
    fire_window=5,
    resolve_hits=4,
    resolve_ratio=0.8,
    min_duration_s=10,
    renotify_s=60,
    critical_ratio=2.0,
    fire_evidence=0.0,
)


def score(i: int, value: float, errors: dict[str, float] | None = None, unit: str = "R1") -> Score:
    return Score(
        unit=unit,
        detector="reconstruction",
        model="lstm_ae",
        ts=T0 + i,
        score=value,
        threshold=THR,
        sensor_errors=errors if errors is not None else {"temp": 0.6 * value, "flow": 0.3 * value, "lvl": 0.1 * value},
        received_at=T0 + i + 0.1,
        source_ts=T0 + i,
    )


def run(tracker: AlertTracker, values: list[float], start: int = 0) -> list[tuple[int, AlertEvent]]:
    out = []
    for i, v in enumerate(values, start=start):
        event = tracker.update(score(i, v))
        if event is not None:
            out.append((i, event))
    return out


def test_fires_on_k_of_n_not_on_isolated_hits() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    # Hits at 0, 3, 6, 9: never 3 within 5 consecutive scores.
    assert run(tracker, [1.5, 0.1, 0.1, 1.5, 0.1, 0.1, 1.5, 0.1, 0.1, 1.5]) == []
    # Hits at 13, 15, 17: the 3rd hit within a window of 5 fires at 17; the episode starts at the first, 13.
    events = run(tracker, [0.1, 0.1, 0.1, 1.5, 0.1, 1.5, 0.1, 1.5], start=10)
    assert [i for i, _ in events] == [17]
    event = events[0][1]
    assert event.state == "firing"
    assert event.started_at == T0 + 13
    assert event.ts == T0 + 17
    assert event.alert_id == make_alert_id("R1", "reconstruction", T0 + 13)
    assert event.alert_id == f"R1:reconstruction:{round(T0 + 13) * 1000}"
    assert event.severity == "warning"
    assert event.sensors == (("temp", 0.6), ("flow", 0.3), ("lvl", 0.1))
    assert (event.score, event.threshold, event.model) == (1.5, THR, "lstm_ae")


def test_hysteresis_and_minimum_duration_before_resolve() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    events = run(tracker, [1.5, 1.5, 1.5])  # fires at 2, started 0
    assert [(i, e.state) for i, e in events] == [(2, "firing")]
    # 0.9 is under the threshold but above the resolve level 0.8: not quiet, so no resolve however long.
    assert run(tracker, [0.9] * 20, start=3) == []
    # Quiet (0.5 < 0.8) scores: 4 in a row resolve, and the episode is already 10 s old.
    events = run(tracker, [0.5, 0.5, 0.5, 0.5], start=23)
    assert [(i, e.state) for i, e in events] == [(26, "resolved")]
    resolved = events[0][1]
    assert resolved.alert_id == make_alert_id("R1", "reconstruction", T0)
    assert resolved.started_at == T0
    assert resolved.sensors == (("temp", 0.6), ("flow", 0.3), ("lvl", 0.1))  # the episode's sensors
    # A quiet run interrupted by one score at the resolve level starts over.
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    run(tracker, [1.5, 1.5, 1.5])
    assert run(tracker, [0.5, 0.5, 0.5, 0.85, 0.5, 0.5, 0.5], start=3) == []
    assert [e.state for _, e in run(tracker, [0.5], start=10)] == ["resolved"]


def test_minimum_duration_holds_a_short_episode() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    run(tracker, [1.5, 1.5, 1.5])  # started at 0
    # Quiet from 3: 4 quiet scores by 6, but the episode must last 10 s: resolves at 10.
    events = run(tracker, [0.1] * 10, start=3)
    assert [(i, e.state) for i, e in events] == [(10, "resolved")]


def test_renotify_while_firing_and_escalation_to_critical() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    events = run(tracker, [1.5] * 130)
    # Fired at 2, re-notified every 60 s of event time with the same id.
    assert [i for i, _ in events] == [2, 62, 122]
    assert {e.alert_id for _, e in events} == {make_alert_id("R1", "reconstruction", T0)}
    assert all(e.state == "firing" and e.severity == "warning" for _, e in events)
    # A score above 2 x threshold escalates once (an immediate event), then the re-notify clock restarts.
    events = run(tracker, [2.5, 2.5, 1.5], start=130)
    assert [(i, e.severity) for i, e in events] == [(130, "critical")]
    events = run(tracker, [1.5] * 61, start=133)
    assert [(i, e.severity) for i, e in events] == [(190, "critical")]


def test_fires_critical_directly_and_resets_after_resolve() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    events = run(tracker, [3.0, 3.0, 3.0])
    assert events[0][1].severity == "critical"
    events = run(tracker, [0.1] * 20, start=3)
    assert [e.state for _, e in events] == ["resolved"]
    # Old hits were cleared: two hits after the resolve do not fire, a third does, with a new id.
    assert run(tracker, [1.5, 1.5], start=23) == []
    events = run(tracker, [1.5], start=25)
    assert events[0][1].alert_id == make_alert_id("R1", "reconstruction", T0 + 23)


def test_non_finite_and_replayed_scores_are_ignored() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    assert tracker.update(score(0, math.nan)) is None
    assert tracker.update(score(1, math.inf)) is None
    bad_threshold = Score("R1", "reconstruction", "m", T0 + 2, 5.0, math.nan, {}, 0.0, T0 + 2)
    assert tracker.update(bad_threshold) is None
    run(tracker, [1.5, 1.5], start=3)
    # The same ts again (a replay) does not count as a third hit.
    assert tracker.update(score(4, 1.5)) is None
    assert tracker.snapshot()["hits"] == [[True, T0 + 3], [True, T0 + 4]]
    with pytest.raises(ValueError, match=r"\(R2, reconstruction\)"):
        tracker.update(score(9, 1.5, unit="R2"))


def test_restore_continues_the_episode_without_firing_twice() -> None:
    first = AlertTracker("R1", "reconstruction", POLICY)
    fired = run(first, [1.5, 1.5, 1.5, 1.5])
    assert len(fired) == 1
    state = json.loads(json.dumps(first.snapshot(), allow_nan=False))  # as published retained, then read back

    restarted = AlertTracker("R1", "reconstruction", POLICY)
    restarted.restore(state)
    assert restarted.firing == first.firing
    # The scores after the restart (including a replay of the last one) are still high: no second firing.
    assert run(restarted, [1.5] * 30, start=3) == []
    # It resolves under the same id.
    events = run(restarted, [0.1] * 4, start=40)
    assert [(e.state, e.alert_id) for _, e in events] == [("resolved", fired[0][1].alert_id)]

    # A restored idle tracker keeps its hits: one more hit fires (2 were in before the restart).
    idle = AlertTracker("R1", "reconstruction", POLICY)
    run(idle, [1.5, 1.5])
    again = AlertTracker("R1", "reconstruction", POLICY)
    again.restore(idle.snapshot())
    assert [i for i, _ in run(again, [1.5], start=2)] == [2]


def test_restore_refuses_a_malformed_or_foreign_state() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    run(tracker, [1.5, 1.5, 1.5])
    good = tracker.snapshot()
    other = AlertTracker("R2", "reconstruction", POLICY)
    with pytest.raises(ValueError, match="not of"):
        other.restore(good)
    target = AlertTracker("R1", "reconstruction", POLICY)
    for broken in (
        {**good, "schema": 2},
        {**good, "state": "idle"},
        {**good, "hits": [[1, T0]]},
        {k: v for k, v in good.items() if k != "quiet_run"},
        {**good, "alert": {**good["alert"], "score": "high"}},
    ):
        with pytest.raises(ValueError):
            target.restore(broken)
        assert target.firing is None  # unchanged


def test_board_routes_scores_and_round_trips_the_retained_state() -> None:
    board = AlertBoard({"R1": POLICY, "R2": POLICY})
    for i in range(3):
        board.update(score(i, 1.5, unit="R1"))
        board.update(score(i, 0.1, unit="R2"))
    forecast = Score("R1", "forecast", "lstm", T0 + 1, 0.2, 1.0, {"temp": 0.2}, 0.0, T0 + 1)
    assert board.update(forecast) is None
    payload = board.state_payload("R1")
    body = json.loads(payload)
    assert body["state"] == "firing"
    assert [a["alert_id"] for a in body["active"]] == [make_alert_id("R1", "reconstruction", T0)]
    assert json.loads(board.state_payload("R2"))["state"] == "ok"

    restarted = AlertBoard({"R1": POLICY, "R2": POLICY})
    restarted.restore_payload("R1", payload)
    assert [e.alert_id for e in restarted.active("R1")] == [make_alert_id("R1", "reconstruction", T0)]
    assert restarted.update(score(3, 1.5, unit="R1")) is None
    assert restarted.tracker("R1", "forecast").snapshot()["last_ts"] == T0 + 1
    with pytest.raises(ValueError, match="not an alert state of unit R2"):
        restarted.restore_payload("R2", payload)
    with pytest.raises(ValueError, match="not JSON"):
        restarted.restore_payload("R1", b"\xff")
    with pytest.raises(ValueError, match="unknown unit"):
        restarted.update(score(0, 1.0, unit="R9"))


def test_event_json_round_trip_matches_the_wire_contract() -> None:
    tracker = AlertTracker("R1", "reconstruction", POLICY)
    event = run(tracker, [1.5, 1.5, 1.5])[0][1]
    payload = event_to_json(event)
    body = json.loads(payload)
    assert body["schema"] == 1
    required = {"alert_id", "unit", "state", "detector", "ts", "started_at", "score", "threshold", "severity"}
    assert required | {"sensors", "model"} <= set(body)
    assert body["sensors"][0] == {"sensor": "temp", "share": 0.6}
    assert event_from_json(payload) == event
    with pytest.raises(ValueError, match="schema"):
        event_from_json(json.dumps({**body, "schema": 0}).encode())
    with pytest.raises(ValueError, match="state"):
        event_from_json(json.dumps({**body, "state": "maybe"}).encode())
    with pytest.raises(ValueError, match="finite"):
        event_from_json(payload.replace(b'"score":1.5', b'"score":NaN'))


def test_top_contributors_shares() -> None:
    assert top_contributors({"a": 1.0, "b": 3.0, "c": 0.0, "d": math.nan}, 2) == (("b", 0.75), ("a", 0.25))
    assert top_contributors({"a": 0.0}, 3) == ()


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="fire_hits <= fire_window"):
        AlertPolicy(fire_hits=6, fire_window=5)
    with pytest.raises(ValueError, match="resolve_ratio"):
        AlertPolicy(resolve_ratio=1.5)


def test_renotify_0_means_never_in_the_config_and_in_the_policy() -> None:
    """``units[].alerts.renotify_s`` and AlertPolicy agree: 0 is allowed and means one firing event per episode;
    a negative interval is refused by both."""

    def config(renotify_s: float) -> PlantwatchConfig:
        unit = {
            "name": "R1",
            "sensors": ["temp", "flow"],
            "detector": {"name": "pca", "artifact": "/nonexistent"},
            "alerts": {"renotify_s": renotify_s, "fire_evidence": 0, "min_duration_s": 10, "resolve_hits": 4},
        }
        return PlantwatchConfig.model_validate({"units": [unit]})

    model = PcaDetector.fit(np.random.default_rng(0).normal(size=(300, 2)), ("temp", "flow"), window=4)
    for renotify_s, expected in ((0.0, [2]), (60.0, [2, 62, 122])):
        _, policies, _ = specs_from_config(config(renotify_s), {"pca": model})  # type: ignore[dict-item]
        assert policies["R1"].renotify_s == renotify_s
        tracker = AlertTracker("R1", "reconstruction", policies["R1"])
        events = run(tracker, [1.5] * 130)  # firing from the third hit on, for two minutes of event time
        assert [i for i, _ in events] == expected and {e.state for _, e in events} == {"firing"}
    with pytest.raises(ValidationError, match=r"units\.0\.alerts\.renotify_s"):
        config(-1.0)
    with pytest.raises(ValueError, match="renotify_s must be >= 0"):
        AlertPolicy(renotify_s=-1.0)
