"""The service-wide sections: MQTT and TLS, metrics, the scheduler, limits, restart state, outputs, recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.config.base import Strict
from monitor.wire.topics import OUTPUT_PREFIX, READINGS_TOPIC, SENSOR_TOPIC


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
