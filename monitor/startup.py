"""What the service builds from its config before it connects, and every check that refuses a start.

API:
    preflight(cfg) -> Preflight        # every check run makes before it connects; StartupError names the key path
    load_models(cfg, device)           # the units' active models, one per name (the backtest's loader too)
    load_shadows(cfg, device, models)  # the shadow candidates that load and fit their unit; the rest refused
    state_dir_problem(directory)       # why state.dir cannot hold the restart state (None: it can)

Pre-flight parity: `plantwatch check-config` calls the same preflight() (and checks the metrics address on
port 0), so a config it passes is one App accepts, short of a busy port or the broker itself. The metrics port
is bound first, before the artifacts load, so a busy port fails before the slow part of the start.
plantwatch_ready is computed at every scrape from app.ready(), so it never waits for someone to call /readyz.

Artifacts: ``load_for_serving`` (models/serving.py: ONNX Runtime on the CPU, torch on CUDA) refuses anything
hostile with an ArtifactError, including a model whose probe batch (windows at its training mean) scores NaN / inf;
at start that is a StartupError (one line, exit 2), on SIGHUP one ERROR line, ``model_reloads{result="error"}``
and the old models keep scoring.
A model that later scores live complete windows as NaN / inf makes ``ready()`` false, naming it
(ScoringEngine.failing_models), until its windows score finite again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.alerts.policy import AlertPolicy
from monitor.buffers.unit_spec import UnitSpec
from monitor.config import PlantwatchConfig
from monitor.mqtt import client_settings_problem
from monitor.params import specs_from_config
from monitor.scoring import ScoringEngine
from monitor.scoring_records import UnitModels

if TYPE_CHECKING:
    import torch

    from models.model_api import ScoringModel

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service cannot start with this configuration (bad device, missing or invalid artifact)."""


def load_models(cfg: PlantwatchConfig, device: torch.device | str) -> dict[str, ScoringModel]:
    """Every configured artifact, loaded once per model name; StartupError names the unit and path.

    models.serving.load_for_serving picks the runtime: on the CPU the artifact's ONNX graph in ONNX Runtime (no
    torch; an artifact without one is scored by torch, with a WARNING saying how to upgrade it), on CUDA torch in
    ``scheduler.precision``. A precision other than fp32 with a configured device that is the CPU is refused here
    (ONNX Runtime scores fp32); a CUDA service reloading after its out-of-memory fallback to the CPU loads fp32.
    """
    from models.artifact_io import ArtifactError  # not models.artifacts: that module is the torch half
    from models.device import is_cpu, serving_device
    from models.serving import load_for_serving

    precision = cfg.scheduler.precision
    if is_cpu(device) and precision != "fp32":
        if is_cpu(serving_device(cfg.scheduler.device)):
            raise StartupError(
                f"scheduler.precision: {precision} applies on CUDA only; on the CPU the models run in ONNX Runtime "
                "in fp32 (set fp32, or score on a CUDA device)"
            )
        precision = "fp32"
    paths: dict[str, str] = {}
    models: dict[str, ScoringModel] = {}
    for i, unit in enumerate(cfg.units):
        for role in ("detector", "forecaster"):
            ref = getattr(unit, role)
            if ref is None:
                continue
            path = str(ref.artifact)
            if ref.name in paths:
                if paths[ref.name] != path:
                    raise StartupError(
                        f"units.{i}.{role}: model {ref.name!r} is configured with two artifacts: {paths[ref.name]} "
                        f"and {path}"
                    )
                continue
            try:
                # ArtifactError for anything an artifact holds (a precision CUDA cannot hold to included)
                loaded = load_for_serving(path, device, precision=precision, cpu_threads=cfg.scheduler.cpu_threads)
            except ArtifactError as exc:  # its message names the artifact's path
                raise StartupError(f"units.{i}.{role}.artifact: {exc}") from exc
            except OSError as exc:
                raise StartupError(f"units.{i}.{role}.artifact: cannot load {path}: {exc}") from exc
            models[ref.name] = loaded
            paths[ref.name] = path
            if abs(models[ref.name].period_s - unit.period_s) > 1e-9:
                log.warning(
                    "model %s was trained at period %.3g s, unit %s samples every %.3g s",
                    ref.name,
                    models[ref.name].period_s,
                    unit.name,
                    unit.period_s,
                )
    return models


@dataclass(frozen=True)
class ShadowLoad:
    """The units' shadow candidates as loaded: the models, and those refused (the service runs without them)."""

    models: dict[str, ScoringModel]
    problems: tuple[str, ...]  # one "key.path: reason" line per refused candidate
    refused: frozenset[tuple[str, str]]  # (unit, role) of each refused candidate


def load_shadows(cfg: PlantwatchConfig, device: torch.device | str, models: Mapping[str, ScoringModel]) -> ShadowLoad:
    """The units' shadow candidates (UnitConfig.shadow) that load and fit their unit; a candidate that does not is
    refused, never an error: the service runs without it (README "Shadow models").

    ``models``: the active ones (load_models); a candidate named as one of them is that model, if the artifact is
    the same."""
    from models.artifact_io import ArtifactError
    from models.device import is_cpu
    from models.serving import load_for_serving

    known = {ref.name: str(ref.artifact) for u in cfg.units for ref in (u.detector, u.forecaster) if ref is not None}
    shadows: dict[str, ScoringModel] = {}
    problems: list[str] = []
    refused: set[tuple[str, str]] = set()
    precision = "fp32" if is_cpu(device) else cfg.scheduler.precision
    for i, unit in enumerate(cfg.units):
        for role, ref in unit.shadow_refs().items():
            key, path = f"units.{i}.shadow.{role}", str(ref.artifact)
            problem = None
            model = models.get(ref.name) or shadows.get(ref.name)
            if known.setdefault(ref.name, path) != path:
                problem = f"{key}: model {ref.name!r} is configured with two artifacts: {known[ref.name]} and {path}"
            elif model is None:
                try:
                    model = load_for_serving(path, device, precision=precision, cpu_threads=cfg.scheduler.cpu_threads)
                except (ArtifactError, OSError) as exc:  # an ArtifactError's message names the path
                    problem = f"{key}.artifact: {exc}"
            if problem is None and model is not None:
                if model.role != role:
                    problem = f"{key}: model {ref.name!r} ({path}) is a {model.role}, configured as the {role}"
                elif sorted(model.sensors) != sorted(unit.sensors):
                    problem = f"{key}: model {ref.name!r} was trained on other sensors than unit {unit.name} has"
            if problem is not None or model is None:
                problems.append(problem or f"{key}: not loaded")
                refused.add((unit.name, role))
            elif ref.name not in models:
                shadows[ref.name] = model
    return ShadowLoad(shadows, tuple(problems), frozenset(refused))


def _check_units_against_models(cfg: PlantwatchConfig, models: dict[str, ScoringModel]) -> None:
    """Each unit's models: the role it is configured in, and the unit's sensors (StartupError names the key).

    ScoringEngine refuses the same (it names the unit); checked here first to name the key path.
    """
    for i, unit in enumerate(cfg.units):
        for role in ("detector", "forecaster"):
            ref = getattr(unit, role)
            if ref is None:
                continue
            model = models[ref.name]
            if model.role != role:
                raise StartupError(
                    f"units.{i}.{role}: model {ref.name!r} ({ref.artifact}) is a {model.role}, configured as the {role}"
                )
            if sorted(model.sensors) != sorted(unit.sensors):
                lacking = [s for s in model.sensors if s not in unit.sensors]
                unknown = [s for s in unit.sensors if s not in model.sensors]
                raise StartupError(
                    f"units.{i}.sensors: model {ref.name!r} ({role}) was trained on other sensors than unit "
                    f"{unit.name} has (the unit lacks: {', '.join(lacking) or '-'}; the model lacks: "
                    f"{', '.join(unknown) or '-'})"
                )


@dataclass(frozen=True)
class Preflight:
    """What the service builds from the config before it connects."""

    device: torch.device | str  # "cpu" as a string: resolved without torch (models.device.serving_device)
    models: dict[str, ScoringModel]
    specs: dict[str, UnitSpec]
    policies: dict[str, AlertPolicy]
    units: dict[str, UnitModels]
    # A shadow candidate that did not load or fit its unit, "key.path: reason": the service runs without it.
    shadow_problems: tuple[str, ...] = ()


def state_dir_problem(directory: Path | None) -> str | None:
    """Why ``state.dir`` cannot hold the restart state (None: it can, or none is configured). Creates nothing."""
    if directory is None:
        return None
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the directory is made at start: its nearest existing parent must be writable
    if not existing.is_dir():
        return f"state.dir: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"state.dir: {existing} is not writable by this user"
    return None


def preflight(cfg: PlantwatchConfig) -> Preflight:
    """Every check `run` makes before it connects, short of binding the metrics port; StartupError otherwise.

    In order: the MQTT client settings (password file, TLS files), the restart state's directory (writable),
    the scoring device, every artifact (loaded; one model name, one artifact), each unit against its models
    (role, sensors), the units' buffer and alert parameters and the scoring engine built from them. App and
    `plantwatch check-config` both call this, so what one refuses the other does, with the same one-line
    "key.path: reason" message.
    """
    from models.device import serving_device

    problem = client_settings_problem(cfg.mqtt) or state_dir_problem(cfg.state.dir)
    if problem is not None:
        raise StartupError(problem)
    try:
        device = serving_device(cfg.scheduler.device)  # "cpu" without importing torch, unless NVIDIA is there
    except ValueError as exc:
        raise StartupError(f"scheduler.device: {exc}") from exc
    models = load_models(cfg, device)
    _check_units_against_models(cfg, models)
    shadows = load_shadows(cfg, device, models)
    models.update(shadows.models)
    try:
        specs, policies, units = specs_from_config(cfg, models, shadows.refused)
        ScoringEngine(units, models)  # its own checks; App builds the one it scores with around timed models
    except ValueError as exc:
        raise StartupError(str(exc)) from exc
    return Preflight(device, models, specs, policies, units, shadows.problems)
