"""Live publishing and replay against the real mosquitto fixture: every message arrives, in order, unchanged."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main as cli_main
from simulators import LivePublisher, parse_scenario, simulate
from simulators.broker import BrokerOptions
from simulators.live import Row
from tests.conftest import MqttRecorder
from tests.kit import Broker, free_port


def scenario_for(unit: str, faults: list[dict[str, object]] | None = None) -> object:
    return parse_scenario({"units": [unit, f"{unit}b"], "faults": faults or []})


def test_qos1_run_delivers_every_message_it_published(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    unit = unique_prefix
    result = simulate(
        scenario_for(
            unit,
            [
                {"kind": "dropout", "unit": unit, "start": 10, "duration": 5, "sensors": ["level_m"]},
                {"kind": "bias", "unit": f"{unit}b", "start": 20, "duration": 10},
            ],
        ),
        60,
        seed=1,
    )
    recorder = mqtt_recorder("plant/+/readings")
    faults = mqtt_recorder(f"plantwatch-sim/faults/{unit}b")
    publisher = LivePublisher(result, mosquitto.host, mosquitto.port, speed=0, qos=1).start()
    assert publisher.wait(30)
    assert publisher.error is None
    assert publisher.published == 120 and publisher.acked == 120 and publisher.events_published == 4
    got = recorder.wait_for(f"plant/{unit}/readings", count=60) + recorder.wait_for(f"plant/{unit}b/readings", count=60)
    assert len(recorder.matching(f"plant/{unit}/readings")) == 60
    for message in got:
        body = message.json()
        u = result.unit_index(message.topic.split("/")[1])
        t = round(body["ts"] - result.timestamps[0])
        expected = {s: v for s, v in zip(result.sensors, result.data[u, t].tolist(), strict=True) if not math.isnan(v)}
        assert body["values"] == expected  # exact: JSON round-trips Python floats
    dropped = [m.json() for m in got if m.topic == f"plant/{unit}/readings" and "level_m" not in m.json()["values"]]
    assert len(dropped) == 5  # a dropout sends no value for that sensor
    events = [m.json() for m in faults.wait_for(count=2)]
    assert [e["event"] for e in events] == ["start", "end"]
    assert events[0]["kind"] == "bias" and events[0]["ts"] == result.timestamps[20]


def test_per_sensor_payload_in_order(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    unit = unique_prefix
    result = simulate(scenario_for(unit), 20, seed=2)
    recorder = mqtt_recorder(f"plant/{unit}/+")
    publisher = LivePublisher(result, mosquitto.host, mosquitto.port, speed=0, qos=1, payload="per-sensor").start()
    assert publisher.wait(30) and publisher.error is None
    assert publisher.published == publisher.acked == 2 * 20 * 8  # two units, eight sensors
    got = recorder.wait_for(f"plant/{unit}/reactor_temp_K", count=20)
    assert [m.json()["value"] for m in got] == result.data[0, :, 0].tolist()
    assert [m.json()["ts"] for m in got] == result.timestamps.tolist()


def test_stagger_spreads_units_over_the_period_inside_their_rows(
    mosquitto: Broker, mqtt_recorder, unique_prefix: str
) -> None:
    units = [f"{unique_prefix}-{i}" for i in range(4)]
    result = simulate(parse_scenario({"units": units}), 3, seed=4)
    recorder = mqtt_recorder("plant/+/readings")
    publisher = LivePublisher(result, mosquitto.host, mosquitto.port, speed=0, qos=1, stagger=True).start()
    assert publisher.wait(30) and publisher.error is None
    for i, unit in enumerate(units):
        stamps = [m.json()["ts"] for m in recorder.wait_for(f"plant/{unit}/readings", count=3)]
        # Unit i of 4 is (i/4 - 1/2) periods off its row time: -0.5, -0.25, 0, +0.25 s, so it stays in its row.
        assert stamps == pytest.approx((result.timestamps + (i / 4 - 0.5) * result.period_s).tolist())
        assert [math.floor(t - result.timestamps[0] + 0.5) for t in stamps] == [0, 1, 2]  # the service's row rule
    with pytest.raises(ValueError, match="stagger"):
        LivePublisher([Row(0.0, "u", {"a": 1.0})], mosquitto.host, mosquitto.port, stagger=True)


def test_speed_paces_by_event_time(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    rows = [Row(1000.0 + i, unique_prefix, {"x": float(i)}) for i in range(5)]
    recorder = mqtt_recorder(f"plant/{unique_prefix}/readings")
    publisher = LivePublisher(rows, mosquitto.host, mosquitto.port, speed=10.0, qos=1).start()
    assert publisher.wait(10) and publisher.error is None
    got = recorder.wait_for(f"plant/{unique_prefix}/readings", count=5)
    span = got[-1].received_at - got[0].received_at
    assert span >= 0.35  # 4 s of event time at 10x is 0.4 s of wall time (never sooner)
    assert [m.json()["values"]["x"] for m in got] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_stop_ends_an_endless_stream(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    from simulators import Simulation

    recorder = mqtt_recorder(f"plant/{unique_prefix}/readings")
    sim = Simulation(parse_scenario({"units": [unique_prefix]}), seed=1)
    publisher = LivePublisher(sim, mosquitto.host, mosquitto.port, speed=100.0, qos=1).start()
    recorder.wait_for(f"plant/{unique_prefix}/readings", count=20)
    publisher.stop()
    assert publisher.wait(10) and publisher.error is None
    assert publisher.acked == publisher.published >= 20


def test_replay_preserves_order_and_values(
    mosquitto: Broker, mqtt_recorder, unique_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "skab-like.csv"
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 2)).round(6)
    lines = ["datetime;Pressure;Temperature;anomaly"]
    for i, (p, t) in enumerate(values.tolist()):
        lines.append(f"2020-03-09 10:14:{i:02d};{p};{t};0.0")  # zone-less, read as UTC: 1583748840 + i
    path.write_text("\n".join(lines) + "\n")
    recorder = mqtt_recorder(f"plant/{unique_prefix}/readings")
    broker = f"{mosquitto.host}:{mosquitto.port}"
    assert cli_main(["replay", str(path), "--broker", broker, "--unit", unique_prefix, "--speed", "0"]) == 0
    got = recorder.wait_for(f"plant/{unique_prefix}/readings", count=30)
    bodies = [m.json() for m in got]
    assert [b["values"] for b in bodies] == [{"Pressure": p, "Temperature": t} for p, t in values.tolist()]
    assert bodies[0]["ts"] == 1583748840.0 and np.all(np.diff([b["ts"] for b in bodies]) == 1.0)


def test_simulate_command_live(mosquitto: Broker, mqtt_recorder, unique_prefix: str, tmp_path: Path, capsys) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"units: [{unique_prefix}]\nfaults: [{{kind: bias, start: 5, duration: 5}}]\n")
    recorder = mqtt_recorder(f"plant/{unique_prefix}/readings")
    faults = mqtt_recorder(f"plantwatch-sim/faults/{unique_prefix}")
    argv = ["simulate", "--scenario", str(scenario), "--broker", f"{mosquitto.host}:{mosquitto.port}"]
    began = time.time()
    assert cli_main([*argv, "--speed", "0", "--duration", "30s", "--qos", "1"]) == 0
    assert "published 30 messages, 30 acknowledged, 2 fault events" in capsys.readouterr().out
    got = recorder.wait_for(f"plant/{unique_prefix}/readings", count=30)
    stamps = [m.json()["ts"] for m in got]
    assert stamps == sorted(stamps)
    # As fast as possible, 30 s of event time go out at once: each message says when it was sent (wall clock),
    # which is not its event time.
    sent = [m.json()["sent"] for m in got]
    assert all(began <= t <= time.time() for t in sent)
    assert stamps[0] < began - 25
    assert [json.loads(m.payload)["event"] for m in faults.wait_for(count=2)] == ["start", "end"]


@pytest.mark.parametrize("command", ["simulate", "replay"])
def test_unreachable_broker_is_a_one_line_error(command: str, tmp_path: Path, capsys) -> None:
    data = tmp_path / "d.csv"
    data.write_text("timestamp,x\n1,2\n")
    first = ["simulate", "--scenario", "demo", "--duration", "10"] if command == "simulate" else ["replay", str(data)]
    argv = [*first, "--unit", "u"] if command == "replay" else first
    assert cli_main([*argv, "--broker", f"127.0.0.1:{free_port()}"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to broker 127.0.0.1:" in err and "Traceback" not in err


def test_credentials_are_used_and_a_refusal_is_reported(broker_factory, tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "sim", "s3cret"], check=True, timeout=30)
    broker = broker_factory(extra_conf=f"allow_anonymous false\npassword_file {passwords}")
    result = simulate(parse_scenario({"units": ["a"]}), 5, seed=1)
    anonymous = LivePublisher(result, options=BrokerOptions(broker.host, broker.port), speed=0).start()
    assert anonymous.wait(10)
    assert anonymous.error == "broker refused the connection: Not authorized" and anonymous.published == 0
    options = BrokerOptions(broker.host, broker.port, username="sim", password="s3cret")
    allowed = LivePublisher(result, options=options, speed=0).start()
    assert allowed.wait(10)
    assert allowed.error is None and allowed.published == allowed.acked == 5


def test_qos1_run_survives_a_broker_restart(broker_factory) -> None:
    broker = broker_factory()
    recorder = MqttRecorder(broker, "plant/#")
    try:
        result = simulate(parse_scenario({"units": ["a"]}), 120, seed=1)
        publisher = LivePublisher(result, broker.host, broker.port, speed=30.0, qos=1).start()
        recorder.wait_for("plant/a/readings", count=20)
        broker.restart()
        assert publisher.wait(60)
        assert publisher.error is None
        assert publisher.published == publisher.acked == 120  # paho re-sent what the restart cut off
    finally:
        recorder.close()


def _make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    openssl_req = ["openssl", "req", "-newkey", "rsa:2048", "-nodes"]
    commands = [
        [*openssl_req, "-x509", "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=plantwatch-test-ca"],
        [*openssl_req, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial"],
    ]
    commands[2] += ["-out", crt, "-days", "2", "-extfile", ext]
    for command in commands:
        subprocess.run([str(c) for c in command], check=True, capture_output=True, timeout=60)
    return ca_crt, crt, key


def test_tls_publish(broker_factory, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    ca, crt, key = _make_tls_files(tmp_path)
    broker = broker_factory(extra_conf=f"cafile {ca}\ncertfile {crt}\nkeyfile {key}")
    result = simulate(parse_scenario({"units": ["a"]}), 5, seed=1)
    plain = LivePublisher(result, broker.host, broker.port, speed=0, connect_timeout_s=1).start()
    assert plain.wait(15) and plain.error is not None  # a TLS listener does not speak plain MQTT
    secure = LivePublisher(result, options=BrokerOptions(broker.host, broker.port, tls_ca=str(ca)), speed=0).start()
    assert secure.wait(15)
    assert secure.error is None and secure.published == secure.acked == 5


def _run(*argv: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *argv], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def test_live_simulate_says_what_it_does_and_prints_progress(
    mosquitto: Broker, unique_prefix: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"units: [{unique_prefix}]\n")
    broker = f"{mosquitto.host}:{mosquitto.port}"
    # 2 simulated minutes at 30x: about 4 s of wall time, a progress line every second.
    done = _run("simulate", "--scenario", str(scenario), "--broker", broker, "--speed", "30", "--duration", "2m",
                "--progress-every", "1s")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"publishing s (1 unit(s), readings payloads) to {broker} at 30x real time (event time")
    assert "for 2m of it; Ctrl-C stops" in lines[0]
    progress = [line for line in lines if line.startswith("[") and " wall] " in line]
    assert len(progress) >= 2, done.stdout
    assert all(" messages sent, " in line and "; event time 20" in line for line in progress)
    # The run starts in the past so that its last reading is stamped about now: the event time catches up.
    assert "behind the wall clock" in progress[0]
    assert lines[-1] == "published 120 messages, 120 acknowledged, 0 fault events"


@pytest.mark.parametrize(
    ("option", "protocol_log", "warning"),
    [
        (["--mqtt-protocol", "3.1.1"], "p2", None),
        (["--mqtt-protocol", "5"], "p5", None),
        ([], "p5", None),
        (["--mqtt-version", "4"], "p2", "--mqtt-version is deprecated; use --mqtt-protocol 3.1.1"),
        (["--mqtt-version", "5"], "p5", "--mqtt-version is deprecated; use --mqtt-protocol 5"),
    ],
)
def test_the_mqtt_protocol_is_named_as_in_the_config_and_the_old_option_still_works(
    option: list[str], protocol_log: str, warning: str | None, mosquitto: Broker, unique_prefix: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"units: [{unique_prefix}]\n")
    client_id = f"{unique_prefix}-sim"
    done = _run("simulate", "--scenario", str(scenario), "--broker", f"{mosquitto.host}:{mosquitto.port}",
                "--speed", "0", "--duration", "5", "--client-id", client_id, *option)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "published 5 messages, 5 acknowledged" in done.stdout
    # mosquitto logs each connection's protocol: p2 is MQTT 3.1.1, p5 MQTT 5.
    assert f"as {client_id} ({protocol_log}," in mosquitto.log()
    if warning is None:
        assert "deprecated" not in done.stderr
    else:
        assert warning in done.stderr
