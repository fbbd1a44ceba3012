"""The issue's first "done when": the reactor simulator with an injected fault -> service -> an independent subscriber.

Tiny lstm_ae trained on simulated normal operation; the simulator's LivePublisher replays a scenario with a
bias fault on one reactor as fast as the broker takes it (event time is what the service scores on).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.app import App
from monitor.config import parse_config
from simulators import LivePublisher, parse_scenario, simulate
from simulators.reactor import REACTOR_SENSORS
from tests.kit import Broker, train_tiny, wait_until

WINDOW = 16
FAULT_START_S, FAULT_S, RUN_S = 900, 300, 1800
UNITS = ["reactor-1", "reactor-2"]
SEED = 5
START = 1_767_225_600.0
TRAIN_S = 4 * 3600


@pytest.fixture(scope="session")
def reactor_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np

    # The same plant (units, seed) in normal operation during the hours before the test run.
    scenario = parse_scenario({"units": {"names": UNITS}, "spread": 0.0, "disturbances": 0.0, "seed": SEED})
    normal = simulate(scenario, TRAIN_S, seed=SEED, start_epoch=START - TRAIN_S)
    data = np.concatenate(list(normal.data))  # [U * T, S]: both units' normal rows
    out = tmp_path_factory.mktemp("reactor") / "det"
    sizes = {"window": WINDOW, "hidden_size": 16, "latent_size": None, "epochs": 8, "train_step": 2}  # seed latent
    return train_tiny(data, normal.sensors, out, "lstm_ae", name="det", calibration="pot", target_far=1e-5, **sizes)


@pytest.mark.slow
def test_simulated_bias_fault_fires_and_resolves_on_the_right_unit(
    mosquitto: Broker, reactor_detector: Path, unique_prefix: str, mqtt_recorder: Callable[..., Any]
) -> None:
    units = UNITS
    scenario = parse_scenario(
        {
            "units": {"names": units},
            "spread": 0.0,
            "disturbances": 0.0,  # measurement noise only: a tiny model's threshold then holds on unseen hours
            "seed": SEED,
            "faults": [
                {
                    "kind": "bias",
                    "unit": "reactor-1",
                    "start": FAULT_START_S,
                    "duration": FAULT_S,
                    "magnitude": 4.0,
                    "sensors": ["reactor_temp_K"],
                }
            ],
        }
    )
    result = simulate(scenario, RUN_S, seed=SEED, start_epoch=START)
    cfg = parse_config(
        {
            "units": [
                {
                    "name": unit,
                    "sensors": list(REACTOR_SENSORS),
                    "detector": {"name": "det", "artifact": str(reactor_detector)},
                    "alerts": {"fire_hits": 5, "fire_window": 5, "resolve_hits": 10, "min_duration_s": 30},
                }
                for unit in units
            ],
            "mqtt": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "client_id": f"{unique_prefix}-svc",
                "topics": {"readings": f"{unique_prefix}/plant/{{unit}}/readings", "sensor": None,
                           "prefix": f"{unique_prefix}/pw"},
            },
            "metrics": {"port": 0},
            "scheduler": {"device": "cpu", "max_lag_s": 300},
            "outputs": {"publish_scores": False, "publish_forecasts": False},
        }
    )  # fmt: skip
    recorder = mqtt_recorder(f"{unique_prefix}/pw/alerts/+")
    app = App(cfg)
    app.start()
    try:
        assert wait_until(lambda: app.ready()[0], timeout_s=15)
        publisher = LivePublisher(
            # 100x real time: faster than the broker's 1000-message session queue could absorb if the service lagged
            result, mosquitto.host, mosquitto.port, speed=100.0, qos=1,
            readings_topic=f"{unique_prefix}/plant/{{unit}}/readings",
        )  # fmt: skip
        publisher.start()
        assert publisher.wait(180) and publisher.error is None
        scored = "plantwatch_windows_scored_total"
        expected = len(units) * (RUN_S - WINDOW + 1)
        recon = {"detector": "reconstruction"}
        done = wait_until(lambda: app.exposition.get_sample_value(scored, recon) == expected, 60)
        assert done, (app.exposition.get_sample_value(scored, recon), expected)
        start = result.timestamps[0] + FAULT_START_S
        events = [m.json() for m in recorder.wait_for(f"{unique_prefix}/pw/alerts/reactor-1", count=2, timeout_s=10)]
        recon = [e for e in events if e["detector"] == "reconstruction"]
        firing = [e for e in recon if e["state"] == "firing"]
        resolved = [e for e in recon if e["state"] == "resolved"]
        # One episode; a second firing event of it is its escalation from warning to critical.
        assert len({e["alert_id"] for e in firing}) == 1 and len(resolved) == 1, events
        assert firing[0]["sensors"][0]["sensor"] == "reactor_temp_K"
        assert start <= firing[0]["ts"] <= start + 30
        assert start + FAULT_S <= resolved[0]["ts"] <= start + FAULT_S + 120
        assert resolved[0]["alert_id"] == firing[0]["alert_id"]
        assert recorder.matching(f"{unique_prefix}/pw/alerts/reactor-2") == []
    finally:
        app.stop(10)
