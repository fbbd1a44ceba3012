"""Shared fixtures: a private mosquitto per test (or per session), an MQTT recorder, thread-safety nets.

Tests talk to a real broker over TCP, never a mock. The broker fixture binds a free
loopback port so it can be stopped, killed, paused and restarted without touching
the machine's own broker on 1883. Under CI (CI=true) a missing mosquitto fails the
run instead of skipping, so a green CI always means the broker tests ran.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll ``condition`` until it holds or the deadline passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("mosquitto is not installed; .ci/run should have installed it")
        pytest.skip("mosquitto not installed")
    return exe


class Broker:
    """A private mosquitto on a free loopback port, with the controls fault tests need."""

    def __init__(self, workdir: Path, persistence: bool = False, extra_conf: str = "") -> None:
        self.exe = _mosquitto_exe()
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = workdir
        self.persistence = persistence
        self.conf_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        if os.geteuid() == 0:
            # As root, mosquitto drops to user `mosquitto`, which cannot write our temp dir.
            lines.append("user root")
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 1"]
        # mosquitto's default queue (1,000 messages per client) silently drops readings when a loaded test machine
        # slows the service down; tests measure the service, so give the queue room (extra_conf may lower it again).
        lines += ["max_queued_messages 100000"]
        lines += [f"log_dest file {self.log_path}", "log_type all", extra_conf]
        self.conf_path.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        # stdout/stderr to DEVNULL: an undrained PIPE can block the broker.
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(lambda: can_connect(self.host, self.port), timeout_s=10):
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.log()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker (SIGTERM saves persistence; SIGKILL loses what was not saved)."""
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: a half-open partition, the socket stays up but nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the whole session, for tests that only publish and subscribe."""
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
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
        broker = Broker(workdir, persistence=persistence, extra_conf=extra_conf)
        broker.start()
        started.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in started:
            if broker.proc is not None:
                broker.resume()  # a paused broker ignores SIGTERM until continued
                broker.stop()


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
