"""Every Prometheus metric of the service, in one class bound to an injected registry.

API:
    metrics = Metrics(registry, units={"R1": ("a", "b")}, models={"lstm_ae": "detector"}, horizons=(1, 10))
    metrics.readings_rejected.labels("late").inc()    # global metrics: prometheus_client, children pre-created
    table = metrics.per_unit                          # UnitTable (monitor/unit_metrics.py): every per-unit series

Per-unit series (received, buffer fill, score, threshold, sensor error, sensor value, forecast value, alerts
active and fired, outside the training envelope) live in the numpy arrays of one UnitTable, which the registry
collects at scrape time; its module says how and which thread writes what.

Labels come only from the configuration (unit, sensor, model) or fixed enums (reason, detector, queue,
stage), never from message content, so the series count is a function of the config: for U units of S
sensors with forecast horizons H and D detectors (DETECTORS) it is U * (S * (D + 1 + len(H)) + 4 * D + 3), plus
D + 1 ``_created`` samples per unit; a unit with a shadow candidate (monitor/shadow.py) adds 3 series per
candidate model (``plantwatch_shadow_*{unit, detector, model}``, created by ``show_shadows`` when it is served).
Every label value exists from the start (value 0), so dashboards never see a missing series.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.messages import ALERT_STATES, DETECTORS, REJECT_REASONS, SKIP_REASONS
from monitor.unit_metrics import UnitTable

QUEUES = ("ingest", "jobs", "publish")
STAGES = ("ingest", "buffers", "scheduler", "outputs")
RELOAD_RESULTS = ("ok", "error", "rolled_back")  # rolled_back: an `ok` reload withdrawn on probation
# placed: a replayed message went into the buffers again; refused: the parser or the buffers refused it (a config
# changed between runs, or a duplicate of a redelivered message); rescored: windows the killed process had taken but
# not scored, queued again.
REPLAY_RESULTS = ("placed", "refused", "rescored")
CHECKPOINT_PARTS = ("journal", "marks")
RECORDING_KINDS = ("rows", "scores", "alerts", "shadow-alerts")  # monitor/recording: what it holds per unit
SHADOW_FAILURES = ("load", "non_finite")  # why a shadow candidate is not scoring (monitor/shadow.py)
# Seconds; scoring on CPU takes milliseconds, publish-to-score up to a few seconds when behind.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Metrics:
    """All metrics; tests pass a fresh CollectorRegistry and read values with registry.get_sample_value."""

    def __init__(
        self,
        registry: CollectorRegistry,
        units: Mapping[str, Sequence[str]],
        models: Mapping[str, str],
        horizons: Iterable[int] = (),
        per_unit_zeros: Callable[[tuple[int, ...]], npt.NDArray[np.float64]] = np.zeros,
        export_per_unit: bool = True,
    ) -> None:
        self.registry = registry
        r = registry
        self.readings_rejected = Counter(
            "plantwatch_readings_rejected_total",
            "Readings messages refused whole, by reason (of the first refused value).",
            ["reason"],
            registry=r,
        )
        self.values_rejected = Counter(
            "plantwatch_values_rejected_total",
            "Values refused inside readings messages that were otherwise accepted, by reason.",
            ["reason"],
            registry=r,
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
            "Wall clock at scoring minus when the newest reading in the scored row was published: its payload's "
            "`sent` (the simulator and replay set it), else its event time `ts`.",
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
        # Crash-only restarts (monitor/journal.py): what the start replayed, and writes of the state that failed.
        self.journal_replayed = Counter(
            "plantwatch_journal_replayed_total",
            "Journaled messages replayed into the buffers at start (a restart's state), by result.",
            ["result"],
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "plantwatch_checkpoint_failures_total",
            "Failed writes of the restart state (journal records, scoring marks); scoring goes on.",
            ["what"],
            registry=r,
        )
        # The recording (monitor/recording): rows are written by the front process, scores and alerts by the scorer;
        # each process leaves the other's kinds at 0, so one scrape over both adds up (monitor/merged_metrics.py).
        self.recording_dropped = Counter(
            "plantwatch_recording_dropped_total",
            "Records not recorded because the recording's queue was full, by kind.",
            ["kind"],
            registry=r,
        )
        self.recording_errors = Counter(
            "plantwatch_recording_errors_total",
            "Failed writes of the recording (full disk, permissions); its records are lost, scoring goes on.",
            ["kind"],
            registry=r,
        )
        self.recording_bytes = Gauge(
            "plantwatch_recording_bytes", "Bytes of the recording's files on disk, by kind.", ["kind"], registry=r
        )

        # Shadow candidates (monitor/shadow.py): one series per (unit, detector, model) of a unit that has one,
        # created when its shadow is served (show_shadows), removed when it is not any more.
        shadow_labels = ["unit", "detector", "model"]
        self.shadow_alerts_fired = Counter(
            "plantwatch_shadow_alerts_fired_total",
            "Alert episodes a shadow candidate would have fired (never published).",
            shadow_labels,
            registry=r,
        )
        self.shadow_alerts_active = Gauge(
            "plantwatch_shadow_alerts_active",
            "1 while a shadow candidate's would-be alert is firing (never published).",
            shadow_labels,
            registry=r,
        )
        self.shadow_score_normalized = Gauge(
            "plantwatch_shadow_anomaly_score_normalized",
            "Latest shadow candidate score / its threshold in force (beside plantwatch_anomaly_score_normalized).",
            shadow_labels,
            registry=r,
        )
        self.shadow_failures = Counter(
            "plantwatch_shadow_failures_total",
            "Shadow candidates not scoring: refused at load, or stopped after a NaN / inf score.",
            ["reason"],
            registry=r,
        )
        self.shadow_series: frozenset[tuple[str, str, str]] = frozenset()

        for reject_reason in REJECT_REASONS:
            self.readings_rejected.labels(reject_reason)
            self.values_rejected.labels(reject_reason)
        for skip_reason in SKIP_REASONS:
            self.windows_skipped.labels(skip_reason)
        for queue in QUEUES:
            self.queue_depth.labels(queue)
            self.queue_dropped.labels(queue)
        for stage in STAGES:
            self.stage_errors.labels(stage)
        for result in RELOAD_RESULTS:
            self.model_reloads.labels(result)
        for state in ALERT_STATES:
            self.alerts_published.labels(state)
        for replay_result in REPLAY_RESULTS:
            self.journal_replayed.labels(replay_result)
        for what in CHECKPOINT_PARTS:
            self.checkpoint_failures.labels(what)
        for kind in RECORDING_KINDS:
            self.recording_dropped.labels(kind)
            self.recording_errors.labels(kind)
            self.recording_bytes.labels(kind)
        for detector in DETECTORS:
            self.windows_scored.labels(detector)
        for failure in SHADOW_FAILURES:
            self.shadow_failures.labels(failure)
        for model in models:
            self.inference_seconds.labels(model)
        self.per_unit = UnitTable(units, horizons, per_unit_zeros, exported=export_per_unit)
        if export_per_unit:  # the scorer process writes its table into the front's shared block, which exports it
            registry.register(self.per_unit)

    def show_shadows(self, series: Iterable[tuple[str, str, str]]) -> None:
        """The (unit, detector, model) series of the shadows now served: new ones at 0, gone ones removed."""
        wanted = frozenset(series)
        families = (self.shadow_alerts_fired, self.shadow_alerts_active, self.shadow_score_normalized)
        for labels in self.shadow_series - wanted:
            for family in families:
                family.remove(*labels)
        for labels in wanted - self.shadow_series:
            for family in families:
                family.labels(*labels)
            self.shadow_score_normalized.labels(*labels).set(math.nan)  # not scored yet
        self.shadow_series = wanted
