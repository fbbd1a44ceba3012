"""Metrics registry and the HTTP endpoints: pre-created series, /metrics, /healthz, /readyz, GET only, loopback;
plantwatch_ready current on a live service without /readyz being called."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from monitor.config import PlantwatchConfig
from monitor.health import HealthServer
from monitor.metrics import Metrics
from tests.kit import Broker, wait_until


def _get(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_label_values_are_precreated() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, units={"R1": ("a", "b")}, models={"det": "reconstruction"}, horizons=(1, 5))
    assert registry.get_sample_value("plantwatch_readings_rejected_total", {"reason": "non_finite"}) == 0.0
    assert registry.get_sample_value("plantwatch_readings_received_total", {"unit": "R1"}) == 0.0
    assert (
        registry.get_sample_value("plantwatch_sensor_error", {"unit": "R1", "detector": "forecast", "sensor": "b"}) == 0
    )
    assert registry.get_sample_value("plantwatch_forecast_value", {"unit": "R1", "sensor": "a", "horizon": "5"}) == 0
    for _ in range(3):
        metrics.per_unit.count_received(metrics.per_unit.index["R1"])
    assert registry.get_sample_value("plantwatch_readings_received_total", {"unit": "R1"}) == 3.0


def test_endpoints() -> None:
    registry = CollectorRegistry()
    Metrics(registry, units={"R1": ("a",)}, models={})
    state = {"ready": False}
    server = HealthServer(
        registry, "127.0.0.1", 0, lambda: (state["ready"], "ready" if state["ready"] else "no broker")
    )
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = _get(base + "/metrics")
        assert status == 200
        assert 'plantwatch_readings_received_total{unit="R1"} 0.0' in body
        assert _get(base + "/healthz") == (200, "ok\n")
        assert _get(base + "/readyz") == (503, "no broker\n")
        state["ready"] = True
        assert _get(base + "/readyz") == (200, "ready\n")
        assert _get(base + "/admin")[0] == 404
        assert _get(base + "/metrics", method="POST")[0] == 405
    finally:
        assert server.stop(timeout_s=5)


def _ready_gauge(port: int) -> float | None:
    status, body = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    for line in body.splitlines():
        if line.startswith("plantwatch_ready "):
            return float(line.split()[1])
    return None


def test_ready_gauge_is_current_without_anyone_calling_readyz(
    broker_factory: Callable[..., Broker], service_config: Callable[..., PlantwatchConfig]
) -> None:
    """Scrapes /metrics only: the gauge follows the broker link (it used to change only when /readyz was called)."""
    from monitor.app import App

    broker = broker_factory()
    app = App(service_config(broker=broker))
    app.start()
    try:
        assert wait_until(lambda: _ready_gauge(app.metrics_port) == 1.0, timeout_s=20), _ready_gauge(app.metrics_port)
        broker.stop()
        assert wait_until(lambda: _ready_gauge(app.metrics_port) == 0.0, timeout_s=20), _ready_gauge(app.metrics_port)
        broker.start()
        assert wait_until(lambda: _ready_gauge(app.metrics_port) == 1.0, timeout_s=30), _ready_gauge(app.metrics_port)
    finally:
        assert app.stop(5) == 0


def test_a_client_that_hangs_up_before_the_reply_costs_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    """A 1 s health probe that gives up while /readyz is slow (a service still starting) is routine."""
    import socket
    import struct
    import time

    answered = []

    def slow_ready() -> tuple[bool, str]:
        time.sleep(0.3)
        answered.append(True)
        return True, "ready"

    server = HealthServer(CollectorRegistry(), "127.0.0.1", 0, slow_ready)
    server.start()
    try:
        client = socket.create_connection(("127.0.0.1", server.port))
        client.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        client.close()
        assert wait_until(lambda: bool(answered), timeout_s=5)
        time.sleep(0.2)  # the reply's write fails after the check returns
        assert _get(f"http://127.0.0.1:{server.port}/healthz") == (200, "ok\n")
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err
