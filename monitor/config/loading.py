"""Reading a config: YAML to PlantwatchConfig with paths resolved and errors by key path; the artifact checks;
the SIGHUP merge; the masked dump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.base import MASK, ConfigError
from monitor.config.settings import PlantwatchConfig
from monitor.config.units import ModelRef


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
