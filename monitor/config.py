"""The service's configuration: one pydantic model tree, loaded from YAML, overridden by the environment.

API:
    load_config(path) -> PlantwatchConfig     # raises ConfigError listing "field.path: message" per error
    ConfigError(errors: list[str])            # .errors; str() joins them one per line
    PlantwatchConfig.model_validate(dict)     # programmatic (tests): same validation, environment included
    mask_secrets(cfg) -> dict                 # JSON-able dump with every secret replaced by "**********"

Precedence rises from YAML to the environment: ``PLANTWATCH__MQTT__HOST=broker`` overrides ``mqtt.host``
(pydantic-settings, nested delimiter ``__``). Secrets are ``SecretStr``: never logged or printed in clear.
The MQTT password comes from ``PLANTWATCH__MQTT__PASSWORD`` or from ``mqtt.password_file``; a ``mqtt.password``
in the YAML file is an error (load_config), since a config file is copied, diffed and shown in reviews.
Every model rejects unknown keys, so a typo is an error, not an ignored setting. Relative file paths
(artifacts, TLS files, password file, the recording's directory) are resolved against the config file's directory.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.wire.topics import OUTPUT_PREFIX, READINGS_TOPIC, SENSOR_TOPIC

UNIT_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
SENSOR_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MASK = "**********"


class ConfigError(ValueError):
    """An invalid configuration: one "field.path: message" line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
        default=True, description="The `sensor` detector: alerts naming a silent, stuck or out-of-range sensor."
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


class TlsConfig(Strict):
    ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the broker's certificate (system if unset)."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Client private key (mutual TLS).")
    insecure: bool = Field(default=False, description="Skip host name verification (logged as a warning; tests only).")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be set together")
        return self


class TopicsConfig(Strict):
    readings: str = Field(default=READINGS_TOPIC, description="Per-unit readings topic template.")
    sensor: str | None = Field(
        default=SENSOR_TOPIC, description="Per-sensor topic template; null to not subscribe to it."
    )
    prefix: str = Field(default=OUTPUT_PREFIX, description="Prefix of every topic the service publishes.")

    @field_validator("readings", "sensor", "prefix")
    @classmethod
    def _no_wildcards(cls, value: str | None) -> str | None:
        if value is not None and ("#" in value or "+" in value or value == ""):
            raise ValueError("must be a non-empty topic without MQTT wildcards (+, #)")
        return value

    @model_validator(mode="after")
    def _placeholders(self) -> Self:
        if self.readings.count("{unit}") != 1 or "{sensor}" in self.readings:
            raise ValueError("readings must contain {unit} once and no {sensor}")
        if self.sensor is not None and (self.sensor.count("{unit}") != 1 or self.sensor.count("{sensor}") != 1):
            raise ValueError("sensor must contain {unit} and {sensor} once each")
        return self


class MqttConfig(Strict):
    host: str = Field(default="localhost", min_length=1, description="Broker host name or IP.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 for TLS by convention).")
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version: 5 or 3.1.1.")
    client_id: str = Field(
        default="plantwatch",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Fixed client id: the broker keeps this session's queue across restarts. Unique per instance.",
    )
    username: str | None = Field(default=None, description="User name, if the broker requires one.")
    password: SecretStr | None = Field(
        default=None,
        description="Password: from PLANTWATCH__MQTT__PASSWORD only; in the YAML file it is an error (use "
        "password_file).",
    )
    password_file: Path | None = Field(default=None, description="File holding the password (first line).")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; unset means plain TCP.")
    qos: Literal[0, 1, 2] = Field(default=1, description="QoS of the subscriptions and of published alerts.")
    keepalive_s: int = Field(default=30, ge=5, le=65535, description="MQTT keepalive interval.")
    session_expiry_s: int = Field(
        default=3600, ge=0, description="MQTT 5 session expiry: how long the broker queues readings while we are away."
    )
    topics: TopicsConfig = Field(default=TopicsConfig(), description="Input templates and output prefix.")
    reconnect_min_s: float = Field(default=1.0, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Cap of the doubling reconnect delay.")
    max_queued_messages: int = Field(
        default=10000, ge=1, description="Bound of paho's outgoing queue while disconnected (newest dropped, counted)."
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        # YAML reads `protocol: 5` as an int.
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    def resolved_password(self) -> str | None:
        """The password in clear, for the MQTT client only (from the value or the file)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            lines = self.password_file.read_text().splitlines()
            return lines[0] if lines else ""
        return None


class MetricsConfig(Strict):
    host: str = Field(
        default="127.0.0.1", description="Bind address of /metrics, /healthz, /readyz (loopback by default)."
    )
    port: int = Field(default=9108, ge=0, le=65535, description="Port of the metrics server (0: any free port).")


class SchedulerConfig(Strict):
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: CUDA when present, else CPU.")
    # 256: as fast per window as 512 on the CPU (benchmarks/models.py), and oneDNN's workspace for a 512 batch
    # added ~20 MiB of RSS at 1,000 units (benchmarks/memory.py).
    max_batch: int = Field(default=256, ge=1, description="Most windows per model forward.")
    max_delay_ms: float = Field(default=20.0, ge=0, description="Longest a ready window waits for a fuller batch.")
    precision: Literal["fp32", "fp16", "bf16"] = Field(
        default="fp32",
        description="Inference precision on CUDA, checked per model against fp32 at load (scores within 2 % of the "
        "threshold, else refused); the CPU scores the fp32 ONNX graph and refuses any other.",
    )
    # monitor/scorer.py says why: a batch beside paho's busy thread waited for the GIL for hundreds of ms.
    scorer: Literal["process", "thread"] = Field(
        default="process",
        description="process: scoring, alerts and outputs run in a scorer process of their own, fed through shared "
        "memory; thread: all in one process (tests, tiny installs).",
    )
    max_lag_s: float = Field(
        default=2.0,
        gt=0,
        description="When behind: a window that arrived longer ago than this is dropped (counted) if its unit has "
        "a newer one waiting.",
    )
    cpu_threads: int = Field(
        default=1,
        ge=0,
        description="Intra-op threads for CPU scoring, ONNX Runtime's (and torch's, for an artifact without an ONNX "
        "graph; 0: the runtime's default, one per core). One is fastest when ingest, buffers and the broker share "
        "the cores (benchmarks/latency.py, measured with torch).",
    )
    # monitor/probation.py says why these two, whichever is later.
    reload_probation_windows: int = Field(
        default=100,
        ge=0,
        description="After a reload (SIGHUP) the previous models are kept until each new model has scored this "
        "many complete windows; a NaN / inf output before then swaps them back.",
    )
    reload_probation_s: float = Field(
        default=60.0,
        ge=0,
        description="... and until this many seconds have passed since the reload (both 0: no probation).",
    )


class LimitsConfig(Strict):
    max_payload_bytes: int = Field(default=65536, ge=64, description="Larger payloads are refused before decoding.")
    ingest_queue: int = Field(
        default=100000, ge=1, description="Bound of the queue from the MQTT thread to the buffers."
    )
    job_queue: int = Field(default=10000, ge=1, description="Bound of the queue of windows waiting for scoring.")
    max_units: int = Field(default=5000, ge=1, description="Most units one instance accepts.")
    max_clock_skew_s: float = Field(
        default=120.0,
        ge=0,
        description="Readings further ahead of the clock are `future`; a unit's first reading further behind it "
        "waits for a few more of its kind (the clock guard).",
    )


class StateConfig(Strict):
    dir: Path | None = Field(
        default=None,
        description="Where the restart state lives (a journal of the readings taken, marks of what was scored): a "
        "killed service restarts with its buffers as they were and scores from its first new reading. None: no "
        "state, a restart begins with empty buffers (a window's length of readings before the first score).",
    )
    marks_every_s: float = Field(
        default=1.0,
        gt=0,
        description="Under load, how often the marks of what was scored are saved (an idle scheduler saves at "
        "once): what a kill can score twice.",
    )


class OutputsConfig(Strict):
    publish_scores: bool = Field(default=True, description="Publish every scored window on <prefix>/scores/{unit}.")
    publish_forecasts: bool = Field(default=True, description="Publish forecasts on <prefix>/forecast/{unit}.")


class RecordingConfig(Strict):
    """History from the service (monitor/recording): per unit, rotating files `plantwatch train --data` reads."""

    path: Path | None = Field(
        default=None,
        description="Directory of the recording: <path>/<unit>/rows-<UTC stamp>.csv (the aligned rows), "
        "alerts-<stamp>.jsonl, scores-<stamp>.csv. None: nothing is recorded.",
    )
    rows: bool = Field(default=True, description="Record each aligned row (ts, unit, the sensors' values).")
    alerts: bool = Field(default=True, description="Record the alert events (the backtest's alerts.jsonl format).")
    scores: bool = Field(
        default=False, description="Record every score (the backtest's scores.csv format; large: a line per detector)."
    )
    rotate_mb: float = Field(default=64.0, gt=0, description="A unit's file of a kind ends once it holds this many MB.")
    rotate_s: float = Field(default=86400.0, gt=0, description="... or once it is this many seconds old.")
    max_mb: float | None = Field(
        default=256.0,
        gt=0,
        description="Per unit and kind: the oldest files are deleted while they hold more than this many MB "
        "(rows of 8 sensors at 1 Hz: about 14 MB a day, so 256 MB keeps about 18 days; the disk can hold up to "
        "units x kinds recorded x max_mb). null: no size limit.",
    )
    max_age_s: float | None = Field(
        default=7_776_000.0,
        gt=0,
        description="Files last written longer ago than this are deleted (default 90 days). null: no age limit.",
    )
    flush_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="The writers write what is queued this often: what a killed process can lose at most.",
    )
    queue: int = Field(
        default=50000,
        ge=1,
        description="Records waiting per kind; beyond it new ones are dropped (plantwatch_recording_dropped_total).",
    )

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.max_mb is None and self.max_age_s is None:
            raise ValueError("a recording must be bounded: set max_mb or max_age_s (or both)")
        if self.max_mb is not None and self.rotate_mb > self.max_mb:
            raise ValueError(f"rotate_mb ({self.rotate_mb}) must not exceed max_mb ({self.max_mb})")
        if self.max_age_s is not None and self.rotate_s > self.max_age_s:
            raise ValueError(f"rotate_s ({self.rotate_s}) must not exceed max_age_s ({self.max_age_s})")
        return self


class PlantwatchConfig(BaseSettings):
    """The whole configuration; environment variables PLANTWATCH__SECTION__FIELD override the YAML."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="PLANTWATCH__",
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    units: list[UnitConfig] = Field(min_length=1, description="The monitored units.")
    mqtt: MqttConfig = Field(default=MqttConfig(), description="Broker connection and topics.")
    metrics: MetricsConfig = Field(default=MetricsConfig(), description="Prometheus and health endpoints.")
    scheduler: SchedulerConfig = Field(default=SchedulerConfig(), description="Batched inference.")
    limits: LimitsConfig = Field(default=LimitsConfig(), description="Bounds on input and memory.")
    outputs: OutputsConfig = Field(default=OutputsConfig(), description="Optional MQTT outputs.")
    state: StateConfig = Field(default=StateConfig(), description="Restart state (crash-only restarts).")
    recording: RecordingConfig = Field(
        default=RecordingConfig(), description="Recorded history per unit, for training (off unless a path is set)."
    )
    shutdown_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of a clean stop (SIGTERM/SIGINT).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the YAML (passed as init kwargs); no .env files, no secrets dir.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _units_consistent(self) -> Self:
        names = [u.name for u in self.units]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"unit names must be unique; repeated: {', '.join(duplicates)}")
        if len(self.units) > self.limits.max_units:
            raise ValueError(f"{len(self.units)} units configured, limits.max_units is {self.limits.max_units}")
        return self

    def unit(self, name: str) -> UnitConfig:
        """The unit called ``name`` (KeyError if none)."""
        for unit in self.units:
            if unit.name == name:
                return unit
        raise KeyError(name)


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{path}: {err['msg']}")
    return lines


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    expanded = path.expanduser()
    return expanded if expanded.is_absolute() else (base / expanded).resolve()


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make relative paths in the raw YAML relative to the config file's directory (in place)."""

    def fix(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            resolved = _resolve(Path(section[key]), base)
            section[key] = str(resolved)

    for unit in data.get("units") or []:
        if isinstance(unit, dict):
            fix(unit.get("detector"), "artifact")
            fix(unit.get("forecaster"), "artifact")
            shadow = unit.get("shadow")
            if isinstance(shadow, dict):
                fix(shadow.get("detector"), "artifact")
                fix(shadow.get("forecaster"), "artifact")
    fix(data.get("recording"), "path")
    mqtt = data.get("mqtt")
    if isinstance(mqtt, dict):
        fix(mqtt, "password_file")
        for key in ("ca_file", "cert_file", "key_file"):
            fix(mqtt.get("tls"), key)


def parse_config(data: dict[str, Any]) -> PlantwatchConfig:
    """Validate an already-loaded mapping (environment overrides applied); ConfigError on problems."""
    try:
        cfg = PlantwatchConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    problems = []
    if cfg.mqtt.password_file is not None and not cfg.mqtt.password_file.is_file():
        problems.append(f"mqtt.password_file: no such file: {cfg.mqtt.password_file}")
    if cfg.mqtt.tls is not None:
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(cfg.mqtt.tls, key)
            if path is not None and not Path(path).is_file():
                problems.append(f"mqtt.tls.{key}: no such file: {path}")
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path) -> PlantwatchConfig:
    """Read, validate and return the configuration in ``path``; ConfigError lists every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"(file): cannot read {path}: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"(file): invalid YAML in {path}: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"(root): expected a mapping at the top of {path}, got {type(data).__name__}"])
    _resolve_paths(data, path.resolve().parent)
    in_file = _secrets_in_file(data)
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        raise ConfigError(in_file + exc.errors) from None
    if in_file:
        raise ConfigError(in_file)
    return cfg


def _secrets_in_file(data: dict[str, Any]) -> list[str]:
    """A password written in the YAML file, as an error line (never its value); removed from ``data``.

    Removed so that validation does not also report "password or password_file, not both" for it, and so the
    value goes no further than this function.
    """
    mqtt = data.get("mqtt")
    if not isinstance(mqtt, dict) or mqtt.pop("password", None) is None:
        return []
    return [
        "mqtt.password: a password does not belong in the config file; set the environment variable "
        "PLANTWATCH__MQTT__PASSWORD or point mqtt.password_file at a file readable only by the service"
    ]


def check_artifacts(cfg: PlantwatchConfig) -> list[str]:
    """Paths of configured artifact directories that do not exist, as "field.path: message" lines."""
    problems = []
    for i, unit in enumerate(cfg.units):
        for role in ("detector", "forecaster"):
            ref: ModelRef | None = getattr(unit, role)
            if ref is not None and not (ref.artifact / "manifest.json").is_file():
                problems.append(f"units.{i}.{role}.artifact: no artifact (manifest.json) in {ref.artifact}")
    return problems


def check_shadow_artifacts(cfg: PlantwatchConfig) -> list[str]:
    """As check_artifacts, for the shadow candidates: warnings (the service runs without a missing shadow)."""
    problems = []
    for i, unit in enumerate(cfg.units):
        for role, ref in unit.shadow_refs().items():
            if not (ref.artifact / "manifest.json").is_file():
                problems.append(f"units.{i}.shadow.{role}.artifact: no artifact (manifest.json) in {ref.artifact}")
    return problems


def with_model_sections(cfg: PlantwatchConfig, new: PlantwatchConfig) -> PlantwatchConfig:
    """``cfg`` with each unit's detector, forecaster and shadow taken from ``new`` (what a SIGHUP applies).

    ValueError when ``new`` does not configure the same units in the same order."""
    if [u.name for u in new.units] != [u.name for u in cfg.units]:
        raise ValueError("a reload cannot add, remove or reorder units; restart the service for that")
    units = [
        old.model_copy(update={"detector": fresh.detector, "forecaster": fresh.forecaster, "shadow": fresh.shadow})
        for old, fresh in zip(cfg.units, new.units, strict=True)
    ]
    return cfg.model_copy(update={"units": units})


def mask_secrets(cfg: PlantwatchConfig) -> dict[str, Any]:
    """The configuration as plain JSON-able data, with every secret masked."""
    data: dict[str, Any] = cfg.model_dump(mode="json")
    if cfg.mqtt.password is not None:
        data["mqtt"]["password"] = MASK
    return data
