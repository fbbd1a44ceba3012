"""One CSV, two compositions: `run_backtest` and the service (`App` over a real mosquitto, fed by `plantwatch
replay`) give the same alert events and the same scores.

The backtest closes every row at the end of the file; the service keeps the newest rows open until the watermark
passes them (max_lateness_s), so the comparison covers every row up to the end minus that lateness, and the service
must have scored all of them. The service's outputs are read back off the broker by monitor.output_feed (the
payloads decoded by monitor.wire.payloads), so the MQTT sink's encoding is part of what is compared.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from monitor.app import App
from monitor.backtest import run_backtest
from monitor.config import PlantwatchConfig, parse_config
from monitor.messages import AlertEvent
from monitor.output_feed import OutputFeed
from monitor.sinks import RecordingSink
from monitor.startup import load_models
from monitor.wire.csvfile import read_csv
from monitor.wire.payloads import DetectorScore, ScoredRow
from tests.kit import Broker, wait_until
from tests.service.conftest import SENSORS, epoch_base, normal_rows, service_config_dict, with_fault

N_ROWS = 600  # per unit, 1 s apart
FAULT = (250, 330)  # rows of R1 with a +6 bias on s3
LATENESS_S = 5.0  # the config's max_lateness_s (tests/service/conftest.py)
PREFIX = "plantwatch"


def write_run(path: Path, t0: float) -> None:
    """Both units' rows interleaved in time order, with a unit column: the CSV both compositions read."""
    r1 = normal_rows(N_ROWS, seed=21)
    r1[FAULT[0] : FAULT[1]] = with_fault(r1[FAULT[0] : FAULT[1]])
    r2 = normal_rows(N_ROWS, seed=22)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "unit", *SENSORS])
        for i in range(N_ROWS):
            for unit, rows in (("R1", r1), ("R2", r2)):
                writer.writerow([f"{t0 + i:.3f}", unit, *(repr(float(v)) for v in rows[i])])


def config(broker: Broker, artifacts: dict[str, Path], scorer: str) -> PlantwatchConfig:
    data = service_config_dict(broker, artifacts, "parity")
    # `plantwatch replay` publishes on the default readings topic; the outputs under the default prefix.
    data["mqtt"]["topics"] = {"readings": "plant/{unit}/readings", "sensor": None, "prefix": PREFIX}
    data["scheduler"] = {**data["scheduler"], "scorer": scorer}
    return parse_config(data)


def by_row(rows: Sequence[ScoredRow]) -> dict[tuple[str, float], dict[str, DetectorScore]]:
    table: dict[tuple[str, float], dict[str, DetectorScore]] = {}
    for row in rows:
        assert (row.unit, row.ts) not in table, f"row {row.unit} {row.ts} scored twice"
        table[(row.unit, row.ts)] = dict(row.scores)
    return table


def event_key(e: AlertEvent) -> tuple[object, ...]:
    return (e.unit, e.detector, e.state, e.ts, e.severity, tuple(sensor for sensor, _ in e.sensors))


@pytest.mark.parametrize("scorer", ["thread", "process"])
def test_the_same_csv_gives_the_same_alerts_and_scores_through_backtest_and_service(
    scorer: str, broker_factory: Callable[..., Broker], artifacts: dict[str, Path], tmp_path: Path
) -> None:
    broker = broker_factory()
    t0 = epoch_base()
    data_path = tmp_path / "run.csv"
    write_run(data_path, t0)
    cfg = config(broker, artifacts, scorer)

    offline = RecordingSink(keep_rows=True)
    models = load_models(cfg, "cpu")  # as the service on the CPU (ONNX Runtime where the artifact has a graph)
    data = read_csv(data_path, {u.name: tuple(u.sensors) for u in cfg.units}, default_unit=None)
    backtest = run_backtest(cfg, models, data, sinks=[offline])
    assert backtest.rows == 2 * N_ROWS and not backtest.rejected

    cutoff = t0 + N_ROWS - 1 - LATENESS_S - 1  # rows after this may still be open in the service
    expected = {key: scores for key, scores in by_row(offline.rows).items() if key[1] <= cutoff}
    live = RecordingSink(keep_rows=True)
    feed = OutputFeed(broker.host, broker.port, PREFIX, [live])
    feed.start()
    app = App(cfg)
    app.start()
    try:
        assert wait_until(lambda: app.ready()[0], timeout_s=30), app.ready()
        replay = subprocess.run(
            [sys.executable, "-m", "monitor", "replay", str(data_path), "--broker", broker.address, "--speed", "0"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert f"replayed {2 * N_ROWS} messages" in replay.stdout
        done = wait_until(lambda: sum(1 for r in live.rows if r.ts <= cutoff) >= len(expected), timeout_s=60)
        assert done, (sum(1 for r in list(live.rows) if r.ts <= cutoff), len(expected))
    finally:
        assert app.stop(10) == 0
        feed.close()
    assert feed.refused == 0

    # Scores: every row the backtest scored up to the cutoff, by the same detectors, to float rounding.
    service = by_row(live.rows)
    assert set(expected) <= set(service)
    assert set(service) <= set(by_row(offline.rows))  # and nothing the backtest did not score
    offline_table = by_row(offline.rows)
    for key, scores in service.items():
        wanted = offline_table[key]
        assert set(scores) == set(wanted), key
        for detector, got in scores.items():
            want = wanted[detector]
            assert got.model == want.model
            np.testing.assert_allclose(
                [got.score, got.threshold, got.calibrated_threshold],
                [want.score, want.threshold, want.calibrated_threshold],
                rtol=1e-5,
                err_msg=f"{key} {detector}",
            )
            assert set(got.sensors) == set(want.sensors)
            np.testing.assert_allclose(
                [got.sensors[s] for s in want.sensors], list(want.sensors.values()), rtol=1e-4, atol=1e-9
            )
    n_detectors = {d for scores in expected.values() for d in scores}
    assert n_detectors == {"reconstruction", "forecast", "sensor"}

    # Alert events: the same, in the same order (ids may differ; they do not here, but that is not the contract).
    offline_events = [e for e in backtest.events if e.ts <= cutoff]
    assert offline_events == [e for e in offline.events if e.ts <= cutoff]
    assert [event_key(e) for e in live.events] == [event_key(e) for e in offline_events]
    for got_event, want_event in zip(live.events, offline_events, strict=True):
        np.testing.assert_allclose([s for _, s in got_event.sensors], [s for _, s in want_event.sensors], atol=1e-3)
    firing = [e for e in offline_events if e.state == "firing"]
    assert firing and {e.unit for e in firing} == {"R1"}
    assert all(t0 + FAULT[0] <= e.started_at < t0 + FAULT[1] for e in firing)
    assert {e.detector for e in offline_events if e.state == "resolved"} == {e.detector for e in firing}
