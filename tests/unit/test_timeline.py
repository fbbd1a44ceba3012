"""The clock guard in front of the aligner (monitor.timeline via RingBuffers): issue 11 item 1 and its cousins.

Live streams here have ts close to received_at, as a gateway with a good clock gives; every message is accounted
for exactly once: accepted, refused, or (for a while) held.
"""

from __future__ import annotations

import numpy as np

from monitor.buffers.results import AddResult
from monitor.buffers.ring_buffers import RingBuffers
from monitor.buffers.unit_spec import UnitSpec
from monitor.messages import Reading
from monitor.timeline import CANDIDATE_ROWS

SENSORS = ("a", "b", "c")
NOW = 1_732_590_000.0  # the receive clock at row 0 of the live streams


def spec(**kw: object) -> UnitSpec:
    base: dict[str, object] = {
        "sensors": SENSORS,
        "period_s": 1.0,
        "max_lateness_s": 5.0,
        "max_gap_periods": 2,
        "window_rows": 4,
        "max_clock_skew_s": 120.0,
    }
    base.update(kw)
    return UnitSpec(**base)  # type: ignore[arg-type]


def row(k: int) -> dict[str, float]:
    return {"a": float(k), "b": 100.0 + k, "c": -float(k)}


def live(k: int, lag_s: float = 0.05) -> Reading:
    """Row k of a genuine 1 Hz stream, received lag_s after its event time."""
    return Reading("U", NOW + k, row(k), received_at=NOW + k + lag_s)


def feed(buffers: RingBuffers, readings: list[Reading]) -> AddResult:
    total = AddResult()
    for r in readings:
        total.merge(buffers.add(r))
    return total


def reasons(res: AddResult) -> list[str]:
    return sorted(r.reason for r in res.refused)


def test_a_reading_100_s_ahead_costs_no_genuine_reading_and_is_counted() -> None:
    # Issue 11 item 1: 104 genuine readings were refused as late behind one reading stamped 100-110 s ahead.
    guarded = RingBuffers({"U": spec()})
    clean = RingBuffers({"U": spec()})
    stream = [live(k) for k in range(120)]
    bad = Reading("U", NOW + 20 + 105.0, row(999), received_at=NOW + 20.5)  # inside max_clock_skew_s
    res = feed(guarded, [*stream[:20], bad, *stream[20:]])
    ref = feed(clean, stream)
    assert res.accepted == ["U"] * 120  # every genuine message placed
    assert reasons(res) == ["clock"]  # the bad one refused, once, as soon as the genuine stream contradicts it
    assert [r.reason for r in res.rejections] == ["clock"] * len(SENSORS)  # per value
    assert guarded.held("U") == 0
    # The windows are exactly those of the clean stream: nothing late, nothing skipped.
    assert [(j.end_ts, j.window.tobytes()) for j in res.jobs] == [(j.end_ts, j.window.tobytes()) for j in ref.jobs]
    assert len(res.jobs) == 120 - 3 and res.skipped == {}
    assert guarded.watermark("U") == NOW + 119 - 5.0


def test_without_the_guard_the_same_reading_blinds_the_unit() -> None:
    # The reproduction of the old behaviour (no guard: event time alone) shows what the test above prevents.
    buffers = RingBuffers({"U": spec(max_clock_skew_s=None)})
    stream = [live(k) for k in range(120)]
    bad = Reading("U", NOW + 20 + 105.0, row(999), received_at=NOW + 20.5)
    res = feed(buffers, [*stream[:20], bad, *stream[20:]])
    assert reasons(res).count("late") > 90


def test_a_bad_gateway_interleaved_with_the_genuine_one_is_never_followed() -> None:
    buffers = RingBuffers({"U": spec()})
    readings: list[Reading] = []
    for k in range(60):
        readings.append(live(k))
        if k >= 10:  # from row 10 on, a second gateway 100 s ahead sends every row too
            readings.append(Reading("U", NOW + k + 100.0, row(k), received_at=NOW + k + 0.06))
    res = feed(buffers, readings)
    assert res.accepted == ["U"] * 60
    assert reasons(res) == ["clock"] * 49 and buffers.held("U") == 1  # the last one: nothing came after it yet
    assert len(res.jobs) == 60 - 3 and res.skipped == {}
    assert reasons(buffers.flush()) == ["clock"]


def test_a_per_sensor_burst_ahead_is_one_row_and_is_not_adopted() -> None:
    # A gateway publishing on per-sensor topics sends a row as a burst of messages: one row, however many.
    buffers = RingBuffers({"U": spec()})
    res = feed(buffers, [live(k) for k in range(10)])
    burst = [Reading("U", NOW + 110.0, {s: 1.0}, received_at=NOW + 9.2) for s in SENSORS]
    res.merge(feed(buffers, burst))
    assert buffers.held("U") == 3 and reasons(res) == []
    res.merge(feed(buffers, [live(k) for k in range(10, 30)]))
    assert res.accepted == ["U"] * 30 and reasons(res) == ["clock"] * 3
    assert res.skipped == {} and len(res.jobs) == 30 - 3


def test_a_far_past_first_reading_never_becomes_the_origin() -> None:
    # Issue 11 item 1: ts = 1.0 first, then the genuine stream; it added 1.8e9 to windows_skipped{gap}.
    buffers = RingBuffers({"U": spec()})
    first = Reading("U", 1.0, row(0), received_at=NOW - 0.5)
    res = feed(buffers, [first] + [live(k) for k in range(20)])
    assert reasons(res) == ["clock"]
    assert res.accepted == ["U"] * 20
    assert res.skipped == {}  # no 1.8e9 empty rows
    assert len(res.jobs) == 20 - 3 and res.jobs[0].end_ts == NOW + 3


def test_a_far_past_reading_amid_a_replay_into_a_fresh_buffer_is_refused_not_the_origin() -> None:
    buffers = RingBuffers({"U": spec()})
    t0 = NOW - 100_000.0  # a historical replay, received fast: ts far behind the receive clock
    replay = [Reading("U", t0 + k, row(k), received_at=NOW + 0.001 * k) for k in range(30)]
    stray = Reading("U", 1.0, row(0), received_at=NOW + 0.0005)
    res = feed(buffers, [replay[0], stray, *replay[1:]])
    assert res.accepted == ["U"] * 30
    assert len(res.refused) == 1 and res.skipped == {}
    assert res.jobs[0].end_ts == t0 + 3


def test_a_historical_replay_into_a_fresh_buffer_is_accepted_whole() -> None:
    buffers = RingBuffers({"U": spec()})
    t0 = NOW - 100_000.0
    replay = [Reading("U", t0 + k, row(k), received_at=NOW + 0.001 * k) for k in range(50)]
    held = feed(buffers, replay[: CANDIDATE_ROWS - 1])
    assert held.accepted == [] and held.refused == [] and buffers.held("U") == CANDIDATE_ROWS - 1
    res = feed(buffers, replay[CANDIDATE_ROWS - 1 :])
    assert res.accepted == ["U"] * 50 and res.refused == []
    assert [j.end_ts for j in res.jobs] == [t0 + k for k in range(3, 50)]
    assert res.skipped == {}


def test_a_clock_step_ahead_is_followed_after_a_few_rows() -> None:
    buffers = RingBuffers({"U": spec()})
    res = feed(buffers, [live(k) for k in range(20)])
    # The gateway's clock steps 100 s ahead at row 20 (within the parser's max_clock_skew_s) and stays there: unlike
    # one bad reading, nothing of the old timeline follows.
    step = [Reading("U", NOW + k + 100.0, row(k), received_at=NOW + k + 0.05) for k in range(20, 40)]
    after = feed(buffers, step)
    assert after.accepted == ["U"] * 20 and after.refused == []  # the first CANDIDATE_ROWS waited, none lost
    assert buffers.watermark("U") == NOW + 39 + 100.0 - 5.0
    # The step itself is a silence of the unit in event time: gap-skipped, then windows again.
    assert after.skipped["gap"] > 0
    assert after.jobs[-1].end_ts == NOW + 139 and res.refused == []


def test_a_gap_inside_a_fast_backlog_is_followed() -> None:
    buffers = RingBuffers({"U": spec()})
    feed(buffers, [live(k) for k in range(20)])
    # Redelivered fast after a 60 s outage: rows 80..120 (rows 20..79 were never sent), 1 ms apart.
    back = [Reading("U", NOW + k, row(k), received_at=NOW + 80 + 0.001 * k) for k in range(20, 30)]
    back += [Reading("U", NOW + k, row(k), received_at=NOW + 80.01 + 0.001 * k) for k in range(90, 130)]
    res = feed(buffers, back)
    assert res.accepted == ["U"] * 50 and res.refused == []
    assert res.jobs[-1].end_ts == NOW + 129


def test_silence_then_resuming_live_stays_on_the_timeline() -> None:
    buffers = RingBuffers({"U": spec()})
    res = feed(buffers, [live(k) for k in range(20)] + [live(k) for k in range(3620, 3640)])
    assert res.accepted == ["U"] * 40 and res.refused == [] and buffers.held("U") == 0
    assert res.jobs[-1].end_ts == NOW + 3639


def test_shuffled_within_the_lateness_is_still_the_in_order_stream() -> None:
    rng = np.random.default_rng(7)
    stream = [live(k) for k in range(80)]
    shuffled = list(stream)
    for i in range(0, 76, 4):  # shuffle blocks of 4 rows (within the 5 s lateness), arrival clock in order
        block = shuffled[i : i + 4]
        rng.shuffle(block)  # type: ignore[arg-type]
        shuffled[i : i + 4] = block
    arrivals = [r.received_at for r in stream]
    shuffled = [Reading("U", r.ts, dict(r.values), received_at=t) for r, t in zip(shuffled, arrivals, strict=True)]
    a = feed(RingBuffers({"U": spec(origin_s=0.0)}), stream)
    b = feed(RingBuffers({"U": spec(origin_s=0.0)}), shuffled)
    assert a.refused == b.refused == []
    assert [(j.end_ts, j.window.tobytes()) for j in a.jobs] == [(j.end_ts, j.window.tobytes()) for j in b.jobs]


def test_held_readings_are_refused_at_the_end_of_the_input_and_the_hold_is_bounded() -> None:
    buffers = RingBuffers({"U": spec()})
    feed(buffers, [live(k) for k in range(10)])
    # The same row ahead, again and again: one row, never adopted; the hold keeps at most 3 rows x 3 sensors.
    spam = [Reading("U", NOW + 200.0, row(0), received_at=NOW + 9.5 + 0.001 * i) for i in range(50)]
    res = feed(buffers, spam)
    assert buffers.held("U") == CANDIDATE_ROWS * len(SENSORS)
    assert len(res.refused) == 50 - CANDIDATE_ROWS * len(SENSORS)
    end = buffers.flush()
    assert len(end.refused) == CANDIDATE_ROWS * len(SENSORS) and buffers.held("U") == 0
    assert {r.reason for r in res.refused + end.refused} == {"clock"}


def test_the_backtest_clock_is_never_held() -> None:
    # The backtest gives received_at = ts: a history far in the past, with gaps and jumps, is placed as is.
    buffers = RingBuffers({"U": spec()})
    stamps = [5_000.0 + k for k in range(10)] + [9_000.0 + k for k in range(10)]
    res = feed(buffers, [Reading("U", ts, row(0), received_at=ts) for ts in stamps])
    assert res.accepted == ["U"] * 20 and buffers.held("U") == 0


def test_duplicates_count_once_per_message_and_never_as_received() -> None:
    # Issue 11 item 6: a redelivered readings message counted as 8 rejections and as received.
    buffers = RingBuffers({"U": spec()})
    res = feed(buffers, [live(k) for k in range(20)] + [live(5), live(6)])
    assert res.accepted == ["U"] * 20
    assert reasons(res) == ["duplicate", "duplicate"]
    assert len(res.rejections) == 2 * len(SENSORS)  # still per value, for the logs and the backtest
    # A message partly placed: accepted once, its refused value counted apart.
    part = buffers.add(Reading("U", NOW + 20.2, {"a": 1.0}, received_at=NOW + 20.3))
    part2 = buffers.add(Reading("U", NOW + 20.1, {"a": 2.0, "b": 3.0}, received_at=NOW + 20.4))
    assert part.accepted == part2.accepted == ["U"] and part2.refused == []
    assert [r.reason for r in part2.values_refused] == ["duplicate"]
