"""The scorer process (monitor/scorer.py): its death stops the service, and what crosses between the processes."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.app import App
from monitor.config import PlantwatchConfig
from monitor.merged_metrics import merge_families
from monitor.messages import WindowJob
from monitor.window_slots import SlotReader, SlotWriter, WindowSlots
from tests.kit import wait_until
from tests.service.conftest import Publisher, epoch_base, normal_rows


def test_a_killed_scorer_makes_the_service_unready_and_failed(
    service_config: Callable[..., PlantwatchConfig], publisher: Callable[..., Publisher]
) -> None:
    app = App(service_config(scheduler={"scorer": "process"}))
    app.start()
    try:
        assert wait_until(lambda: app.ready()[0], timeout_s=30), app.ready()
        scorer = app._scorer
        assert scorer is not None and scorer.process.pid is not None
        os.kill(scorer.process.pid, signal.SIGKILL)
        publisher().rows("R1", normal_rows(5, seed=3), epoch_base())  # the feeder notices at its next window
        assert wait_until(app.failed.is_set, timeout_s=15)
        ready, reason = app.ready()
        assert not ready and "failed" in reason
    finally:
        app.stop(5)


def _job(unit: str, rows: int, sensors: int, ts: float, **extra: object) -> WindowJob:
    window = np.arange(rows * sensors, dtype=np.float32).reshape(rows, sensors) + ts
    return WindowJob(unit, ts, window, ts + 0.5, ts - 0.25, **extra)  # type: ignore[arg-type]


def test_window_slots_carry_every_field_and_reuse_freed_slots() -> None:
    import multiprocessing

    units = {"R1": ("a", "b", "c"), "R2": ("x", "y")}
    slots = WindowSlots.create(4, 6, units)
    ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
    free_recv, free_send = multiprocessing.Pipe(duplex=False)
    primed: list[WindowJob] = []
    writer = SlotWriter(slots, ready_send, free_recv)
    reader = SlotReader(WindowSlots.attach(slots.block.name, 4, 6, units), ready_recv, free_send, primed.extend)
    try:
        jobs = [
            _job("R1", 6, 3, 100.0, silent=("b",), out_of_range=(("c", 1e6),)),
            _job("R2", 4, 2, 101.0, valid=False),
            _job("R1", 6, 3, 102.0),
        ]
        assert writer.send(jobs[:1], timeout_s=1.0, prime=True) == 1
        assert writer.send(jobs, timeout_s=1.0) == 3
        # 4 slots, all taken: a fifth waits for a free one and gives up at the deadline
        assert writer.send([_job("R2", 4, 2, 103.0)], timeout_s=0.05) == 0
        taken = reader.take(10, 0.05, 1.0)
        assert [p.end_ts for p in primed] == [100.0]
        assert len(taken) == 3
        for got, sent in zip(taken, jobs, strict=True):
            assert (got.unit, got.end_ts, got.received_at, got.source_ts) == (
                sent.unit,
                sent.end_ts,
                sent.received_at,
                sent.source_ts,
            )
            assert got.valid == sent.valid and got.silent == sent.silent
            assert got.out_of_range == sent.out_of_range
            np.testing.assert_array_equal(got.window, sent.window)
        # the slots came back: more jobs than slots go through in turns
        more = [_job("R2", 4, 2, 200.0 + i) for i in range(10)]
        got: list[WindowJob] = []

        def drain() -> None:
            while len(got) < 10:
                got.extend(reader.take(10, 0.0, 1.0))

        consumer = threading.Thread(target=drain)
        consumer.start()
        assert writer.send(more, timeout_s=5.0) == 10
        consumer.join(10)
        assert [j.end_ts for j in got] == [j.end_ts for j in more]
        writer.end()
        assert reader.take(10, 0.0, 1.0) == [] and reader.ended.is_set() and not reader.orphaned
    finally:
        slots.close()


def test_a_scrape_merges_the_scorers_series_into_the_fronts() -> None:
    front, scorer = CollectorRegistry(), CollectorRegistry()
    for registry, scored, connected in ((front, 0, 1), (scorer, 7, 0)):
        counter = Counter("plantwatch_windows_scored_total", "d", ["detector"], registry=registry)
        counter.labels("forecast").inc(scored)
        Gauge("plantwatch_mqtt_connected", "d", registry=registry).set(connected)
        Gauge("plantwatch_ready", "d", registry=registry).set(connected)
    Gauge("plantwatch_scorer_only", "d", registry=scorer).set(3)
    merged = {f.name: f for f in merge_families(front.collect(), scorer.collect())}
    values = {(s.name, tuple(s.labels.values())): s.value for f in merged.values() for s in f.samples}
    assert values[("plantwatch_windows_scored_total", ("forecast",))] == 7  # counters add up
    assert values[("plantwatch_mqtt_connected", ())] == 0  # both links must be up
    assert values[("plantwatch_ready", ())] == 1  # the front's: it asks the scorer itself
    assert values[("plantwatch_scorer_only", ())] == 3
    assert len([s for s in merged["plantwatch_windows_scored"].samples if s.name.endswith("_total")]) == 1
