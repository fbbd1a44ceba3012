"""The whole configuration, PlantwatchConfig: the sections together, overridden by the environment."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.config.service import (
    LimitsConfig,
    MetricsConfig,
    MqttConfig,
    OutputsConfig,
    RecordingConfig,
    SchedulerConfig,
    StateConfig,
)
from monitor.config.units import UnitConfig


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
