"""RingBuffers: alignment, lateness, duplicates, hold-over of gaps, windows."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from monitor.buffers.results import AddResult
from monitor.buffers.ring_buffers import RingBuffers
from monitor.buffers.unit_spec import UnitSpec
from monitor.config import PlantwatchConfig
from monitor.messages import Reading, WindowJob
from monitor.params import specs_from_config

SENSORS = ("a", "b", "c")
T0 = 1_732_590_000.0


def spec(**kw: object) -> UnitSpec:
    base: dict[str, object] = {
        "sensors": SENSORS,
        "period_s": 1.0,
        "max_lateness_s": 5.0,
        "max_gap_periods": 2,
        "window_rows": 4,
    }
    base.update(kw)
    return UnitSpec(**base)  # type: ignore[arg-type]


def row_values(k: int) -> dict[str, float]:
    return {"a": float(k), "b": 100.0 + k, "c": -float(k)}


def per_sensor_stream(n_rows: int, rng: np.random.Generator, jitter_s: float = 0.2) -> list[Reading]:
    """One Reading per sensor per row, event times jittered within the row's bucket, in arrival (= ts) order."""
    out = []
    for k in range(n_rows):
        for s, v in row_values(k).items():
            ts = T0 + k + float(rng.uniform(-jitter_s, jitter_s))
            out.append(Reading("U", ts, {s: v}, received_at=ts + 0.01))
    out.sort(key=lambda r: r.ts)
    return out


def feed(buffers: RingBuffers, readings: list[Reading]) -> AddResult:
    total = AddResult()
    for r in readings:
        total.merge(buffers.add(r))
    total.merge(buffers.flush())
    return total


def as_rows(jobs: list[WindowJob]) -> list[tuple[float, bytes]]:
    return [(j.end_ts, j.window.tobytes()) for j in jobs]


def test_in_order_complete_rows_yield_windows_once_warm() -> None:
    buffers = RingBuffers({"U": spec()})
    jobs: list[WindowJob] = []
    for k in range(6):
        res = buffers.add(Reading("U", T0 + k, row_values(k), received_at=T0 + k + 0.5))
        assert res.rejections == []
        assert res.skipped == {}
        jobs += res.jobs
        # A complete row closes at once: the window is due on the reading that completes it.
        assert len(res.jobs) == (1 if k >= 3 else 0)
    assert [j.end_ts for j in jobs] == [T0 + 3, T0 + 4, T0 + 5]
    last = jobs[-1]
    assert last.window.shape == (4, 3)
    assert last.window.dtype == np.float32
    np.testing.assert_array_equal(last.window[:, 0], [2, 3, 4, 5])
    np.testing.assert_array_equal(last.window[:, 1], [102, 103, 104, 105])
    assert last.received_at == T0 + 5.5
    assert buffers.fill("U") == pytest.approx(6 / spec().capacity)


def test_redelivery_dozens_of_rows_back_is_a_duplicate_not_late() -> None:
    """A broker resends unacknowledged QoS 1 messages after a reconnect: rows well behind the newest."""
    buffers = RingBuffers({"U": spec()})
    for k in range(100):
        buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0))
    res = buffers.add(Reading("U", T0 + 60, row_values(60), received_at=0.0))  # 40 rows back, 10x the window
    assert [r.reason for r in res.rejections] == ["duplicate"] * len(SENSORS)
    assert res.jobs == []


def test_window_is_a_copy_across_the_ring_wrap() -> None:
    buffers = RingBuffers({"U": spec(capacity_rows=5)})
    jobs: list[WindowJob] = []
    for k in range(12):
        jobs += buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0)).jobs
    first = jobs[0]
    np.testing.assert_array_equal(first.window[:, 0], [0, 1, 2, 3])  # later writes did not change it
    np.testing.assert_array_equal(jobs[-1].window[:, 0], [8, 9, 10, 11])  # rows 10, 11 sit at the ring's start
    assert buffers.fill("U") == 1.0


def test_out_of_order_within_lateness_gives_the_in_order_rows() -> None:
    rng = np.random.default_rng(0)
    in_order = per_sensor_stream(60, rng)
    shuffled = list(in_order)
    # Shuffle within +-2 s of event time (lateness 5 s): sort by a jittered key.
    keys = [r.ts + float(rng.uniform(-2.0, 2.0)) for r in shuffled]
    shuffled = [r for _, r in sorted(zip(keys, shuffled, strict=True), key=lambda p: p[0])]
    assert shuffled != in_order

    # A configured origin: otherwise each stream's first reading (a different one once shuffled) sets the phase.
    a = feed(RingBuffers({"U": spec(origin_s=0.0)}), in_order)
    b = feed(RingBuffers({"U": spec(origin_s=0.0)}), shuffled)
    assert a.rejections == [] and b.rejections == []
    assert len(a.jobs) == 60 - 3
    assert as_rows(a.jobs) == as_rows(b.jobs)
    assert a.skipped == b.skipped == {}


def test_late_reading_is_rejected_and_not_merged() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=2.0)})
    for k in range(10):
        buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0))
    # Row 3 closed long ago and is still in the ring, but sensor "a" was observed there: a redelivery.
    res = buffers.add(Reading("U", T0 + 3, {"a": 999.0}, received_at=0.0))
    assert [r.reason for r in res.rejections] == ["duplicate"]
    # Row -50 was never in the ring: late.
    res = buffers.add(Reading("U", T0 - 50, {"a": 999.0}, received_at=0.0))
    assert [r.reason for r in res.rejections] == ["late"]
    assert res.jobs == []
    # An incomplete row passed by the watermark is closed; a value for it afterwards is late.
    buffers.add(Reading("U", T0 + 10, {"a": 1.0, "b": 2.0}, received_at=0.0))  # c missing
    buffers.add(Reading("U", T0 + 13, row_values(13), received_at=0.0))  # watermark 11: row 10 passed
    res = buffers.add(Reading("U", T0 + 10, {"c": 3.0}, received_at=0.0))
    assert [(r.reason, r.unit) for r in res.rejections] == [("late", "U")]


def test_duplicate_in_open_row_keeps_first_value() -> None:
    buffers = RingBuffers({"U": spec(window_rows=1)})
    assert buffers.add(Reading("U", T0, {"a": 1.0}, received_at=0.0)).rejections == []
    res = buffers.add(Reading("U", T0 + 0.1, {"a": 2.0, "b": 5.0}, received_at=0.0))  # same row 0
    assert [r.reason for r in res.rejections] == ["duplicate"]
    res = buffers.add(Reading("U", T0, {"c": 7.0}, received_at=0.0))
    assert len(res.jobs) == 1
    np.testing.assert_array_equal(res.jobs[0].window, [[1.0, 5.0, 7.0]])


def test_unknown_unit_sensor_and_non_finite_are_rejected_without_touching_the_buffer() -> None:
    buffers = RingBuffers({"U": spec(window_rows=1)})
    assert [r.reason for r in buffers.add(Reading("X", T0, {"a": 1.0}, 0.0)).rejections] == ["unknown_unit"]
    res = buffers.add(Reading("U", T0, {"zz": 1.0, "a": float("nan")}, 0.0))
    assert sorted(r.reason for r in res.rejections) == ["non_finite", "unknown_sensor"]
    assert buffers.watermark("U") == float("-inf")  # nothing placed, nothing moved
    for ts in (float("nan"), float("inf"), 1e300):
        assert [r.reason for r in buffers.add(Reading("U", ts, {"a": 1.0}, 0.0)).rejections] == ["schema"]
    res = buffers.add(Reading("U", T0, row_values(0), 0.0))
    assert res.rejections == [] and len(res.jobs) == 1


def test_missing_sensor_is_held_over_then_the_window_is_skipped() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=0.0, max_gap_periods=2)})
    jobs: list[WindowJob] = []
    skipped = 0
    for k in range(12):
        vals = row_values(k)
        if 4 <= k <= 7:  # sensor c silent for 4 rows: 2 held over, then 2 invalid
            del vals["c"]
        res = buffers.add(Reading("U", T0 + k, vals, received_at=0.0))
        jobs += res.jobs
        skipped += res.skipped.get("gap", 0)
    res = buffers.flush("U")
    jobs += res.jobs
    skipped += res.skipped.get("gap", 0)
    ends = [int(j.end_ts - T0) for j in jobs]
    # Rows 6 and 7 are invalid: the windows ending at 6..10 (window 4) hold one of them and are skipped; the
    # sensor's return makes rows valid again, and the window ending at 11 (rows 8..11) is scored.
    assert ends == [3, 4, 5, 11]
    assert skipped == 5
    # Rows 4, 5 carried c's last value (row 3 -> -3.0).
    np.testing.assert_array_equal(jobs[2].window[:, 2], [-2.0, -3.0, -3.0, -3.0])
    np.testing.assert_array_equal(jobs[3].window[:, 2], [-8.0, -9.0, -10.0, -11.0])


def test_silent_period_closes_empty_rows_with_the_same_hold_over_rule() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=1.0, max_gap_periods=2)})
    for k in range(5):
        buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0))
    # Two silent rows (5, 6): held over, still valid.
    res = AddResult()
    for k in range(7, 10):
        res.merge(buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0)))
    res.merge(buffers.flush())
    assert [int(j.end_ts - T0) for j in res.jobs] == [5, 6, 7, 8, 9]
    np.testing.assert_array_equal(res.jobs[1].window[:, 0], [3, 4, 4, 4])  # rows 5, 6 = row 4 held over
    assert res.skipped == {}


def test_long_silence_is_counted_in_bulk_and_bounded() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=0.0, max_gap_periods=2, window_rows=4)})
    for k in range(5):
        buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0))
    # A day of silence: 86,400 rows close without a loop over each, all but two invalid.
    res = buffers.add(Reading("U", T0 + 86_405, row_values(86_405), received_at=0.0))
    # Rows 5..86,404 close; windows ending at 5, 6 are valid (held over); the rest hold an invalid row, and
    # so does the window ending at the new row 86,405.
    assert [int(j.end_ts - T0) for j in res.jobs] == [5, 6]
    assert res.skipped == {"gap": 86_405 - 7 + 1}
    jobs = []
    for k in range(86_406, 86_409):
        jobs += buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0)).jobs
    assert [int(j.end_ts - T0) for j in jobs] == [86_408]
    np.testing.assert_array_equal(jobs[0].window[:, 0], [86_405, 86_406, 86_407, 86_408])


def test_rows_wait_for_earlier_rows_then_the_watermark_closes_them() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=3.0, window_rows=1)})
    assert len(buffers.add(Reading("U", T0, row_values(0), 0.0)).jobs) == 1
    assert buffers.add(Reading("U", T0 + 1, {"a": 1.0}, 0.0)).jobs == []  # row 1 incomplete
    # Row 2 is complete but waits for row 1, which may still fill within the lateness.
    assert buffers.add(Reading("U", T0 + 2, row_values(2), 0.0)).jobs == []
    res = buffers.add(Reading("U", T0 + 1, {"b": 101.0, "c": -1.0}, 0.0))
    assert [int(j.end_ts - T0) for j in res.jobs] == [1, 2]
    # Row 3 incomplete; row 5's reading moves the watermark to 2: not yet; row 7 moves it to 4: row 3 (bucket
    # up to 3.5) closes, the silent row 4 (up to 4.5) not yet.
    buffers.add(Reading("U", T0 + 3, {"a": 3.0}, 0.0))
    assert buffers.add(Reading("U", T0 + 5, row_values(5), 0.0)).jobs == []
    res = buffers.add(Reading("U", T0 + 7, row_values(7), 0.0))
    assert [int(j.end_ts - T0) for j in res.jobs] == [3]
    np.testing.assert_array_equal(res.jobs[0].window, [[3.0, 102.0, -2.0]])  # b, c held over from row 2
    res = buffers.flush()
    assert [int(j.end_ts - T0) for j in res.jobs] == [4, 5, 6, 7]
    np.testing.assert_array_equal(res.jobs[0].window, [[3.0, 102.0, -2.0]])  # the silent row 4 held over


def test_rows_bucket_by_rounding_event_time() -> None:
    buffers = RingBuffers({"U": spec(period_s=0.5, window_rows=1, origin_s=0.0)})  # rows on the epoch grid
    # 0.74 s -> row 1 (0.5 s); 0.76 s -> row 2 (1.0 s).
    buffers.add(Reading("U", T0 + 0.74, {"a": 1.0, "b": 1.0}, 0.0))
    res = buffers.add(Reading("U", T0 + 0.76, {"c": 1.0}, 0.0))
    assert res.jobs == []
    res = buffers.flush("U")
    # Row 1 lacks c with nothing to hold over: invalid. Row 2 holds a, b over from row 1: valid.
    assert [j.end_ts - T0 for j in res.jobs] == [1.0]
    np.testing.assert_array_equal(res.jobs[0].window, [[1.0, 1.0, 1.0]])
    assert res.skipped == {"gap": 1}


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="capacity_rows 2 is smaller than window_rows 4"):
        spec(capacity_rows=2)
    with pytest.raises(ValueError, match="unique"):
        UnitSpec(sensors=("a", "a"))
    with pytest.raises(ValueError, match="period_s"):
        spec(period_s=0.0)


def test_job_carries_the_newest_reading_event_time_of_an_off_grid_source() -> None:
    # A gateway that samples 0.4 periods after the row time: the row is T0 + k, the data left the source at
    # T0 + k + 0.4. Publish-to-score latency is measured from the latter (monitor/outputs.py). The row grid is
    # configured on the epoch grid (unset, the first reading's phase would put the rows on the source's times).
    buffers = RingBuffers({"U": spec(sensors=("a", "b"), origin_s=0.0)})
    jobs = []
    for k in range(6):
        jobs += buffers.add(Reading("U", T0 + k + 0.4, {"a": 1.0}, received_at=T0 + k + 0.41)).jobs
        jobs += buffers.add(Reading("U", T0 + k + 0.3, {"b": 2.0}, received_at=T0 + k + 0.42)).jobs
    assert jobs
    for job in jobs:
        k = round(job.end_ts - T0)
        assert job.end_ts == T0 + k
        assert job.source_ts == pytest.approx(T0 + k + 0.4)
        assert job.received_at == pytest.approx(T0 + k + 0.42)


def test_gap_skipped_rows_yield_health_records_in_order_with_the_jobs() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=0.0, max_gap_periods=2)})
    total = AddResult()
    for k in range(12):
        vals = row_values(k)
        if 4 <= k <= 7:  # c silent for 4 rows: 2 held over, then 2 past the hold-over
            del vals["c"]
        total.merge(buffers.add(Reading("U", T0 + k, vals, received_at=T0 + k)))
    total.merge(buffers.flush("U"))
    # jobs and gap counting exactly as without health records.
    assert [int(j.end_ts - T0) for j in total.jobs] == [3, 4, 5, 11]
    assert total.skipped == {"gap": 5}
    assert all(j.valid and j.silent == () for j in total.jobs)
    # records: every job, and one health-only record per gap-skipped row, in event-time order.
    assert [int(r.end_ts - T0) for r in total.records] == list(range(3, 12))
    health = [r for r in total.records if not r.valid]
    assert [int(r.end_ts - T0) for r in health] == [6, 7, 8, 9, 10]
    assert [r.silent for r in health] == [("c",), ("c",), (), (), ()]
    assert all(r.window.shape == (1, 3) for r in health)
    np.testing.assert_array_equal(health[0].window[0], [6.0, 106.0, np.nan])  # c past its hold-over: NaN
    np.testing.assert_array_equal(health[2].window[0], [8.0, 108.0, -8.0])  # c back
    assert health[0].received_at == T0 + 6 and health[0].source_ts == T0 + 6
    assert [r for r in total.records if r.valid] == total.jobs


def test_long_silence_yields_a_bounded_number_of_health_records() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=0.0, max_gap_periods=2, window_rows=4, silent_rows=3)})
    for k in range(5):
        buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0))
    res = buffers.add(Reading("U", T0 + 86_405, row_values(86_405), received_at=0.0))
    assert [int(j.end_ts - T0) for j in res.jobs] == [5, 6]
    assert res.skipped == {"gap": 86_405 - 7 + 1}
    health = [r for r in res.records if not r.valid]
    # Row 7 (the first past the hold-over) and silent_rows more one by one, the span's last row, the new row.
    assert [int(r.end_ts - T0) for r in health] == [7, 8, 9, 10, 86_404, 86_405]
    assert [r.silent for r in health] == [SENSORS] * 5 + [()]
    assert np.isnan(health[4].window).all()


def test_warm_up_rows_yield_no_health_record_and_silent_rows_are_validated() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=0.0, max_gap_periods=0, window_rows=4)})
    res = AddResult()
    for k in range(4):  # c never sends: every row is past the hold-over, but warm-up rows (0..2) are neither
        res.merge(buffers.add(Reading("U", T0 + k, {"a": 1.0, "b": 2.0}, received_at=0.0)))
    assert res.records == [] and res.skipped == {}
    res = buffers.add(Reading("U", T0 + 4, {"a": 1.0, "b": 2.0}, received_at=0.0))
    res.merge(buffers.add(Reading("U", T0 + 5, {"a": 1.0, "b": 2.0}, received_at=0.0)))
    assert [(int(r.end_ts - T0), r.silent) for r in res.records] == [(3, ("c",)), (4, ("c",))]
    with pytest.raises(ValueError, match="silent_rows"):
        spec(silent_rows=-1)


def test_rows_follow_the_phase_of_the_first_reading() -> None:
    # A 180 s source sampling 80 s past the epoch grid: the rows carry its readings' times, not times up to half a
    # period away (floor(ts / 180 + 0.5) * 180 stamped these 80 s early).
    buffers = RingBuffers({"U": spec(period_s=180.0, max_lateness_s=0.0, window_rows=1)})
    origin = 1_732_590_000.0 + 80.0
    assert origin % 180.0 == 80.0
    times = [origin + 180.0 * k for k in range(5)]
    jobs: list[WindowJob] = []
    for ts in times:
        jobs += buffers.add(Reading("U", ts, row_values(0), received_at=ts)).jobs
    jobs += buffers.flush().jobs
    assert [j.end_ts for j in jobs] == times
    assert [j.source_ts for j in jobs] == times
    # Jitter within half a period stays on that grid.
    res = buffers.add(Reading("U", times[-1] + 180.0 + 70.0, row_values(0), received_at=0.0))
    assert [j.end_ts for j in res.jobs] == [times[-1] + 180.0]


def test_a_configured_origin_wins_over_the_first_reading() -> None:
    # Origin at 20 s past the 60 s grid (any time on the grid will do: only its phase counts). A reading at 50 s
    # past goes to the nearest row of that grid, at 80 s past.
    buffers = RingBuffers({"U": spec(period_s=60.0, max_lateness_s=0.0, window_rows=1, origin_s=T0 + 20.0 - 600.0)})
    res = buffers.add(Reading("U", T0 + 50.0, row_values(0), received_at=0.0))
    assert [j.end_ts for j in res.jobs] == [T0 + 80.0]
    assert res.jobs[0].source_ts == T0 + 50.0
    with pytest.raises(ValueError, match="origin_s"):
        spec(origin_s=float("nan"))


def test_a_rejected_reading_does_not_set_the_phase() -> None:
    buffers = RingBuffers({"U": spec(period_s=10.0, max_lateness_s=0.0, window_rows=1)})
    # Refused before anything is placed: unknown sensor, non-finite value. Neither fixes the grid at 7 s past.
    assert buffers.add(Reading("U", T0 + 7.0, {"zz": 1.0}, 0.0)).rejections
    assert buffers.add(Reading("U", T0 + 7.0, {"a": float("nan")}, 0.0)).rejections
    res = buffers.add(Reading("U", T0 + 3.0, row_values(0), received_at=0.0))  # the first accepted: 3 s past
    assert [j.end_ts for j in res.jobs] == [T0 + 3.0]
    res = buffers.add(Reading("U", T0 + 12.0, row_values(1), received_at=0.0))  # nearest row: 13 s past
    assert [j.end_ts for j in res.jobs] == [T0 + 13.0]


def test_the_configured_row_origin_reaches_the_unit_spec() -> None:
    unit: dict[str, Any] = {"name": "R1", "sensors": ["a"], "period_s": 180, "detector": {"name": "m", "artifact": "x"}}
    models: Any = {"m": SimpleNamespace(window=8)}  # specs_from_config reads only the window of a model
    cfg = PlantwatchConfig.model_validate({"units": [{**unit, "row_origin_s": 80.0}]})
    assert specs_from_config(cfg, models)[0]["R1"].origin_s == 80.0
    cfg = PlantwatchConfig.model_validate({"units": [unit]})
    assert specs_from_config(cfg, models)[0]["R1"].origin_s is None


def test_health_records_are_stamped_on_the_units_own_grid_in_order_with_its_jobs() -> None:
    # A 180 s source sampling 80 s past the epoch grid: its gap-skipped rows are stamped like its jobs.
    buffers = RingBuffers({"U": spec(period_s=180.0, max_lateness_s=0.0, max_gap_periods=1, window_rows=2)})
    t0 = 1_767_225_680.0  # 80 s past a multiple of 180 s
    total = AddResult()
    for k in range(10):
        vals = row_values(k)
        if 4 <= k <= 6:
            del vals["c"]
        total.merge(buffers.add(Reading("U", t0 + 180.0 * k, vals, received_at=t0 + 180.0 * k)))
    health = [r for r in total.records if not r.valid]
    assert health, "no gap-skipped row"
    assert all((r.end_ts - t0) % 180.0 == 0.0 for r in total.records)
    assert [r.end_ts for r in total.records] == sorted(r.end_ts for r in total.records)


# --- values refused as outside their limits (Reading.out_of_range, monitor.validation) -----------------------


def oor(k: int, **values: float) -> Reading:
    """Row k's reading with the sensors in ``values`` refused at the door as out of range (what the parser makes
    of a value outside its sensor's limits); the other sensors carry row_values(k)."""
    good = {s: v for s, v in row_values(k).items() if s not in values}
    return Reading("U", T0 + k, good, received_at=0.0, out_of_range=tuple(values.items()))


def test_an_out_of_range_value_is_missing_held_over_and_named_out_of_range_then_resolves() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=0.0, max_gap_periods=2)})
    records: list[WindowJob] = []
    for k in range(4):
        records += buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0)).records
    assert [r.out_of_range for r in records] == [()]  # row 3's window: nothing flagged
    records.clear()
    for k in range(4, 8):  # b reads -1e6 (a broken transmitter) for 4 rows: 2 held over, then 2 invalid
        res = buffers.add(oor(k, b=-1e6))
        # Counted per value, the rest of the message placed: accepted, the bad value inside it refused.
        assert res.accepted == ["U"] and res.refused == []
        assert [r.reason for r in res.values_refused] == ["out_of_range"] == [r.reason for r in res.rejections]
        # b is settled by its mark: the row closes at once (a, c in), as a complete row does.
        assert [rows_of_job(r) for r in res.records] == [k]
        records += res.records
    held, health = records[:2], records[2:]
    # The models' windows hold b's last good value (row 3: 103.0), never -1e6, and name b out of range.
    assert all(r.valid for r in held)
    np.testing.assert_array_equal(held[1].window[:, 1], [102.0, 103.0, 103.0, 103.0])
    assert [r.out_of_range for r in held] == [(("b", -1e6),)] * 2
    # Past the hold-over: health-only records, b named out of range and not silent.
    assert [r.valid for r in health] == [False, False]
    assert [(r.out_of_range, r.silent) for r in health] == [((("b", -1e6),), ())] * 2
    assert np.isnan(health[0].window[0, 1])
    # b back in range: cleared at once; windows still holding rows 6, 7 are health-only records with nothing named.
    back = AddResult()
    for k in range(8, 12):
        back.merge(buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0)))
    assert [(rows_of_job(r), r.valid, r.out_of_range, r.silent) for r in back.records] == [
        (8, False, (), ()),
        (9, False, (), ()),
        (10, False, (), ()),
        (11, True, (), ()),
    ]
    assert back.records[-1].window[:, 1].tolist() == [108.0, 109.0, 110.0, 111.0]


def rows_of_job(job: WindowJob) -> int:
    return round(job.end_ts - T0)


def test_a_message_whose_every_value_is_out_of_range_is_refused_whole_and_still_marks_the_sensor() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=5.0, max_gap_periods=1, window_rows=1)})
    buffers.add(Reading("U", T0, row_values(0), received_at=0.0))
    # Per-sensor messages: a and c in range, b alone and out of range (plant/U/b -> -1e6).
    res = AddResult()
    for k in (1, 2):
        res.merge(buffers.add(Reading("U", T0 + k, {"a": float(k), "c": -float(k)}, received_at=0.0)))
        res.merge(buffers.add(Reading("U", T0 + k, {}, received_at=0.0, out_of_range=(("b", -1e6),))))
    # Each b message refused whole under out_of_range (nothing placed); the a + c messages accepted.
    assert res.accepted == ["U"] * 2
    assert [r.reason for r in res.refused] == ["out_of_range"] * 2 and res.values_refused == []
    # Its mark settles row k: each row closes on it, without waiting for the watermark (lateness 5 s).
    assert [(rows_of_job(r), r.valid, r.out_of_range) for r in res.records] == [
        (1, True, (("b", -1e6),)),
        (2, False, (("b", -1e6),)),
    ]
    assert res.records[0].window[0].tolist() == [1.0, 100.0, -1.0]  # b held over (max_gap_periods 1)
    assert buffers.watermark("U") == T0 + 2 - 5.0  # the refused messages moved nothing


def test_a_value_in_range_for_the_same_row_wins_over_the_mark() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=5.0, window_rows=1)})
    buffers.add(Reading("U", T0, row_values(0), received_at=0.0))
    buffers.add(Reading("U", T0 + 1, {"a": 1.0}, received_at=0.0))
    assert buffers.add(Reading("U", T0 + 1, {}, 0.0, out_of_range=(("b", -1e6),))).records == []  # c not in yet
    res = buffers.add(Reading("U", T0 + 1, {"b": 101.0, "c": -1.0}, received_at=0.0))  # b in range after all
    assert res.rejections == [] and res.accepted == ["U"]
    assert [(r.window[0].tolist(), r.out_of_range) for r in res.records] == [([1.0, 101.0, -1.0], ())]
    # The other way round: a value placed first, then a mark for the same row: the value stays, counted as refused.
    buffers.add(Reading("U", T0 + 2, {"b": 102.0}, received_at=0.0))
    res = buffers.add(Reading("U", T0 + 2, {"a": 2.0, "c": -2.0}, 0.0, out_of_range=(("b", 7e9),)))
    assert [r.reason for r in res.values_refused] == ["out_of_range"]
    assert [(r.window[0].tolist(), r.out_of_range) for r in res.records] == [([2.0, 102.0, -2.0], ())]


def test_a_sensor_that_stops_reporting_after_out_of_range_becomes_silent() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=0.0, max_gap_periods=2)})
    for k in range(4):
        buffers.add(Reading("U", T0 + k, row_values(k), received_at=0.0))
    res = buffers.add(oor(4, c=55.0))
    records = list(res.records)
    for k in range(5, 11):  # then c sends nothing at all (row 10 closes row 9)
        records += buffers.add(Reading("U", T0 + k, {"a": float(k), "b": 100.0 + k}, received_at=0.0)).records
    named = [(rows_of_job(r), r.out_of_range, r.silent) for r in records]
    # The mark holds as long as a value would (2 rows after it), then c is silent like any missing sensor.
    assert named == [
        (4, (("c", 55.0),), ()),
        (5, (("c", 55.0),), ()),
        (6, (("c", 55.0),), ()),
        (7, (), ("c",)),
        (8, (), ("c",)),
        (9, (), ("c",)),
    ]


def test_marks_are_bounded_to_the_units_time() -> None:
    buffers = RingBuffers({"U": spec(max_lateness_s=5.0, window_rows=1)})
    # Before the unit's first placed reading (no grid yet): counted and forgotten.
    res = buffers.add(Reading("U", T0, {}, 0.0, out_of_range=(("a", -1.0), ("b", -1.0), ("c", -1.0))))
    assert [r.reason for r in res.refused] == ["out_of_range"] and len(res.rejections) == 3
    buffers.add(Reading("U", T0, row_values(0), received_at=0.0))
    # Far ahead of the newest placed reading: no row is opened for it (it would be held open ahead of the unit).
    assert buffers.add(Reading("U", T0 + 50, {}, 0.0, out_of_range=(("b", -1e6),))).refused[0].reason == (
        "out_of_range"
    )
    res = buffers.add(Reading("U", T0 + 1, row_values(1), received_at=0.0))
    assert [r.out_of_range for r in res.records] == [()]
    # For a closed row: counted (out_of_range before the row's own late/duplicate verdict), nothing marked.
    res = buffers.add(Reading("U", T0 + 1, {"a": 1.0}, 0.0, out_of_range=(("b", -1e6),)))
    assert [r.reason for r in res.rejections] == ["out_of_range", "duplicate"]
    assert [r.reason for r in res.refused] == ["out_of_range"]
    res = buffers.add(Reading("U", T0 + 2, row_values(2), received_at=0.0))
    assert [r.out_of_range for r in res.records] == [()]


def test_job_source_time_is_when_the_newest_reading_was_sent_when_the_payload_says() -> None:
    # A replay faster than real time: event times an hour old, published now. The job's source_ts is the
    # publication time (Reading.sent_at), which publish-to-score latency is measured from; without it, event time.
    buffers = RingBuffers({"U": spec(sensors=("a", "b"), origin_s=0.0)})
    jobs = []
    for k in range(6):
        jobs += buffers.add(Reading("U", T0 + k, {"a": 1.0}, received_at=T0 + 3600 + k, sent_at=T0 + 3600 + k)).jobs
        jobs += buffers.add(Reading("U", T0 + k, {"b": 2.0}, received_at=T0 + 3600 + k, sent_at=T0 + 3599.9 + k)).jobs
    assert jobs
    for job in jobs:
        k = round(job.end_ts - T0)
        assert job.source_ts == pytest.approx(T0 + 3600 + k)
