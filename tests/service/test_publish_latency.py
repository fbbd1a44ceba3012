"""plantwatch_publish_to_score_seconds is publication -> score wall latency, also when event time is not wall time.

A simulator or a replay faster than real time stamps event times that lag the wall clock (by a day here): measured
from event time, every sample fell in +Inf. The simulator's payloads carry ``sent`` (its wall clock when it
published) and the service measures from that; a payload without it is measured from its ``ts``, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from monitor.app import App
from monitor.config import PlantwatchConfig
from simulators import LivePublisher
from simulators.live import Row
from tests.kit import Broker, wait_until
from tests.service.conftest import SENSORS, WINDOW, Publisher, epoch_base, normal_rows

BUCKET = "plantwatch_publish_to_score_seconds_bucket"
ROWS = 200


def _latency(app: App, le: str) -> float:
    return app.exposition.get_sample_value(BUCKET, {"le": le}) or 0.0


def test_fast_replay_latency_is_measured_from_publication_not_from_event_time(
    mosquitto: Broker,
    service_config: Callable[..., PlantwatchConfig],
    publisher: Callable[..., Publisher],
    unique_prefix: str,
) -> None:
    app = App(service_config())
    app.start()
    try:
        assert wait_until(lambda: app.ready()[0], timeout_s=15)
        t0 = epoch_base()  # a day ago and more: what a fast replay of history stamps
        rows = [
            Row(t0 + i, "R1", {s: float(v) for s, v in zip(SENSORS, row, strict=True)})
            for i, row in enumerate(normal_rows(ROWS, seed=3))
        ]
        sim = LivePublisher(rows, mosquitto.host, mosquitto.port, speed=80.0, qos=1,
                            readings_topic=f"{unique_prefix}/plant/{{unit}}/readings")  # fmt: skip
        sim.start()
        assert sim.wait(60) and sim.error is None and sim.published == ROWS
        windows = ROWS - WINDOW + 1
        assert wait_until(lambda: _latency(app, "+Inf") == windows, timeout_s=30), _latency(app, "+Inf")
        # Every window within a few seconds of its publication, on a loaded test machine too; from event time
        # they would all have been over a day.
        assert _latency(app, "5.0") == windows
        assert time.time() - (t0 + ROWS) > 86_400

        # A gateway's payload without `sent`: latency from its ts, so history published now is over 10 s.
        publisher().rows("R2", normal_rows(WINDOW + 4, seed=4), t0)
        assert wait_until(lambda: _latency(app, "+Inf") == windows + 5, timeout_s=30)
        assert _latency(app, "10.0") == windows
    finally:
        app.stop(10)
