"""Every Prometheus metric of the service, in one class bound to an injected registry.

API:
    metrics = Metrics(registry, units={"R1": ("a", "b")}, models={"lstm_ae": "reconstruction"}, horizons=(1, 10))
    metrics.rejected["late"].inc()                   # children pre-created for every bounded label value
    metrics.unit("R1").received.inc()                # per-unit children, resolved once (hot path)

Labels come only from the configuration (unit, sensor, model) or fixed enums (reason, detector, queue,
stage), never from message content, so the series count is a function of the config: for U units of S
sensors with a forecaster of horizon H it is about U * (S * (3 + len(horizons)) + 12).
Every label value is created at start (value 0), so dashboards never see a missing series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.messages import REJECT_REASONS

DETECTORS = ("reconstruction", "forecast")
SKIP_REASONS = ("gap", "backlog", "queue_full")
QUEUES = ("ingest", "jobs", "publish")
STAGES = ("ingest", "buffers", "scheduler", "outputs")
RELOAD_RESULTS = ("ok", "error")
# Seconds; scoring on CPU takes milliseconds, publish-to-score up to a few seconds when behind.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


@dataclass(frozen=True, slots=True)
class UnitMetrics:
    """The children of one unit, looked up once so the hot path does no label hashing."""

    received: Counter
    fill: Gauge
    score: Mapping[str, Gauge]  # detector -> child
    threshold: Mapping[str, Gauge]
    sensor_error: Mapping[tuple[str, str], Gauge]  # (detector, sensor) -> child
    alerts_active: Mapping[str, Gauge]
    alerts_fired: Mapping[str, Counter]
    forecast: Mapping[tuple[str, int], Gauge]  # (sensor, horizon step) -> child
    value: tuple[Gauge, ...]  # per sensor, in config order: the newest aligned row (the "actual")


class Metrics:
    """All metrics; tests pass a fresh CollectorRegistry and read values with registry.get_sample_value."""

    def __init__(
        self,
        registry: CollectorRegistry,
        units: Mapping[str, Sequence[str]],
        models: Mapping[str, str],
        horizons: Iterable[int] = (),
    ) -> None:
        self.registry = registry
        r = registry
        self.readings_received = Counter(
            "plantwatch_readings_received_total", "Valid readings messages accepted by ingest.", ["unit"], registry=r
        )
        self.readings_rejected = Counter(
            "plantwatch_readings_rejected_total", "Messages or values refused, by reason.", ["reason"], registry=r
        )
        self.anomaly_score = Gauge(
            "plantwatch_anomaly_score", "Latest anomaly score.", ["unit", "detector"], registry=r
        )
        self.anomaly_threshold = Gauge(
            "plantwatch_anomaly_threshold", "Calibrated threshold of the score.", ["unit", "detector"], registry=r
        )
        self.sensor_error = Gauge(
            "plantwatch_sensor_error",
            "Latest per-sensor contribution to the anomaly score.",
            ["unit", "detector", "sensor"],
            registry=r,
        )
        self.sensor_value = Gauge(
            "plantwatch_sensor_value",
            "Latest aligned reading, raw sensor units: the newest row of the unit's last window (forecast vs actual).",
            ["unit", "sensor"],
            registry=r,
        )
        self.forecast_value = Gauge(
            "plantwatch_forecast_value",
            "Latest forecast, raw sensor units, `horizon` periods after the newest row.",
            ["unit", "sensor", "horizon"],
            registry=r,
        )
        self.alerts_fired = Counter(
            "plantwatch_alerts_fired_total", "Alert episodes fired.", ["unit", "detector"], registry=r
        )
        self.alerts_active = Gauge(
            "plantwatch_alerts_active", "1 while an alert is firing.", ["unit", "detector"], registry=r
        )
        self.alerts_published = Counter(
            "plantwatch_alert_events_published_total", "Alert events handed to MQTT.", ["state"], registry=r
        )
        self.inference_seconds = Histogram(
            "plantwatch_inference_seconds",
            "Time of one batched scoring call.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "plantwatch_batch_size_windows", "Windows per batched scoring call.", buckets=BATCH_BUCKETS, registry=r
        )
        self.publish_to_score = Histogram(
            "plantwatch_publish_to_score_seconds",
            "Wall clock at scoring minus the scored row's event time (publish time at the source).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.receive_to_score = Histogram(
            "plantwatch_receive_to_score_seconds",
            "Wall clock at scoring minus arrival of the reading that completed the row.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.windows_scored = Counter(
            "plantwatch_windows_scored_total", "Windows scored, by detector.", ["detector"], registry=r
        )
        self.windows_skipped = Counter(
            "plantwatch_windows_skipped_total", "Windows not scored, by reason.", ["reason"], registry=r
        )
        self.buffer_fill = Gauge(
            "plantwatch_buffer_fill_ratio", "Share of the unit's ring buffer holding rows.", ["unit"], registry=r
        )
        self.queue_depth = Gauge("plantwatch_queue_depth", "Items waiting in a queue.", ["queue"], registry=r)
        self.queue_dropped = Counter(
            "plantwatch_queue_dropped_total", "Items dropped because a bounded queue was full.", ["queue"], registry=r
        )
        self.stage_errors = Counter(
            "plantwatch_stage_errors_total", "Unexpected errors handled by a stage.", ["stage"], registry=r
        )
        self.mqtt_connected = Gauge("plantwatch_mqtt_connected", "1 while connected to the broker.", registry=r)
        self.mqtt_connects = Counter(
            "plantwatch_mqtt_connects_total", "Successful broker connections (the first and reconnects).", registry=r
        )
        self.mqtt_disconnects = Counter(
            "plantwatch_mqtt_disconnects_total", "Unexpected broker disconnections.", registry=r
        )
        self.gpu_oom = Counter("plantwatch_gpu_oom_total", "CUDA out-of-memory errors while scoring.", registry=r)
        self.cpu_fallback = Counter(
            "plantwatch_cpu_fallback_total", "Times scoring moved from CUDA to the CPU.", registry=r
        )
        self.model_reloads = Counter(
            "plantwatch_model_reloads_total", "Artifact reloads (SIGHUP), by result.", ["result"], registry=r
        )
        self.model_info = Gauge(
            "plantwatch_model_info",
            "1 per loaded model, with its kind, role and device.",
            ["model", "kind", "role", "device"],
            registry=r,
        )
        self.ready = Gauge("plantwatch_ready", "1 when connected to the broker with models loaded.", registry=r)

        for reject_reason in REJECT_REASONS:
            self.readings_rejected.labels(reject_reason)
        for skip_reason in SKIP_REASONS:
            self.windows_skipped.labels(skip_reason)
        for queue in QUEUES:
            self.queue_depth.labels(queue)
            self.queue_dropped.labels(queue)
        for stage in STAGES:
            self.stage_errors.labels(stage)
        for result in RELOAD_RESULTS:
            self.model_reloads.labels(result)
        for state in ("firing", "resolved"):
            self.alerts_published.labels(state)
        for detector in DETECTORS:
            self.windows_scored.labels(detector)
        for model in models:
            self.inference_seconds.labels(model)
        steps = tuple(sorted(set(horizons)))
        self._units: dict[str, UnitMetrics] = {
            unit: self._unit_children(unit, sensors, steps) for unit, sensors in units.items()
        }

    def _unit_children(self, unit: str, sensors: Sequence[str], steps: tuple[int, ...]) -> UnitMetrics:
        return UnitMetrics(
            received=self.readings_received.labels(unit),
            fill=self.buffer_fill.labels(unit),
            score={d: self.anomaly_score.labels(unit, d) for d in DETECTORS},
            threshold={d: self.anomaly_threshold.labels(unit, d) for d in DETECTORS},
            sensor_error={(d, s): self.sensor_error.labels(unit, d, s) for d in DETECTORS for s in sensors},
            alerts_active={d: self.alerts_active.labels(unit, d) for d in DETECTORS},
            alerts_fired={d: self.alerts_fired.labels(unit, d) for d in DETECTORS},
            forecast={(s, h): self.forecast_value.labels(unit, s, str(h)) for s in sensors for h in steps},
            value=tuple(self.sensor_value.labels(unit, s) for s in sensors),
        )

    def unit(self, name: str) -> UnitMetrics:
        """Children of a configured unit (KeyError for others: labels never come from input)."""
        return self._units[name]

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self._units)
