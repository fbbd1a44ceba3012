"""The per-unit sections: a unit's sensors, models (active and shadow), alert policy and sensor-health rules."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from monitor.config.base import SENSOR_NAME_PATTERN, UNIT_NAME_PATTERN, Strict


class ModelRef(Strict):
    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Model name: the `model` metric label and alert field."
    )
    artifact: Path = Field(description="Artifact directory (manifest.json + weights.safetensors).")


class AdaptiveThresholdConfig(Strict):
    enabled: bool = Field(
        default=True, description="Thresholds follow the normal score distribution online (SPOT with guards)."
    )
    target_far: float = Field(
        default=1e-4, gt=0, lt=1, description="Share of normal windows the adapted threshold lets through."
    )
    max_drift_per_hour: float = Field(
        default=0.1, ge=0, description="Most the threshold moves per hour, as a share of the calibrated one."
    )
    floor: float = Field(default=1.0, gt=0, le=1, description="Lowest threshold, as a multiple of the calibrated.")
    ceiling: float = Field(default=2.0, ge=1, description="Highest threshold, as a multiple of the calibrated.")
    guard_s: float = Field(
        default=600.0, ge=0, description="No learning this long after an episode resolved (event time)."
    )
    max_peaks: int = Field(default=100, ge=2, description="Peaks over the base level kept for the tail fit.")
    min_peaks: int = Field(default=30, ge=2, description="Peaks needed before the threshold moves.")

    @model_validator(mode="after")
    def _peaks(self) -> Self:
        if self.min_peaks > self.max_peaks:
            raise ValueError(f"min_peaks ({self.min_peaks}) must not exceed max_peaks ({self.max_peaks})")
        return self


class AlertsConfig(Strict):
    fire_hits: int = Field(
        default=3, ge=1, description="Fire when this many of the last `fire_window` windows are over."
    )
    fire_window: int = Field(default=5, ge=1, description="Number of recent windows the fire rule looks at.")
    resolve_hits: int = Field(
        default=10, ge=1, description="Resolve after this many consecutive windows under the resolve level."
    )
    resolve_ratio: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Resolve level as a fraction of the threshold, for artifacts without a calibrated one.",
    )
    min_duration_s: float = Field(
        default=30.0, ge=0, description="An episode stays firing at least this long (event time)."
    )
    renotify_s: float = Field(
        default=600.0, ge=0, description="Re-publish a firing alert this often while it lasts; 0 = never."
    )
    critical_ratio: float = Field(
        default=2.0,
        ge=1,
        description="Severity `critical` above this multiple of the threshold, for artifacts without a level.",
    )
    fire_evidence: float = Field(
        default=5.0,
        ge=0,
        allow_inf_nan=False,
        description="Model detectors also need this much accumulated normalised excess (a CUSUM of score / "
        "threshold - 1) to fire: a big exceedance brings it at once, a minute a few per cent over does not; 0 = "
        "the k-of-n rule alone.",
    )
    outside_envelope: Literal["alert", "warn", "suppress"] = Field(
        default="warn",
        description="Model alerts while the unit is outside the training envelope: as usual, warning at most, "
        "or not at all.",
    )
    adaptive: AdaptiveThresholdConfig = Field(
        default=AdaptiveThresholdConfig(), description="Online threshold adaptation."
    )

    @model_validator(mode="after")
    def _hits_fit_window(self) -> Self:
        if self.fire_hits > self.fire_window:
            raise ValueError(f"fire_hits ({self.fire_hits}) must not exceed fire_window ({self.fire_window})")
        return self


class SensorLimits(Strict):
    min: float = Field(description="Lowest physically possible value (raw units).")
    max: float = Field(description="Highest physically possible value (raw units).")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min < self.max):
            raise ValueError(f"need finite min < max, got min {self.min}, max {self.max}")
        return self


class SensorHealthConfig(Strict):
    enabled: bool = Field(
        default=True,
        description="The `sensor` detector: alerts naming a silent, stuck, spiking or out-of-range sensor.",
    )
    silent: bool = Field(default=True, description="Alert on a sensor without a value for over `max_gap_periods`.")
    stuck: bool = Field(default=True, description="Alert on a flat-lined sensor.")
    stuck_rows: int = Field(
        default=0,
        ge=0,
        description="Rows the flat-line test looks at: the newest of the scored window (0: all of it, the unit's "
        "longest model window; never more). 1 is refused.",
    )
    stuck_std_ratio: float = Field(
        default=0.1,
        gt=0,
        description="Stuck when the standard deviation over those rows is under this share of the smallest window "
        "standard deviation in training (the artifact's envelope); a sensor flat in training is never stuck.",
    )
    stuck_constant: bool = Field(
        default=True,
        description="Without an envelope for the sensor (older artifacts): stuck when exactly constant over those "
        "rows; false: no stuck test then.",
    )
    spikes: bool = Field(
        default=True,
        description="Alert on a sensor whose value jumps away and straight back (an out-and-back of one row) in the "
        "rows the flat-line test looks at; artifacts without a training step scale have no spike test.",
    )
    spike_k: float = Field(
        default=6.0,
        gt=0,
        description="A spike: both the step into the row and the step out of it, in opposite directions, exceed this "
        "many training step scales (the robust spread of the sensor's row-to-row steps in the artifact's envelope) "
        "and the largest step in training.",
    )
    out_of_range: bool = Field(
        default=True, description="Alert on a value outside the unit's `limits` or far outside the training range."
    )
    envelope_range_k: float = Field(
        default=1.0,
        ge=0,
        description="Out of range beyond the training [min, max] widened by this many spans (max - min) on each "
        "side (with an envelope).",
    )
    envelope_margin: float | None = Field(
        default=0.05,
        ge=0,
        description="Model scores and alerts list the sensors outside the training [min, max] widened by this share "
        "of the span (not an alert); null: off. Independent of `enabled`.",
    )

    @field_validator("stuck_rows")
    @classmethod
    def _stuck_rows(cls, value: int) -> int:
        if value == 1:
            raise ValueError("stuck_rows must be 0 (the whole window) or at least 2")
        return value


class ShadowConfig(Strict):
    """Candidate artifacts that score a unit's windows beside its active models, alerting nowhere but in metrics and
    records (README "Shadow models"). Promotion: make the candidate the unit's detector / forecaster, SIGHUP."""

    detector: ModelRef | None = Field(
        default=None, description="Candidate reconstruction detector, scored beside `detector`."
    )
    forecaster: ModelRef | None = Field(
        default=None, description="Candidate forecaster, scored beside `forecaster` (or alone, when there is none)."
    )

    @model_validator(mode="after")
    def _names_one(self) -> Self:
        if self.detector is None and self.forecaster is None:
            raise ValueError("a shadow names a detector, a forecaster or both")
        return self


class UnitConfig(Strict):
    name: str = Field(
        pattern=UNIT_NAME_PATTERN, description="Unit id: topic segment and metric label (letters, digits, _ -)."
    )
    sensors: list[str] = Field(min_length=1, description="Sensor names in the order the models expect them.")
    period_s: float = Field(
        default=1.0, gt=0, description="Sampling period: readings are aligned to rows of this length."
    )
    row_origin_s: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="A time (epoch s) on the unit's row grid; only its phase in period_s counts. "
        "Unset: the phase of the unit's first reading.",
    )
    max_lateness_s: float = Field(
        default=5.0, ge=0, description="Readings up to this much behind the newest are placed."
    )
    max_gap_periods: int = Field(
        default=3,
        ge=0,
        description="A missing sensor is held over for at most this many rows; then the window is skipped.",
    )
    detector: ModelRef = Field(description="Reconstruction detector artifact (scores every new row).")
    forecaster: ModelRef | None = Field(
        default=None, description="Forecaster artifact (forecasts + residual detector)."
    )
    shadow: ShadowConfig | None = Field(
        default=None,
        description="Candidate models scored beside the active ones: their would-be alerts are counted and "
        "recorded, never published.",
    )
    alerts: AlertsConfig = Field(default=AlertsConfig(), description="Alert policy for every detector.")
    limits: dict[str, SensorLimits] = Field(
        default_factory=dict,
        description="Physical limits per sensor name, inclusive: a value outside is refused (`out_of_range`), the "
        "sensor counts as missing for that row, and the sensor detector names it; optional.",
    )
    sensor_health: SensorHealthConfig = Field(
        default=SensorHealthConfig(), description="The sensor detector's rules and the envelope check."
    )

    @field_validator("sensors")
    @classmethod
    def _sensor_names(cls, sensors: list[str]) -> list[str]:
        for name in sensors:
            if not re.match(SENSOR_NAME_PATTERN, name):
                raise ValueError(f"sensor name {name!r} must match {SENSOR_NAME_PATTERN}")
        if len(set(sensors)) != len(sensors):
            raise ValueError("sensor names must be unique")
        return sensors

    @model_validator(mode="after")
    def _limits_of_own_sensors(self) -> Self:
        unknown = sorted(set(self.limits) - set(self.sensors))
        if unknown:
            raise ValueError(f"limits name sensors the unit does not have: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _shadow_is_another_model(self) -> Self:
        if self.shadow is None:
            return self
        for role in ("detector", "forecaster"):
            active, candidate = getattr(self, role), getattr(self.shadow, role)
            if active is not None and candidate is not None and active.name == candidate.name:
                raise ValueError(f"shadow.{role} must have another name than the active {role} ({active.name!r})")
        return self

    def shadow_refs(self) -> dict[str, ModelRef]:
        """The unit's shadow candidates by role ("detector", "forecaster"); empty without a shadow."""
        if self.shadow is None:
            return {}
        refs = {"detector": self.shadow.detector, "forecaster": self.shadow.forecaster}
        return {role: ref for role, ref in refs.items() if ref is not None}
