"""The kit itself: the private broker starts, delivers, stops and restarts with persistence; the /metrics reader
reads what prometheus_client writes; the histogram quantiles over two scrapes."""

from __future__ import annotations

import math
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.conftest import MqttRecorder
from tests.kit import Broker, Samples, can_connect, increase, quantile, share_within


def _publish(broker: Broker, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


def test_recorder_receives_what_is_published(
    mosquitto: Broker, mqtt_recorder: Callable[..., MqttRecorder], unique_prefix: str
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/#")
    for i in range(5):
        _publish(mosquitto, f"{unique_prefix}/x", str(i).encode())
    got = recorder.wait_for(f"{unique_prefix}/x", count=5)
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3", b"4"]


def test_persistent_broker_keeps_retained_messages_across_restart(broker_factory: Callable[..., Broker]) -> None:
    broker = broker_factory(persistence=True)
    _publish(broker, "keep/me", b"42", retain=True)
    broker.restart()
    assert can_connect(broker.host, broker.port)
    recorder = MqttRecorder(broker, "keep/#")
    try:
        (message,) = recorder.wait_for("keep/me")
        assert message.payload == b"42" and message.retain
    finally:
        recorder.close()


def test_killed_broker_is_down_until_restarted(broker_factory: Callable[..., Broker]) -> None:
    broker = broker_factory()
    broker.kill()
    assert not can_connect(broker.host, broker.port)
    broker.start()
    assert can_connect(broker.host, broker.port)


def test_a_paused_broker_stops_cleanly_on_sigterm(broker_factory: Callable[..., Broker]) -> None:
    broker = broker_factory()
    broker.pause()
    broker.stop()  # continued first: a stopped process would ignore SIGTERM until the SIGKILL fallback
    assert "terminating" in broker.log()  # mosquitto's own clean-exit line: it was not killed
    assert not can_connect(broker.host, broker.port)


def _exposition() -> str:
    registry = CollectorRegistry()
    received = Counter("pw_received", "readings", ["unit"], registry=registry)
    received.labels(unit="R1").inc(3)
    received.labels(unit='odd "unit", with spaces').inc(2)
    Gauge("pw_connected", "link", registry=registry).set(1)
    latency = Histogram("pw_latency_seconds", "latency", ["stage"], buckets=(0.1, 0.25, 1.0), registry=registry)
    for value in (0.05, 0.2, 0.2, 0.7):
        latency.labels(stage="score").observe(value)
    latency.labels(stage="alert").observe(2.0)
    return generate_latest(registry).decode()


def test_samples_read_what_prometheus_client_writes() -> None:
    samples = Samples.parse(_exposition())
    assert samples.value("pw_received_total", unit="R1") == 3
    assert samples.value("pw_received_total", unit='odd "unit", with spaces') == 2  # escapes undone
    assert samples.value("pw_received_total") == samples.total("pw_received_total") == 5  # summed over labels
    assert samples.by_label("pw_received_total", "unit")["R1"] == 3
    assert samples.value("pw_connected") == 1
    assert math.isnan(samples.value("pw_received_total", unit="R9")) and samples.total("pw_absent") == 0
    assert samples.histogram("pw_latency_seconds", stage="score") == [(0.1, 1), (0.25, 3), (1.0, 4), (math.inf, 4)]
    assert samples.histogram("pw_latency_seconds")[-1] == (math.inf, 5)  # both stages
    assert samples.value("pw_latency_seconds_count", stage="alert") == 1


BUCKETS = [(0.1, 10.0), (0.25, 60.0), (0.5, 95.0), (1.0, 100.0), (math.inf, 100.0)]


def test_quantile_and_share_over_the_increase_between_scrapes() -> None:
    before = [(b, c / 2) for b, c in BUCKETS]
    after = [(b, c * 1.5) for b, c in BUCKETS]
    deltas = increase(before, after)
    assert deltas == BUCKETS
    assert share_within(deltas, 0.25) == pytest.approx(0.6)
    assert quantile(deltas, 0.6) == pytest.approx(0.25)
    assert quantile(deltas, 0.99) == pytest.approx(0.5 + 0.5 * 4 / 5)  # linear inside (0.5, 1.0]
    assert quantile(deltas, 0.05) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="bucket bound"):
        share_within(deltas, 0.3)


def test_an_empty_histogram_has_no_quantile() -> None:
    empty = [(b, 0.0) for b, _ in BUCKETS]
    assert math.isnan(quantile(empty, 0.99))
    assert math.isnan(share_within(empty, 0.25))
