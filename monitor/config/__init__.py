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

Layout: base.py (ConfigError, the strict base, name patterns), units.py (a unit's sections), service.py (the
service-wide sections), settings.py (PlantwatchConfig), loading.py (load/parse, checks, SIGHUP merge, masking).
"""

from monitor.config.base import MASK, SENSOR_NAME_PATTERN, UNIT_NAME_PATTERN, ConfigError, Strict
from monitor.config.loading import (
    check_artifacts,
    check_shadow_artifacts,
    load_config,
    mask_secrets,
    parse_config,
    with_model_sections,
)
from monitor.config.service import (
    LimitsConfig,
    MetricsConfig,
    MqttConfig,
    OutputsConfig,
    RecordingConfig,
    SchedulerConfig,
    StateConfig,
    TlsConfig,
    TopicsConfig,
)
from monitor.config.settings import PlantwatchConfig
from monitor.config.units import (
    AdaptiveThresholdConfig,
    AlertsConfig,
    ModelRef,
    SensorHealthConfig,
    SensorLimits,
    ShadowConfig,
    UnitConfig,
)

__all__ = [
    "MASK",
    "SENSOR_NAME_PATTERN",
    "UNIT_NAME_PATTERN",
    "AdaptiveThresholdConfig",
    "AlertsConfig",
    "ConfigError",
    "LimitsConfig",
    "MetricsConfig",
    "ModelRef",
    "MqttConfig",
    "OutputsConfig",
    "PlantwatchConfig",
    "RecordingConfig",
    "SchedulerConfig",
    "SensorHealthConfig",
    "SensorLimits",
    "ShadowConfig",
    "StateConfig",
    "Strict",
    "TlsConfig",
    "TopicsConfig",
    "UnitConfig",
    "check_artifacts",
    "check_shadow_artifacts",
    "load_config",
    "mask_secrets",
    "parse_config",
    "with_model_sections",
]
