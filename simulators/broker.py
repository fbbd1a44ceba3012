"""Broker connection options shared by `plantwatch simulate` and `plantwatch replay`: address, credentials, TLS.

The MQTT version has the service config's name and values everywhere: ``--mqtt-protocol 5`` or ``--mqtt-protocol
3.1.1`` here, ``mqtt.protocol: "5"`` or ``"3.1.1"`` in plantwatch.yaml, ``BrokerOptions(protocol="3.1.1")`` in code.
``--mqtt-version 4|5`` (paho's protocol numbers, the old spelling) is still accepted, with a deprecation warning.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

USERNAME_ENV = "PLANTWATCH_SIM_USERNAME"
PASSWORD_ENV = "PLANTWATCH_SIM_PASSWORD"
MqttProtocol = Literal["5", "3.1.1"]  # monitor.config's mqtt.protocol values
MQTT_PROTOCOLS: tuple[MqttProtocol, ...] = ("5", "3.1.1")
_LEGACY_VERSIONS: dict[str, MqttProtocol] = {"5": "5", "4": "3.1.1"}  # --mqtt-version's paho numbers


@dataclass(frozen=True)
class BrokerOptions:
    """Where and how to connect. ``protocol``: ``"5"`` (MQTT 5) or ``"3.1.1"``, as the service's ``mqtt.protocol``."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    protocol: MqttProtocol = "5"
    keepalive_s: int = 30
    client_id: str | None = None

    def client(self, role: str = "plantwatch-sim") -> mqtt.Client:
        """A configured, not yet connected paho client (callback API version 2)."""
        client_id = self.client_id or f"{role}-{uuid.uuid4().hex[:8]}"
        if self.protocol not in MQTT_PROTOCOLS:
            raise ValueError(f"MQTT protocol must be one of {', '.join(MQTT_PROTOCOLS)}, got {self.protocol!r}")
        protocol = mqtt.MQTTv5 if self.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls_ca is not None or self.tls_cert is not None:
            client.tls_set(ca_certs=self.tls_ca, certfile=self.tls_cert, keyfile=self.tls_key)
            if self.tls_insecure:
                client.tls_insecure_set(True)
        return client


def parse_host_port(text: str, default_port: int = 1883) -> tuple[str, int]:
    """``"host:port"`` or ``"host"`` -> (host, port); ValueError naming the problem."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(default_port)
    if not host:
        raise ValueError(f"--broker {text!r}: expected HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--broker {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"--broker {text!r}: port {port} is out of range")
    return host.strip("[]"), port


class _LegacyMqttVersion(argparse.Action):
    """``--mqtt-version 4|5``: stored as ``--mqtt-protocol``'s value, with a warning on stderr."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        protocol = _LEGACY_VERSIONS[str(values)]
        print(
            f"warning: --mqtt-version is deprecated; use --mqtt-protocol {protocol} (the config's mqtt.protocol)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, protocol)


def add_broker_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_argument_group("broker")
    group.add_argument("--broker", required=required, metavar="HOST:PORT", help="MQTT broker to publish to")
    group.add_argument("--username", help=f"MQTT user name (default: ${USERNAME_ENV})")
    group.add_argument("--password", help=f"MQTT password (default: ${PASSWORD_ENV}; prefer the variable)")
    group.add_argument("--tls-ca", metavar="FILE", help="CA certificate: connect with TLS")
    group.add_argument("--tls-cert", metavar="FILE", help="client certificate for TLS client authentication")
    group.add_argument("--tls-key", metavar="FILE", help="client key for --tls-cert")
    group.add_argument("--tls-insecure", action="store_true", help="do not check the broker's host name")
    group.add_argument(
        "--mqtt-protocol",
        choices=MQTT_PROTOCOLS,
        default="5",
        help="MQTT protocol version, as the service's mqtt.protocol: 5 (default) or 3.1.1",
    )
    group.add_argument(
        "--mqtt-version",
        dest="mqtt_protocol",
        action=_LegacyMqttVersion,
        choices=tuple(_LEGACY_VERSIONS),
        help="deprecated: --mqtt-protocol (4 here is 3.1.1)",
    )
    group.add_argument("--client-id", help="MQTT client id (default: random)")
    group.add_argument("--qos", type=int, choices=(0, 1, 2), default=1, help="publish QoS (default 1)")
    group.add_argument(
        "--payload",
        choices=("readings", "per-sensor"),
        default="readings",
        help="readings: one JSON per unit and time on plant/{unit}/readings; per-sensor: plant/{unit}/{sensor}",
    )


def broker_options(args: argparse.Namespace) -> BrokerOptions:
    """Options from parsed arguments (credentials fall back to the environment)."""
    host, port = parse_host_port(args.broker)
    for path in (args.tls_ca, args.tls_cert, args.tls_key):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"TLS file {path} does not exist")
    return BrokerOptions(
        host=host,
        port=port,
        username=args.username or os.environ.get(USERNAME_ENV) or None,
        password=args.password or os.environ.get(PASSWORD_ENV) or None,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_insecure=args.tls_insecure,
        protocol=args.mqtt_protocol,
        client_id=args.client_id,
    )
