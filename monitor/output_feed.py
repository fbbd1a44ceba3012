"""The service's outputs read back off the broker into Sinks: for a sink in another process than the outputs.

API::

    feed = OutputFeed(host, port, prefix, [view, files], client_id="demo-view", protocol=MQTTProtocolVersion.MQTTv311)
    feed.start(timeout_s=10.0)        # connected and subscribed, or OutputFeedError
    feed.refused                      # payloads on the output topics that were not valid (counted, logged, skipped)
    feed.close()

With ``scheduler.scorer: process`` (the service's default) the outputs are computed in the scorer process, so a
sink in the front's process or in another program (the demo's live view and its files, the parity test) cannot be
handed the objects directly. This client subscribes to ``<prefix>/alerts/+`` (QoS 1) and ``<prefix>/scores/+``
(QoS 0), decodes each payload with the modules the MQTT sink encodes with (monitor.alerts.event_payload,
monitor.wire.payloads.decode_scores, whose detector names must be the service's: monitor.messages.DETECTORS) and
calls the sinks' ``alert(event)`` and ``scored([row])`` on paho's network thread, in the order the broker
delivers: per unit that is the order they were published. The retained alert state and the forecasts are not
read.

A payload that does not decode is counted in ``refused``, logged (the first one, then one in every LOG_EVERY) and
skipped; nothing raises into paho's thread, a sink's exception included (logged, counted the same way).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from monitor.alerts.event_payload import event_from_json
from monitor.messages import DETECTORS
from monitor.sinks import Sink
from monitor.wire.payloads import ScoredRow, decode_scores
from monitor.wire.topics import ANY, alerts_topic, scores_topic

log = logging.getLogger(__name__)

LOG_EVERY = 100


def _known_detectors(row: ScoredRow) -> ScoredRow:
    unknown = sorted(set(row.scores) - set(DETECTORS))
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)} (the service's: {', '.join(DETECTORS)})")
    return row


class OutputFeedError(RuntimeError):
    """The feed could not connect or subscribe; the message says where."""


class OutputFeed:
    """Subscribes to a service's alert and score topics and hands the decoded objects to sinks."""

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        sinks: Sequence[Sink],
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    ) -> None:
        self.host = host
        self.port = port
        self._alerts = alerts_topic(prefix, ANY)
        self._scores = scores_topic(prefix, ANY)
        self._sinks = tuple(sinks)
        self._row_sinks = tuple(s for s in self._sinks if s.takes_scores)
        self.refused = 0
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"plantwatch-feed-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda client, userdata, mid, codes, props: self._subscribed.set()
        self._client.on_message = self._on_message
        self._started = False

    def start(self, timeout_s: float = 10.0) -> None:
        try:
            self._client.connect(self.host, self.port, keepalive=15)
        except (OSError, ValueError) as exc:
            raise OutputFeedError(f"cannot connect to the broker at {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        self._started = True
        if not self._subscribed.wait(timeout_s):
            self.close()
            raise OutputFeedError(f"could not subscribe to the outputs on {self.host}:{self.port}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(self._alerts, 1), (self._scores, 0)])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if mqtt.topic_matches_sub(self._alerts, msg.topic):
                event = event_from_json(bytes(msg.payload))
                for sink in self._sinks:
                    sink.alert(event)
            elif mqtt.topic_matches_sub(self._scores, msg.topic):
                rows = [_known_detectors(decode_scores(bytes(msg.payload)))]
                for sink in self._row_sinks:
                    sink.scored(rows)
        except Exception as exc:  # a foreign payload on our topics, or a failing sink: never raise into paho
            self.refused += 1
            if self.refused % LOG_EVERY == 1:
                log.warning("output feed skipped a message on %s (%d so far): %s", msg.topic[:128], self.refused, exc)

    def close(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False
