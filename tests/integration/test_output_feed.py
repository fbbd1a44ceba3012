"""OutputFeed (monitor/output_feed.py): the service's payloads off a real broker, back into objects for sinks."""

from __future__ import annotations

import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from monitor.alerts.event_payload import event_to_json
from monitor.messages import AlertEvent
from monitor.output_feed import OutputFeed
from monitor.sinks import RecordingSink
from monitor.wire.payloads import DetectorScore, ScoredRow, encode_row
from monitor.wire.topics import alerts_topic, scores_topic
from tests.conftest import Broker, wait_until

ROW = ScoredRow("R1", 100.0, {"forecast": DetectorScore(0.5, 2.0, 2.0, "fc", {"a": 0.5})})
EVENT = AlertEvent(
    "R1:forecast:99000", "R1", "firing", "forecast", 100.0, 99.0, 5.0, 2.0, "warning", (("a", 1.0),), model="fc"
)


def test_the_feed_hands_decoded_rows_and_events_to_its_sinks_and_counts_what_it_cannot_read(
    mosquitto: Broker, unique_prefix: str
) -> None:
    sink = RecordingSink(keep_rows=True)
    feed = OutputFeed(mosquitto.host, mosquitto.port, unique_prefix, [sink])
    feed.start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        for topic, payload in (
            (scores_topic(unique_prefix, "R1"), b"not json"),
            (alerts_topic(unique_prefix, "R1"), b'{"schema": 1}'),
            (scores_topic(unique_prefix, "R1"), encode_row(ScoredRow("R1", 99.0, {"psychic": ROW.scores["forecast"]}))),
            (scores_topic(unique_prefix, "R1"), encode_row(ROW)),
            (alerts_topic(unique_prefix, "R1"), event_to_json(EVENT)),
            (f"{unique_prefix}/alerts/R1/state", b"{}"),  # the retained state: not the feed's
        ):
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        assert wait_until(lambda: bool(sink.rows) and bool(sink.events), timeout_s=10)
    finally:
        client.disconnect()
        client.loop_stop()
        feed.close()
    assert sink.rows == [ROW]
    assert sink.events == [EVENT]
    assert feed.refused == 3  # not JSON, not an alert event, a detector the service does not have
