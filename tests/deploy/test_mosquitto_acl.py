"""The shipped broker config (config/mosquitto/: mosquitto.conf, passwd, acl) with a real mosquitto.

MQTT 5 clients, so a refused publish is visible as PUBACK reason 0x87 (not authorized) instead of a silence.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.deploy.conftest import ShippedBroker, dev_password

NOT_AUTHORIZED = 0x87


class Client:
    """A connected MQTT 5 client of one identity that records what it receives and each publish's PUBACK."""

    def __init__(self, broker: ShippedBroker, user: str | None, password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, int] = {}
        self._cond = threading.Condition()
        self.connack: ReasonCode | None = None
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{user or 'anon'}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        if user is not None:
            self._client.username_pw_set(user, password if password is not None else dev_password(user))
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._suback: list[ReasonCode] | None = None
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    def _on_connect(self, c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Properties | None) -> None:
        self.connack = rc
        self._connected.set()

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, rc: ReasonCode, p: Properties | None) -> None:
        with self._cond:
            self.acks[mid] = rc.value
            self._cond.notify_all()

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def _on_subscribe(self, c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode], p: Properties | None) -> None:
        with self._cond:
            self._suback = rcs
            self._cond.notify_all()

    def subscribe(self, topic: str) -> list[int]:
        with self._cond:
            self._suback = None
        self._client.subscribe(topic, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: self._suback is not None, timeout=10)
            assert self._suback is not None
            return [rc.value for rc in self._suback]

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (0 accepted, 0x87 not authorized)."""
        info = self._client.publish(topic, payload, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self.acks, timeout=10), f"no PUBACK for {topic}"
            return self.acks[info.mid]

    def wait_for(self, topic: str, timeout_s: float = 10.0) -> list[bytes]:
        with self._cond:
            self._cond.wait_for(lambda: any(t == topic for t, _ in self.messages), timeout=timeout_s)
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def clients(shipped_broker: ShippedBroker) -> Any:
    made: list[Client] = []

    def make(user: str | None, password: str | None = None) -> Client:
        client = Client(shipped_broker, user, password)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_anonymous_and_wrong_passwords_are_refused(clients: Any) -> None:
    assert clients(None).connack.is_failure
    assert clients("plantwatch", "not-the-password").connack.is_failure
    assert not clients("plantwatch").connack.is_failure


def test_sensors_publish_readings_that_the_service_reads(clients: Any) -> None:
    service = clients("plantwatch")
    assert service.subscribe("plant/#") == [1]
    sensors = clients("sensors")
    assert sensors.publish("plant/R1/readings", b'{"ts": 1, "values": {"t": 1.0}}') == 0
    assert sensors.publish("plant/R1/t", b"1.5") == 0
    assert service.wait_for("plant/R1/readings") == [b'{"ts": 1, "values": {"t": 1.0}}']
    assert service.wait_for("plant/R1/t") == [b"1.5"]


def test_the_service_cannot_publish_sensor_readings(clients: Any) -> None:
    service = clients("plantwatch")
    assert service.subscribe("plant/#") == [1]
    assert service.publish("plant/R1/readings", b'{"ts": 1, "values": {"t": 99.0}}') == NOT_AUTHORIZED
    # A sensor's own reading arrives, the service's forged one never did (the broker kept order per client).
    assert clients("sensors").publish("plant/R1/readings", b"real") == 0
    assert service.wait_for("plant/R1/readings") == [b"real"]


def test_sensors_cannot_publish_alerts_or_status_nor_read_anything(clients: Any) -> None:
    reader = clients("reader")
    assert reader.subscribe("plantwatch/#") == [1]
    sensors = clients("sensors")
    assert sensors.publish("plantwatch/alerts/R1", b'{"state": "firing"}') == NOT_AUTHORIZED
    assert sensors.publish("plantwatch/status", b"offline") == NOT_AUTHORIZED
    # Subscribing is not refused at SUBACK by mosquitto's ACL file, but nothing is delivered to them.
    sensors.subscribe("#")
    service = clients("plantwatch")
    assert service.publish("plantwatch/alerts/R1", b'{"state": "firing"}') == 0
    assert reader.wait_for("plantwatch/alerts/R1") == [b'{"state": "firing"}']
    assert sensors.messages == []


def test_readers_are_read_only(clients: Any) -> None:
    reader = clients("reader")
    assert reader.publish("plantwatch/alerts/R1", b"x") == NOT_AUTHORIZED
    assert reader.publish("plant/R1/readings", b"x") == NOT_AUTHORIZED
