"""The broker link over TLS with a client certificate (mutual TLS), against a mosquitto TLS listener."""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import MqttConfig
from monitor.mqtt import MqttLink
from tests.kit import Broker, wait_until


def _make_pki(directory: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    files = {name: directory / name for name in ("ca.key", "ca.crt", "server.key", "server.crt", "client.key")}
    files["client.crt"] = directory / "client.crt"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    req = ["openssl", "req", "-newkey", "rsa:2048", "-nodes"]
    commands = [
        [*req, "-x509", "-keyout", files["ca.key"], "-out", files["ca.crt"], "-days", "2", "-subj", "/CN=test-ca"],
    ]
    for who, cn in (("server", "127.0.0.1"), ("client", "plantwatch")):
        csr = directory / f"{who}.csr"
        commands.append([*req, "-keyout", files[f"{who}.key"], "-out", csr, "-subj", f"/CN={cn}"])
        sign = ["openssl", "x509", "-req", "-in", csr, "-CA", files["ca.crt"], "-CAkey", files["ca.key"]]
        commands.append([*sign, "-CAcreateserial", "-out", files[f"{who}.crt"], "-days", "2", "-extfile", ext])
    for command in commands:
        subprocess.run([str(c) for c in command], check=True, capture_output=True, timeout=60)
    return files


def _cfg(broker: Broker, tls: dict[str, object]) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "host": broker.host,
            "port": broker.port,
            "client_id": f"tls-{uuid.uuid4().hex[:8]}",
            "tls": tls,
            "topics": {"readings": "tls/{unit}/readings", "sensor": None, "prefix": "tlspw"},
            "reconnect_min_s": 1,
            "reconnect_max_s": 2,
        }
    )


def test_mutual_tls(broker_factory: Callable[..., Broker], tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    pki = _make_pki(tmp_path)
    broker = broker_factory(
        extra_conf=f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n"
        "require_certificate true"
    )
    got: list[bytes] = []
    lock = threading.Lock()

    def handler(topic: str, payload: bytes, received_at: float) -> bool:
        with lock:
            got.append(payload)
        return True

    good = MqttLink(
        _cfg(broker, {"ca_file": pki["ca.crt"], "cert_file": pki["client.crt"], "key_file": pki["client.key"]}),
        ["tls/+/readings"],
        handler,
    )
    good.start()
    try:
        assert good.connected.wait(15), broker.log()[-2000:]
        assert wait_until(lambda: "SUBSCRIBE" in broker.log(), timeout_s=10)
        good.publish("tls/R1/readings", b"over tls", qos=1)
        assert wait_until(lambda: got == [b"over tls"], timeout_s=10)
    finally:
        good.stop(timeout_s=5)

    # Without a client certificate the broker refuses the handshake: the link never connects (and keeps trying).
    no_cert = MqttLink(_cfg(broker, {"ca_file": pki["ca.crt"]}), [], handler)
    no_cert.start()
    try:
        assert not no_cert.connected.wait(3)
    finally:
        no_cert.stop(timeout_s=5)
