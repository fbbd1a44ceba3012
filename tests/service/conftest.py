"""Service test helpers: tiny trained artifacts (session-wide), configs for a test broker, a row publisher."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.app import App
from monitor.config import PlantwatchConfig, parse_config
from tests.kit import Broker, SpawnedService, train_tiny, wait_until

SENSORS = tuple(f"s{i}" for i in range(8))
WINDOW = 16
FAULT_SENSOR = "s3"


def normal_rows(n: int, seed: int, start: int = 0) -> npt.NDArray[np.float64]:
    """[n, 8] correlated periodic signals with noise; ``start`` continues the same pattern."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + n)
    s = len(SENSORS)
    base = np.sin(2 * np.pi * t / 60.0)[:, None] * np.linspace(1, 2, s)[None, :]
    base += np.cos(2 * np.pi * t / 23.0)[:, None] * np.linspace(0.5, -0.5, s)[None, :]
    return base + 0.05 * rng.standard_normal((n, s)) + np.arange(s)[None, :] * 10.0


def with_fault(rows: npt.NDArray[np.float64], offset: float = 6.0) -> npt.NDArray[np.float64]:
    out = rows.copy()
    out[:, SENSORS.index(FAULT_SENSOR)] += offset
    return out


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny lstm_ae detector and an lstm forecaster trained on normal_rows (about 2 s on one core)."""
    root = tmp_path_factory.mktemp("artifacts")
    data = normal_rows(3000, seed=0)
    # latent_size None: the seed's (8), the size these tests' faults and thresholds were chosen with
    sizes = {"window": WINDOW, "hidden_size": 16, "latent_size": None, "epochs": 8, "train_step": 2}
    return {
        name: train_tiny(data, SENSORS, root / name, kind, name=name, target_far=0.001, **sizes)
        for name, kind in (("det", "lstm_ae"), ("fc", "lstm"))
    }


def service_config_dict(
    broker: Broker,
    artifacts: dict[str, Path],
    prefix: str,
    unit_names: Sequence[str] = ("R1", "R2"),
    **sections: Any,
) -> dict[str, Any]:
    """A config dict for ``unit_names`` on ``broker``, topics under ``prefix``; ``sections`` update top-level keys."""
    data: dict[str, Any] = {
        "units": [
            {
                "name": unit,
                "sensors": list(SENSORS),
                "period_s": 1.0,
                "max_lateness_s": 5.0,
                "detector": {"name": "det", "artifact": str(artifacts["det"])},
                "forecaster": {"name": "fc", "artifact": str(artifacts["fc"])},
                "alerts": {"fire_hits": 3, "fire_window": 5, "resolve_hits": 5, "min_duration_s": 5},
            }
            for unit in unit_names
        ],
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": f"pw-{uuid.uuid4().hex[:8]}",
            "keepalive_s": 30,
            "reconnect_min_s": 1,
            "reconnect_max_s": 2,
            "topics": {
                "readings": f"{prefix}/plant/{{unit}}/readings",
                "sensor": f"{prefix}/plant/{{unit}}/{{sensor}}",
                "prefix": f"{prefix}/pw",
            },
        },
        "metrics": {"host": "127.0.0.1", "port": 0},
        # max_lag_s: the tests count every window, so a loaded test machine must not trigger the freshness skip
        # (tested on its own in test_scheduler.py).
        "scheduler": {"device": "cpu", "max_batch": 512, "max_delay_ms": 5, "max_lag_s": 300},
        "limits": {"max_payload_bytes": 2048},
        "shutdown_timeout_s": 10,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@pytest.fixture
def service_config(
    mosquitto: Broker, artifacts: dict[str, Path], unique_prefix: str
) -> Callable[..., PlantwatchConfig]:
    def make(broker: Broker | None = None, **sections: Any) -> PlantwatchConfig:
        # In-process tests reach into the scoring side (app.engine, app.scheduler): the one-process mode. The
        # service as deployed (a scorer process) is what test_process.py and test_scorer_process.py run.
        data = service_config_dict(broker or mosquitto, artifacts, unique_prefix, **sections)
        data["scheduler"] = {"scorer": "thread", **data["scheduler"]}
        return parse_config(data)

    return make


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], SpawnedService]]:
    """``spawned(config)`` -> a not yet started ``python -m monitor run`` (tests.kit), killed after the test."""
    made: list[SpawnedService] = []

    def make(config: dict[str, Any]) -> SpawnedService:
        workdir = tmp_path / f"svc{len(made)}"
        workdir.mkdir()
        svc = SpawnedService(config, workdir)
        made.append(svc)
        return svc

    try:
        yield make
    finally:
        for svc in made:
            if svc.alive():
                svc.kill()


class Publisher:
    """Publishes rows of a unit as `readings` messages at QoS 1 and waits until the broker has them all."""

    def __init__(self, broker: Broker, prefix: str) -> None:
        self.prefix = prefix
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self._client.max_inflight_messages_set(100)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def raw(self, topic: str, payload: bytes, wait: bool = True) -> None:
        info = self._client.publish(f"{self.prefix}/{topic}", payload, qos=1)
        if wait:
            info.wait_for_publish(timeout=10)

    def rows(self, unit: str, rows: npt.NDArray[np.float64], t0: float, first_index: int = 0) -> list[float]:
        """Row i gets ts = t0 + first_index + i; returns the timestamps published."""
        infos = []
        stamps = []
        for i, row in enumerate(rows):
            ts = t0 + first_index + i
            body = {"ts": ts, "values": {s: float(v) for s, v in zip(SENSORS, row, strict=True)}}
            infos.append(self._client.publish(f"{self.prefix}/plant/{unit}/readings", json.dumps(body).encode(), qos=1))
            stamps.append(ts)
        for info in infos:
            info.wait_for_publish(timeout=30)
        return stamps

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def publisher(mosquitto: Broker, unique_prefix: str) -> Iterator[Callable[..., Publisher]]:
    made: list[Publisher] = []

    def make(broker: Broker | None = None) -> Publisher:
        pub = Publisher(broker or mosquitto, unique_prefix)
        made.append(pub)
        return pub

    try:
        yield make
    finally:
        for pub in made:
            pub.close()


def epoch_base() -> float:
    """A whole-second event time base in the recent past (so no row is `future`)."""
    return float(int(time.time()) - 100_000)


@pytest.fixture
def run_app() -> Iterator[Callable[[PlantwatchConfig], App]]:
    """``run_app(cfg)`` -> a started, ready in-process App; stopped after the test unless ``stop(app)`` did it."""
    apps: list[App] = []

    def start(cfg: PlantwatchConfig) -> App:
        app = App(cfg)
        app.start()
        apps.append(app)
        assert wait_until(lambda: app.ready()[0], timeout_s=30), app.ready()
        return app

    try:
        yield start
    finally:
        for app in apps:
            if app not in _stopped:
                app.stop(5)


_stopped: list[App] = []


def stop(app: App) -> int:
    """Stop an App of ``run_app`` (10 s deadline); its exit code."""
    _stopped.append(app)
    return app.stop(10)


def sample_value(app: App, name: str, **labels: str) -> float | None:
    """The in-process registry's sample (None: no such series)."""
    return app.exposition.get_sample_value(name, labels)


def sample(app: App, name: str, **labels: str) -> float:
    value = sample_value(app, name, **labels)
    return 0.0 if value is None else value


def scored(app: App) -> float:
    return sample(app, "plantwatch_windows_scored_total", detector="reconstruction")
