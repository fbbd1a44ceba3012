"""`plantwatch demo` as a new user runs it, a process with its output in a pipe or on a terminal: embedded
broker, training, service, simulator with the scripted fault, live view, report, and the records it keeps.

The scripted fault (a 6 K bias on reactor-01's temperature sensor) is large enough for any trained model.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from monitor.demo import EmbeddedBroker, port_or_free
from monitor.wire.labels import LABEL_HEADER
from tests.deploy.test_report import png_size
from tests.kit import Broker, free_port, scrape, stop_process, wait_until

# Tiny settings keep a run short: 15 simulated minutes of training data, 2 epochs; 20x real time for 7 s of wall
# time (140 simulated s); the scripted fault (6 K on reactor-01's temperature sensor) from 30 s for 60 s.
TINY = ["--speed", "20", "--fault-at", "30s", "--fault-duration", "1m", "--train-hours", "0.25", "--epochs", "2"]
TINY += ["--window", "16", "--hidden-size", "16", "--metrics-port", "0", "--device", "cpu"]
RECORDS = ("scores.csv", "alerts.jsonl", "data.csv", "labels.csv", "report.png", "plantwatch.yaml")


def run_demo(workdir: Path, *extra: str, duration: str = "7s") -> tuple[str, Path]:
    """`plantwatch demo` as a process, its stdout a pipe; (everything it printed, its run directory)."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--workdir", str(workdir), "--duration", duration, *TINY, *extra],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    match = re.search(r"^this run's records: (\S+) ", done.stdout, re.MULTILINE)
    assert match, done.stdout
    return out, Path(match.group(1))


def alert_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("ALERT ")]


@pytest.mark.slow
def test_two_demos_keep_both_runs_print_each_alert_once_and_save_a_config_that_runs(
    tmp_path: Path, broker_factory: Callable[..., Broker]
) -> None:
    # Port 1883's situation on a machine with a broker already running: the port asked for is taken.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        first_out, first = run_demo(tmp_path, "--broker-port", str(busy))
    assert f"embedded broker: port {busy} is taken on 127.0.0.1 (most often by a broker" in first_out
    assert re.search(rf"embedded MQTT broker \(amqtt, MQTT 3.1.1\) on 127.0.0.1:(?!{busy}\b)\d+", first_out)
    assert first.parent == tmp_path and re.fullmatch(r"run-\d{8}T\d{6}Z(-\d+)?", first.name)
    assert all((first / name).is_file() for name in RECORDS)

    # The scripted fault is found on the right unit and sensor; each alert event is one line, once (the service's
    # own log line for it is held back while the view draws), stamped with its event time and the wall time.
    events = [json.loads(line) for line in (first / "alerts.jsonl").read_text().splitlines()]
    firing = [e for e in events if e["state"] == "firing" and e["unit"] == "reactor-01"]
    assert firing and firing[0]["sensors"][0]["sensor"] == "reactor_temp_K", events
    lines = alert_lines(first_out)
    assert len(lines) == len(events), first_out
    assert "monitor.outputs: alert" not in first_out
    assert all(re.match(r"ALERT event \d\d:\d\d:\d\d \(wall \d\d:\d\d:\d\d\) reactor-0[12] ", line) for line in lines)
    assert "alert times: event time (the simulated plant's clock, running 20x the wall clock)" in first_out
    assert "trained in " in first_out and "lstm_ae (detector): threshold " in first_out
    # The ground truth the simulator injected, and the service's scores, were recorded for the report.
    labels = (first / "labels.csv").read_text().splitlines()
    assert labels[0] == ",".join(LABEL_HEADER) and labels[1].startswith("reactor-01,bias,")
    assert (first / "scores.csv").read_text().count("\n") > 100
    width, height = png_size(first / "report.png")
    assert width == 1500 and height > 1000
    kept = {name: (first / name).read_bytes() for name in RECORDS}

    # A second demo reuses the models and writes a run directory of its own; the first run's records stay.
    second_out, second = run_demo(tmp_path, "--broker-port", "0")
    assert second != first and second.parent == tmp_path
    assert "reusing the models trained earlier in" in second_out and "trained in " not in second_out
    assert {name: (first / name).read_bytes() for name in RECORDS} == kept
    assert all((second / name).is_file() for name in RECORDS)
    assert f"records of this run: {second} (config: {second / 'plantwatch.yaml'})" in second_out

    # The saved config is one someone can run: plain YAML, a broker on localhost:1883, the default clock guard.
    text = (first / "plantwatch.yaml").read_text()
    assert "&id" not in text and "*id" not in text and "max_clock_skew_s" not in text.split("\nunits:")[1]
    saved = yaml.safe_load(text)
    assert (saved["mqtt"]["host"], saved["mqtt"]["port"]) == ("localhost", 1883) and "protocol" not in saved["mqtt"]
    assert "the embedded amqtt broker, gone when the demo ended" in text
    check = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(first / "plantwatch.yaml")],
                           capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert check.returncode == 0, check.stderr
    # ... and it runs: the service from it (its broker moved by the environment, as any key can be) scores the
    # first run's recorded plant and alerts on the faulty reactor.
    broker = broker_factory()
    metrics_port = free_port()
    env = {**os.environ, "PLANTWATCH__MQTT__PORT": str(broker.port), "PLANTWATCH__MQTT__HOST": broker.host,
           "PLANTWATCH__METRICS__PORT": str(metrics_port)}  # fmt: skip
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        service = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(first / "plantwatch.yaml")],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        assert wait_until(lambda: _ready(metrics_port), timeout_s=60), log_path.read_text()[-3000:]
        replay = subprocess.run(
            [sys.executable, "-m", "monitor", "replay", str(first / "data.csv"), "--broker", broker.address,
             "--speed", "0"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr

        def fired() -> float:
            return scrape(metrics_port).value(
                "plantwatch_alerts_fired_total", detector="reconstruction", unit="reactor-01"
            )

        assert wait_until(lambda: fired() >= 1, timeout_s=60), log_path.read_text()[-3000:]
    finally:
        assert stop_process(service, signal.SIGTERM, timeout_s=60) == 0, log_path.read_text()[-3000:]


@pytest.mark.slow
def test_the_demo_on_a_terminal_keeps_its_training_summary_on_the_redrawn_screen(tmp_path: Path) -> None:
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--workdir", str(tmp_path), "--duration", "5s", *TINY,
         "--broker-port", "0"],
        stdin=child_fd, stdout=child_fd, stderr=child_fd, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    os.close(child_fd)
    chunks = []
    while True:  # read the terminal until the demo closes it
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    assert proc.wait(timeout=120) == 0
    output = b"".join(chunks).decode(errors="replace")
    screens = output.split("\x1b[H\x1b[J")
    assert len(screens) > 3, output  # redrawn about once a second
    last = screens[-1]
    # What was printed before the view started is on every redrawn screen: the training summary is not wiped.
    for kept in (
        "this run's records: ",
        "embedded MQTT broker (amqtt, MQTT 3.1.1) on 127.0.0.1:",
        "trained in ",
        "lstm_ae (detector): threshold ",
        "lstm (forecaster): threshold ",
        "alert times: event time",
    ):
        assert kept in last, last  # fmt: skip


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


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
