"""`plantwatch demo --duration`: embedded broker, training, service, simulator with the scripted fault, report.

Tiny settings keep it short: a few minutes of training data, 2 epochs, 20x real time; the scripted fault
(a 6 K bias on reactor-01's temperature sensor) is large enough for any trained model.
"""

from __future__ import annotations

import argparse
import json
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.commands import demo as demo_command
from monitor.demo import EmbeddedBroker, port_or_free
from tests.deploy.test_report import png_size


@pytest.mark.slow
def test_demo_with_duration_fires_for_the_scripted_fault_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    demo_command.add_arguments(parser)
    # Scored windows start after 16 rows (0.8 s at 20x); the fault starts 1.5 s in and lasts 3 s.
    argv = ["--workdir", str(tmp_path), "--duration", "7", "--speed", "20", "--fault-at", "30"]
    argv += ["--fault-duration", "60", "--train-hours", "0.25", "--epochs", "2", "--window", "16"]
    argv += ["--hidden-size", "16", "--broker-port", "0", "--metrics-port", "0", "--device", "cpu", "--plain"]
    rc = demo_command.main(parser.parse_args(argv))
    out = capsys.readouterr().out
    print(out)
    assert rc == 0, out
    assert "embedded MQTT broker (amqtt, MQTT 3.1.1) on 127.0.0.1:" in out
    assert "metrics http://127.0.0.1:" in out

    events = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    firing = [e for e in events if e["state"] == "firing" and e["unit"] == "reactor-01"]
    assert firing, f"no firing alert for reactor-01 in {events}"
    assert firing[0]["sensors"][0]["sensor"] == "reactor_temp_K"
    assert "ALERT" in out and "reactor-01 reconstruction FIRING" in out
    # The ground truth the simulator injected, and the service's scores, were recorded for the report.
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    assert labels[0] == "unit,kind,start,end,settled,sensors" and labels[1].startswith("reactor-01,bias,")
    assert (tmp_path / "scores.csv").read_text().count("\n") > 100
    width, height = png_size(tmp_path / "report.png")
    assert width == 1500 and height > 1000
    assert f"report: {tmp_path / 'report.png'}" in out


def test_embedded_broker_delivers_qos1_and_retained_messages_over_mqtt_311() -> None:
    broker = EmbeddedBroker("127.0.0.1", port_or_free("127.0.0.1", 0))
    broker.start()
    got: list[tuple[str, bytes, bool]] = []
    received = threading.Event()
    clients = []
    try:
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"p-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv311)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        clients.append(pub)
        pub.publish("pw/status", b"online", qos=1, retain=True).wait_for_publish(5)

        def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
            got.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            if len(got) >= 2:
                received.set()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"s-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv311)
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("pw/#", qos=1)
        subscribed = threading.Event()
        sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        sub.on_message = on_message
        sub.connect(broker.host, broker.port)
        sub.loop_start()
        clients.append(sub)
        assert subscribed.wait(5)
        pub.publish("pw/alerts/R1", b'{"state": "firing"}', qos=1).wait_for_publish(5)
        assert received.wait(5), got
        assert ("pw/status", b"online", True) in got
        assert ("pw/alerts/R1", b'{"state": "firing"}', False) in got
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        assert broker.stop()
