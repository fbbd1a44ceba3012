"""The harness itself: the private broker starts, delivers, stops and restarts with persistence."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.kit import Broker, can_connect


def _publish(broker: Broker, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


def test_recorder_receives_what_is_published(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/#")
    for i in range(5):
        _publish(mosquitto, f"{unique_prefix}/x", str(i).encode())
    got = recorder.wait_for(f"{unique_prefix}/x", count=5)
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3", b"4"]


def test_persistent_broker_keeps_retained_messages_across_restart(broker_factory) -> None:
    broker = broker_factory(persistence=True)
    _publish(broker, "keep/me", b"42", retain=True)
    broker.restart()
    assert can_connect(broker.host, broker.port)
    from tests.conftest import MqttRecorder

    recorder = MqttRecorder(broker, "keep/#")
    try:
        (message,) = recorder.wait_for("keep/me")
        assert message.payload == b"42" and message.retain
    finally:
        recorder.close()


def test_killed_broker_is_down_until_restarted(broker_factory) -> None:
    broker = broker_factory()
    broker.kill()
    assert not can_connect(broker.host, broker.port)
    broker.start()
    assert can_connect(broker.host, broker.port)
