"""The broker link against a real mosquitto: status and will, persistent sessions, reconnects, a raising handler."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry

from monitor.config import MqttConfig
from monitor.metrics import Metrics
from monitor.mqtt import MqttLink, read_retained
from tests.kit import Broker, wait_until


class Inbox:
    def __init__(self, fail_on: bytes | None = None) -> None:
        self.items: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.fail_on = fail_on

    def __call__(self, topic: str, payload: bytes, received_at: float) -> bool:
        if payload == self.fail_on:
            raise RuntimeError("handler bug")
        with self.lock:
            self.items.append((topic, payload))
        return True

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [p for _, p in self.items]


def _cfg(broker: Broker, prefix: str, protocol: str = "5") -> MqttConfig:
    return MqttConfig(
        host=broker.host,
        port=broker.port,
        protocol=protocol,  # type: ignore[arg-type]
        client_id=f"svc-{uuid.uuid4().hex[:8]}",
        topics={"readings": f"{prefix}/{{unit}}/readings", "sensor": None, "prefix": prefix},  # type: ignore[arg-type]
        keepalive_s=5,
        reconnect_min_s=1,
        reconnect_max_s=2,
    )


def _publish(broker: Broker, topic: str, payloads: list[bytes], retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, p, qos=1, retain=retain) for p in payloads]
    for info in infos:
        info.wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


def _link(cfg: MqttConfig, inbox: Inbox, metrics: Metrics | None = None) -> MqttLink:
    link = MqttLink(cfg, [f"{cfg.topics.prefix}/+/readings"], inbox, metrics)
    link.start()
    assert link.subscribed.wait(10)  # a message published before SUBACK is not routed to a new session
    return link


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_status_online_then_offline_and_delivery(
    mosquitto: Broker, mqtt_recorder: Callable[..., object], unique_prefix: str, protocol: str
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/status")
    cfg = _cfg(mosquitto, unique_prefix, protocol)
    inbox = Inbox()
    registry = CollectorRegistry()
    metrics = Metrics(registry, units={}, models={})
    link = _link(cfg, inbox, metrics)
    recorder.wait_for(f"{unique_prefix}/status", lambda m: m.payload == b"online")
    assert registry.get_sample_value("plantwatch_mqtt_connected") == 1.0
    _publish(mosquitto, f"{unique_prefix}/R1/readings", [b"1", b"2", b"3"])
    assert wait_until(lambda: inbox.payloads() == [b"1", b"2", b"3"], timeout_s=10), inbox.payloads()
    assert link.stop(timeout_s=5)
    statuses = recorder.wait_for(f"{unique_prefix}/status", lambda m: m.payload == b"offline")
    assert statuses[-1].payload == b"offline"
    assert registry.get_sample_value("plantwatch_mqtt_connected") == 0.0
    _publish(mosquitto, f"{unique_prefix}/alerts/R1/state", [b"s1"], retain=True)
    _publish(mosquitto, f"{unique_prefix}/alerts/R2/state", [b"s2"], retain=True)
    retained = read_retained(cfg, f"{unique_prefix}/alerts/+/state", timeout_s=5)
    assert retained == {f"{unique_prefix}/alerts/R1/state": b"s1", f"{unique_prefix}/alerts/R2/state": b"s2"}
    assert read_retained(cfg, f"{unique_prefix}/other/+/state", timeout_s=5) == {}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_retained_read_back_leaves_nothing_on_the_alert_topics(
    mosquitto: Broker, mqtt_recorder: Callable[..., Any], unique_prefix: str, protocol: str
) -> None:
    """All retained states come back (more than the broker's 20 in flight), and the end marker is not on the
    alert tree: a subscriber of every topic under the prefix sees it, under _sync/, and nothing new on alerts/."""
    states = {f"{unique_prefix}/alerts/U{i}/state": f"s{i}".encode() for i in range(60)}
    for topic, payload in states.items():
        _publish(mosquitto, topic, [payload], retain=True)
    recorder = mqtt_recorder(f"{unique_prefix}/#")
    recorder.wait_for(f"{unique_prefix}/alerts/+/state", count=len(states))  # the retained ones, at subscription
    cfg = _cfg(mosquitto, unique_prefix, protocol)
    assert read_retained(cfg, f"{unique_prefix}/alerts/+/state", timeout_s=10) == states
    (marker,) = recorder.wait_for(predicate=lambda m: not m.retain)  # the read-back's own message, wherever it went
    assert marker.topic.startswith(f"{unique_prefix}/_sync/") and marker.payload == b""
    assert recorder.matching(f"{unique_prefix}/alerts/#", lambda m: not m.retain) == []
    assert {m.topic for m in recorder.matching(f"{unique_prefix}/alerts/#")} == set(states)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_persistent_session_gets_readings_published_while_away(
    mosquitto: Broker, unique_prefix: str, protocol: str
) -> None:
    cfg = _cfg(mosquitto, unique_prefix, protocol)
    first = Inbox()
    link = _link(cfg, first)
    link.stop(timeout_s=5)
    _publish(mosquitto, f"{unique_prefix}/R1/readings", [b"a", b"b"])
    second = Inbox()
    link2 = _link(cfg, second)
    try:
        assert wait_until(lambda: second.payloads() == [b"a", b"b"], timeout_s=10), second.payloads()
    finally:
        link2.stop(timeout_s=5)


def test_closed_intake_leaves_messages_for_the_next_session(
    broker_factory: Callable[..., Broker], unique_prefix: str
) -> None:
    # A private broker: the test reads its debug log, which on the session-wide broker grows with every test.
    mosquitto = broker_factory()
    cfg = _cfg(mosquitto, unique_prefix)
    first = Inbox()
    link = _link(cfg, first)
    link.close_intake()
    _publish(mosquitto, f"{unique_prefix}/R1/readings", [b"x"])
    # The broker delivered it (unacknowledged): wait until the broker log shows the send, then stop.
    assert wait_until(lambda: f"Sending PUBLISH to {cfg.client_id}" in mosquitto.log(), timeout_s=10)
    link.stop(timeout_s=5)
    assert first.payloads() == []
    second = Inbox()
    link2 = _link(cfg, second)
    try:
        assert wait_until(lambda: second.payloads() == [b"x"], timeout_s=10), second.payloads()
    finally:
        link2.stop(timeout_s=5)


def test_raising_handler_does_not_kill_the_loop(mosquitto: Broker, unique_prefix: str) -> None:
    cfg = _cfg(mosquitto, unique_prefix)
    inbox = Inbox(fail_on=b"boom")
    registry = CollectorRegistry()
    link = _link(cfg, inbox, Metrics(registry, units={}, models={}))
    try:
        _publish(mosquitto, f"{unique_prefix}/R1/readings", [b"boom", b"after"])
        assert wait_until(lambda: inbox.payloads() == [b"after"], timeout_s=10)
        assert registry.get_sample_value("plantwatch_stage_errors_total", {"stage": "ingest"}) == 1.0
    finally:
        link.stop(timeout_s=5)


def test_broker_restart_reconnects_and_keeps_queued_readings(broker_factory: Callable[..., Broker]) -> None:
    broker = broker_factory(persistence=True)
    cfg = _cfg(broker, "pr")
    inbox = Inbox()
    registry = CollectorRegistry()
    link = _link(cfg, inbox, Metrics(registry, units={}, models={}))
    try:
        _publish(broker, "pr/R1/readings", [b"before"])
        assert wait_until(lambda: inbox.payloads() == [b"before"], timeout_s=10)
        broker.stop()
        assert wait_until(lambda: not link.connected.is_set(), timeout_s=10)
        broker.start()
        assert link.subscribed.wait(15)
        _publish(broker, "pr/R1/readings", [b"after"])
        # At least once: "before" comes again if its acknowledgement had not reached the broker before the stop.
        assert wait_until(lambda: list(dict.fromkeys(inbox.payloads())) == [b"before", b"after"], 10), inbox.payloads()
        connects = registry.get_sample_value("plantwatch_mqtt_connects_total")
        disconnects = registry.get_sample_value("plantwatch_mqtt_disconnects_total")
        assert (connects, disconnects) == (2.0, 1.0), broker.log()[-3000:]
    finally:
        link.stop(timeout_s=5)
