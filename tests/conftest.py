"""Shared fixtures: a private mosquitto per test (or per session), an MQTT recorder, thread-safety nets.

Tests talk to a real broker over TCP, never a mock. The broker (tests/kit/broker.py, shared with the
benchmarks) binds a free loopback port so it can be stopped, killed, paused and restarted without touching
the machine's own broker on 1883. Under CI (CI=true) a missing mosquitto fails the
run instead of skipping, so a green CI always means the broker tests ran.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

# can_connect, free_port, wait_until: tests import them from tests.kit; they stay importable from here for test
# files written before the kit.
from tests.kit import Broker, can_connect, find_program, free_port, wait_until  # noqa: F401


def require_program(name: str, package: str) -> str:
    """The path of ``name``; skip the test when it is missing, or fail it under CI (CI=true), where .ci/run
    installs it: a green CI then always means the tests that need it ran."""
    exe = find_program(name)
    if exe is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{name} is not installed; .ci/run should have installed it")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return exe


def start_broker(workdir: Path, persistence: bool = False, extra_conf: str = "") -> Broker:
    """A started private mosquitto (tests.kit.Broker); a missing mosquitto skips the test (fails it under CI)."""
    require_program("mosquitto", "mosquitto")
    return Broker(workdir, persistence=persistence, extra_conf=extra_conf).start()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the whole session, for tests that only publish and subscribe."""
    broker = start_broker(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Private brokers for fault tests: ``broker_factory(persistence=True, extra_conf=...)``."""
    started: list[Broker] = []

    def make(persistence: bool = False, extra_conf: str = "") -> Broker:
        workdir = tmp_path / f"broker{len(started)}"
        workdir.mkdir()
        broker = start_broker(workdir, persistence=persistence, extra_conf=extra_conf)
        started.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in started:
            broker.stop()  # a paused one too


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttRecorder:
    """Subscribes to a topic filter and records every message; waits on conditions with deadlines."""

    def __init__(self, broker: Broker, topic_filter: str = "#", qos: int = 1) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=qos)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(timeout=10):
            raise RuntimeError("recorder could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, msg.payload, bool(msg.retain), msg.qos))
            self._cond.notify_all()

    def matching(self, topic: str | None = None, predicate: Callable[[Message], bool] | None = None) -> list[Message]:
        with self._cond:
            return [
                m
                for m in self.messages
                if (topic is None or mqtt.topic_matches_sub(topic, m.topic)) and (predicate is None or predicate(m))
            ]

    def wait_for(
        self,
        topic: str | None = None,
        predicate: Callable[[Message], bool] | None = None,
        timeout_s: float = 10.0,
        count: int = 1,
    ) -> list[Message]:
        """Wait until at least ``count`` messages match; fail the test at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [
                    m
                    for m in self.messages
                    if (topic is None or mqtt.topic_matches_sub(topic, m.topic)) and (predicate is None or predicate(m))
                ]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"waited {timeout_s}s for {count} message(s) on {topic!r}; got {len(found)}")
                self._cond.wait(timeout=remaining)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def mqtt_recorder(mosquitto: Broker) -> Iterator[Callable[..., MqttRecorder]]:
    """``mqtt_recorder(topic_filter, broker=None)`` -> a started recorder, closed after the test."""
    recorders: list[MqttRecorder] = []

    def make(topic_filter: str = "#", broker: Broker | None = None, qos: int = 1) -> MqttRecorder:
        recorder = MqttRecorder(broker or mosquitto, topic_filter, qos)
        recorders.append(recorder)
        return recorder

    try:
        yield make
    finally:
        for recorder in recorders:
            recorder.close()


@pytest.fixture(autouse=True)
def fail_on_thread_exception() -> Iterator[None]:
    """An exception in any thread fails the test (a dead worker must never pass silently)."""
    errors: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    try:
        yield
    finally:
        threading.excepthook = previous
    if errors:
        first = errors[0]
        pytest.fail(
            f"thread {first.thread.name if first.thread else '?'} raised {first.exc_type.__name__}: {first.exc_value}"
        )


@pytest.fixture
def unique_prefix() -> str:
    """A topic prefix no other test uses, so tests sharing one broker do not see each other."""
    return f"t{uuid.uuid4().hex[:10]}"
