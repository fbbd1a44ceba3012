"""Frozen records passed between the service's stages (ingest -> buffers -> scheduler -> scoring -> alerts), and
the service's vocabulary, each word list defined here once and imported: detectors, alert states and severities,
reject and skip reasons (bounded metric label sets).

Each record is immutable so a stage can hand it to the next thread without a lock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

# Why a readings message (or one value of it) was refused; the label set of plantwatch_readings_rejected_total
# {reason} (messages) and plantwatch_values_rejected_total{reason} (values refused inside accepted messages).
RejectReason = Literal[
    "too_large",  # payload over limits.max_payload_bytes, refused before decoding
    "malformed",  # not UTF-8, not JSON, wrong shape (array, missing "values"/"value")
    "schema",  # ts missing its zone, ts not a number or ISO string, empty values
    "type",  # a value that is not a JSON number (string, bool, null, list, object)
    "non_finite",  # NaN, Infinity, -Infinity, 1e999, and beyond float32 (|v| > 3.4028235e38: inf in the buffer)
    # outside its sensor's configured physical limits (units[].limits, monitor.validation): a broken transmitter,
    # not the process; the sensor counts as missing for that row and the sensor detector names it
    "out_of_range",
    "unknown_unit",
    "unknown_sensor",
    "late",  # older than the unit's watermark minus its max lateness
    "future",  # ahead of the receive clock by more than the allowed skew
    "duplicate",  # same (unit, sensor, ts) seen already (QoS 1 redelivery)
    "clock",  # off the unit's own timeline (ahead of its cadence, or a first reading far from the clock), held
    # and then contradicted by the unit's genuine stream (monitor.timeline)
]
REJECT_REASONS: tuple[RejectReason, ...] = get_args(RejectReason)

# Why a window was not scored: the label set of plantwatch_windows_skipped_total{reason}.
SkipReason = Literal[
    "gap",  # its window holds a row past a sensor's hold-over (monitor.buffers.ring); the sensor detector still sees it
    "backlog",  # scoring fell behind: only each unit's newest window is kept (monitor.scheduler)
    "queue_full",  # the job queue was full (a redelivered backlog bigger than the queue, monitor.scheduler)
]
SKIP_REASONS: tuple[SkipReason, ...] = get_args(SkipReason)

# The ring buffers hold float32: a value beyond this magnitude would be stored as +-inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def storable(value: float) -> bool:
    """Whether a value is finite and representable in the buffers' float32 (False for NaN and +-inf too).

    The one value rule: the parser applies it at the door; the buffers apply it again for the backtest's CSV
    readings, which reach them without a parser."""
    return -FLOAT32_MAX <= value <= FLOAT32_MAX


# The detectors scored by a model (the reconstruction detector, the forecaster's residual): their thresholds are
# calibrated and adapt online, their scores are drawn against them. The sensor detector is a fixed rule.
ModelDetector = Literal["reconstruction", "forecast"]
Detector = Literal[ModelDetector, "sensor"]
# Every detector of a unit, in the order their scores and metrics are listed.
DETECTORS: tuple[Detector, ...] = get_args(Detector)
MODEL_DETECTORS: tuple[ModelDetector, ...] = get_args(ModelDetector)
AlertState = Literal["firing", "resolved"]
ALERT_STATES: tuple[AlertState, ...] = get_args(AlertState)
Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)


@dataclass(frozen=True, slots=True)
class Reading:
    """Validated readings of one unit at one event time (one or more of its sensors)."""

    unit: str
    ts: float  # event time, epoch seconds
    values: Mapping[str, float]  # sensor -> finite value; only configured sensors
    received_at: float  # wall clock (time.time()) when the message arrived
    # (sensor, value) refused as outside the sensor's configured limits (monitor.validation), not in ``values``:
    # the buffers count each as an ``out_of_range`` value and treat the sensor as missing, but out of range, for
    # the row. A message whose every value is out of range has empty ``values`` and is refused whole there.
    out_of_range: tuple[tuple[str, float], ...] = ()
    # The payload's ``sent`` (monitor.wire.payloads): the publisher's wall clock at publication; NaN when absent.
    sent_at: float = math.nan

    @property
    def source_time(self) -> float:
        """When this reading left its source: ``sent_at`` when the payload said, else its event time (a gateway
        stamps ``ts`` as it sends); what plantwatch_publish_to_score_seconds is measured from."""
        return self.sent_at if self.sent_at == self.sent_at else self.ts


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message (or one value of it) that was refused, and why."""

    reason: RejectReason
    detail: str  # human-readable, for rate-limited logs; never a metric label
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class WindowJob:
    """A complete window of one unit, due for scoring."""

    unit: str
    end_ts: float  # event time of the window's newest row
    window: npt.NDArray[np.float32]  # [W, S] raw values, rows oldest -> newest, sensors in config order
    received_at: float  # arrival time of the reading that completed the newest row
    # When the newest reading in the newest row left its source (Reading.source_time: the payload's ``sent``, else
    # its event time). As event time it differs from end_ts (the row's time) when a source samples off the row
    # grid; a row that received nothing has end_ts.
    source_ts: float
    # False: a health-only record, a closed row whose window holds a row past the hold-over (counted as a skipped
    # "gap" window). The models never score it; only the sensor detector does, and ``window`` is then just the
    # newest row [1, S] (NaN for the sensors past their hold-over).
    valid: bool = True
    # Sensors (config order) with no value for longer than the unit's hold-over at this row: they are silent.
    silent: tuple[str, ...] = ()
    # (sensor, newest refused value), config order: sensors whose latest evidence at this row is a value refused as
    # outside their limits (held over in ``window``, or NaN past the hold-over); never also in ``silent``.
    out_of_range: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Score:
    """One scored window of one unit by one detector."""

    unit: str
    detector: Detector
    model: str  # model name from the config, a bounded label
    ts: float  # event time of the scored row
    score: float
    threshold: float
    sensor_errors: Mapping[str, float]  # sensor -> contribution to the score
    received_at: float
    source_ts: float  # WindowJob.source_ts of the scored window: publish-to-score is measured from it
    attention_steps: tuple[int, ...] = ()  # steps back from ts the model weighed most, if it has attention
    # Calibrated levels of the same score (the model's artifact): an episode resolves under resolve_level and is
    # critical above critical_level. NaN: not calibrated, the alert policy's ratios of the threshold apply.
    resolve_level: float = math.nan
    critical_level: float = math.nan
    # Sensors whose newest value lies outside the model's training envelope (the model never saw this range).
    outside_envelope: tuple[str, ...] = ()
    # The sensor detector: what is wrong with the top sensor ("silent", "stuck", "spikes", "out_of_range"); "" else.
    reason: str = ""
    # Scored by the unit's shadow candidate (UnitConfig.shadow): its own trackers and metrics, never published.
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change of one unit's alert state (or a re-notification), as published on MQTT."""

    alert_id: str  # stable for one episode: the same id on firing, re-notify and resolved
    unit: str
    state: AlertState
    detector: Detector
    ts: float  # event time of this event
    started_at: float  # event time the episode started
    score: float
    threshold: float
    severity: Severity
    sensors: tuple[tuple[str, float], ...]  # top contributors and their share of the score, largest first
    model: str
    attention_steps: tuple[int, ...] = ()
    reason: str = ""  # Score.reason of the sensor detector ("silent", "stuck", "spikes", "out_of_range"); "" otherwise
    calibrated_threshold: float = math.nan  # the artifact's threshold; ``threshold`` is the adapted one in force
    outside_envelope: tuple[str, ...] = ()  # sensors outside the model's training envelope at this event

    @property
    def normalized_score(self) -> float:
        """score / threshold: above 1 is anomalous, whatever the detector's own scale."""
        return self.score / self.threshold if self.threshold > 0 else math.nan


@dataclass(frozen=True, slots=True)
class Forecast:
    """A forecaster's output for one unit, made at the window ending at ``ts`` (published, and kept by scoring)."""

    unit: str
    model: str  # forecaster name from the config
    ts: float  # event time of the window's newest row; step h targets ts + h * period_s
    period_s: float
    values: npt.NDArray[np.float32]  # [H, S] raw units, sensors in config order
    received_at: float
