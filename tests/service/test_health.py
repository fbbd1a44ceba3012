"""Metrics registry and the HTTP endpoints: pre-created series, /metrics, /healthz, /readyz, GET only, loopback."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry

from monitor.health import HealthServer
from monitor.metrics import Metrics


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
