"""Scenario files (YAML): which units to simulate, how they differ, and which faults to inject.

Example (see config/scenarios/ for more)::

    name: demo
    profile: reactor        # reactor (the CSTR) or seed (the tutorial's sine waves)
    period_s: 1             # sampling period
    units:                  # a count, a list of names, or {count: N, prefix: "reactor-"}
      names: [reactor-1, reactor-2]
    spread: 0.05            # relative spread of unit parameters
    disturbances: 1.0       # scale of the slow feed and ambient disturbances (0 = none)
    noise: 1.0              # scale of measurement noise (0 = none)
    faults:
      - {kind: bias, unit: reactor-1, start: 60, duration: 5m, magnitude: 3.0, sensors: [reactor_temp_K]}
      - {kind: cooling_degradation, unit: reactor-2, start: 1h, duration: 2h}

Durations are seconds or text with a unit: ``90``, ``90s``, ``5m``, ``1.5h``, ``3h40m``, ``2d``
(monitor.wire.durations).
Every problem raises :class:`ScenarioError` naming the field, e.g.
``faults[0].kind: unknown fault kind 'bais'; valid kinds: bias, drift, ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from monitor.wire.durations import parse_duration as wire_parse_duration
from simulators.faults import (
    DEFAULT_FAULT_SENSOR,
    FAULT_KINDS,
    PROCESS_FAULT_KINDS,
    PROCESS_FAULT_SENSORS,
    REACTOR_SENSOR_SCALES,
    SENSOR_FAULT_KINDS,
    Fault,
    default_magnitude,
)
from simulators.reactor import REACTOR_SENSORS
from simulators.seed_profile import SEED_SENSOR_SCALES, SEED_SENSORS

PROFILES: dict[str, tuple[str, ...]] = {"reactor": REACTOR_SENSORS, "seed": SEED_SENSORS}
_SCALES: dict[str, dict[str, float]] = {"reactor": REACTOR_SENSOR_SCALES, "seed": SEED_SENSOR_SCALES}
_TOP_KEYS = {"name", "profile", "period_s", "step_s", "units", "spread", "disturbances", "noise", "faults", "seed"}
_FAULT_KEYS = {"kind", "unit", "start", "duration", "magnitude", "sensors"}
_BAD_UNIT_NAME = re.compile(r"[/+#\s]")


class ScenarioError(ValueError):
    """A scenario file or dict that cannot be simulated; the message names the field."""


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds from a number or text such as ``"90s"``, ``"5m"``, ``"3h40m"``, ``"2d"`` (monitor.wire.durations, the
    one rule for every duration); ScenarioError naming ``what`` otherwise."""
    try:
        return wire_parse_duration(value, what)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: what :func:`simulators.simulate` runs."""

    name: str
    profile: str
    units: tuple[str, ...]
    period_s: float = 1.0
    step_s: float = 5.0  # physics integration step (a multiple of period_s)
    spread: float = 0.05
    disturbances: float = 1.0
    noise: float = 1.0
    faults: tuple[Fault, ...] = field(default_factory=tuple)
    seed: int | None = None

    @property
    def sensors(self) -> tuple[str, ...]:
        return PROFILES[self.profile]


def _number(value: object, what: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value < minimum:
        raise ScenarioError(f"{what}: expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def _unit_names(raw: object) -> tuple[str, ...]:
    if isinstance(raw, bool):
        raise ScenarioError(f"units: expected a count, a list of names or {{count, prefix}}, got {raw!r}")
    if isinstance(raw, int):
        count, prefix, names = raw, "reactor-", None
    elif isinstance(raw, list):
        count, prefix, names = len(raw), "", [str(n) for n in raw]
    elif isinstance(raw, dict):
        unknown = set(raw) - {"count", "prefix", "names"}
        if unknown:
            raise ScenarioError(f"units: unknown key(s) {sorted(unknown)}; valid keys: count, names, prefix")
        if "names" in raw:
            if not isinstance(raw["names"], list):
                raise ScenarioError(f"units.names: expected a list of names, got {raw['names']!r}")
            count, prefix, names = len(raw["names"]), "", [str(n) for n in raw["names"]]
        else:
            count_raw = raw.get("count")
            if isinstance(count_raw, bool) or not isinstance(count_raw, int):
                raise ScenarioError(f"units.count: expected an integer, got {count_raw!r}")
            count, prefix, names = count_raw, str(raw.get("prefix", "reactor-")), None
    else:
        raise ScenarioError(f"units: expected a count, a list of names or {{count, prefix}}, got {raw!r}")
    if count < 1:
        raise ScenarioError(f"units: need at least one unit, got {count}")
    if names is None:
        width = max(2, len(str(count)))
        names = [f"{prefix}{i + 1:0{width}d}" for i in range(count)]
    for name in names:
        if not name or _BAD_UNIT_NAME.search(name):
            raise ScenarioError(f"units: {name!r} is not a valid unit name (no spaces, '/', '+' or '#')")
    if len(set(names)) != len(names):
        raise ScenarioError(f"units: duplicate unit names in {names}")
    return tuple(names)


def _fault(raw: object, index: int, profile: str, units: tuple[str, ...]) -> Fault:
    where = f"faults[{index}]"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected a mapping with kind, unit, start, duration, got {raw!r}")
    unknown = set(raw) - _FAULT_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {', '.join(sorted(_FAULT_KEYS))}")
    kind = raw.get("kind")
    if kind not in FAULT_KINDS:
        raise ScenarioError(f"{where}.kind: unknown fault kind {kind!r}; valid kinds: {', '.join(FAULT_KINDS)}")
    if kind in PROCESS_FAULT_KINDS and profile != "reactor":
        raise ScenarioError(f"{where}.kind: process fault {kind!r} needs profile 'reactor', not {profile!r}")
    unit = raw.get("unit", units[0] if len(units) == 1 else None)
    if unit is None:
        raise ScenarioError(f"{where}.unit: missing (the scenario has {len(units)} units)")
    unit = str(unit)
    if unit not in units:
        raise ScenarioError(f"{where}.unit: unknown unit {unit!r}; units: {', '.join(units[:10])}")
    if "start" not in raw or "duration" not in raw:
        raise ScenarioError(f"{where}: needs both start and duration")
    start_s = parse_duration(raw["start"], f"{where}.start")
    duration_s = parse_duration(raw["duration"], f"{where}.duration")
    if duration_s <= 0:
        raise ScenarioError(f"{where}.duration: must be positive, got {raw['duration']!r}")
    sensors_raw = raw.get("sensors")
    valid = PROFILES[profile]
    if kind in PROCESS_FAULT_KINDS:
        if sensors_raw is not None:
            raise ScenarioError(f"{where}.sensors: a process fault moves the physics; it takes no sensors")
        sensors = PROCESS_FAULT_SENSORS[kind]
    else:
        if sensors_raw is None:
            sensors = (DEFAULT_FAULT_SENSOR if profile == "reactor" else valid[0],)
        elif isinstance(sensors_raw, str):
            sensors = (sensors_raw,)
        elif isinstance(sensors_raw, list) and sensors_raw:
            sensors = tuple(str(s) for s in sensors_raw)
        else:
            raise ScenarioError(f"{where}.sensors: expected a sensor name or a non-empty list, got {sensors_raw!r}")
        for sensor in sensors:
            if sensor not in valid:
                raise ScenarioError(f"{where}.sensors: unknown sensor {sensor!r}; sensors: {', '.join(valid)}")
    magnitude_raw = raw.get("magnitude")
    if magnitude_raw is None:
        magnitude = default_magnitude(kind, _SCALES[profile], sensors)
    else:
        lowest = 0.0 if kind in PROCESS_FAULT_KINDS and kind != "feed_temp_step" else -np.inf
        magnitude = _number(magnitude_raw, f"{where}.magnitude", lowest)
        if kind in ("cooling_degradation", "catalyst_deactivation") and magnitude > 1.0:
            raise ScenarioError(f"{where}.magnitude: {kind} is a fraction lost, 0..1, got {magnitude_raw!r}")
    return Fault(kind=kind, unit=unit, start_s=start_s, duration_s=duration_s, magnitude=magnitude, sensors=sensors)


def parse_scenario(raw: object, default_name: str = "scenario") -> Scenario:
    """Validate a scenario mapping (as loaded from YAML)."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"a scenario must be a mapping of settings, got {type(raw).__name__}")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ScenarioError(f"unknown key(s) {sorted(unknown)}; valid keys: {', '.join(sorted(_TOP_KEYS))}")
    profile = raw.get("profile", "reactor")
    if profile not in PROFILES:
        raise ScenarioError(f"profile: unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    units = _unit_names(raw.get("units", 1))
    period_s = parse_duration(raw.get("period_s", 1.0), "period_s")
    if period_s <= 0:
        raise ScenarioError("period_s: must be positive")
    step_s = parse_duration(raw.get("step_s", max(5.0, period_s)), "step_s")
    ratio = step_s / period_s
    if step_s <= 0 or abs(ratio - round(ratio)) > 1e-9:
        raise ScenarioError(f"step_s: must be a positive multiple of period_s ({period_s:g}), got {step_s:g}")
    if step_s > 30.0:
        raise ScenarioError(f"step_s: at most 30 s keeps the integration accurate, got {step_s:g}")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ScenarioError(f"seed: expected a non-negative integer, got {seed!r}")
    faults_raw = raw.get("faults") or []
    if not isinstance(faults_raw, list):
        raise ScenarioError(f"faults: expected a list, got {type(faults_raw).__name__}")
    faults = tuple(_fault(f, i, profile, units) for i, f in enumerate(faults_raw))
    return Scenario(
        name=str(raw.get("name", default_name)),
        profile=profile,
        units=units,
        period_s=period_s,
        step_s=step_s,
        spread=_number(raw.get("spread", 0.05), "spread"),
        disturbances=_number(raw.get("disturbances", 1.0), "disturbances"),
        noise=_number(raw.get("noise", 1.0), "noise"),
        faults=faults,
        seed=seed,
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML scenario file; every problem is a ScenarioError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ScenarioError(f"cannot read scenario {path}: not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ScenarioError(f"{path}: not valid YAML{line}") from exc
    try:
        return parse_scenario(raw, default_name=path.stem)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def random_scenario(
    seed: int,
    n_units: int = 4,
    duration_s: float = 86400.0,
    faults_per_unit: float = 2.0,
    kinds: tuple[str, ...] = FAULT_KINDS,
    warmup_fraction: float = 0.2,
    profile: str = "reactor",
) -> Scenario:
    """A random scenario for benchmarks: faults of random kinds, never overlapping within a unit.

    The first ``warmup_fraction`` of the run is fault-free (models can train on it), and each
    fault is followed by a recovery gap as long as itself. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    allowed = tuple(k for k in kinds if profile == "reactor" or k in SENSOR_FAULT_KINDS)
    if not allowed:
        raise ValueError(f"no fault kind of {kinds} applies to profile {profile!r}")
    units = _unit_names(n_units)
    sensors = PROFILES[profile]
    faults: list[Fault] = []
    for unit in units:
        count = int(rng.poisson(faults_per_unit))
        t = duration_s * warmup_fraction
        for _ in range(count):
            kind = str(rng.choice(allowed))
            duration = float(np.round(rng.uniform(0.02, 0.08) * duration_s))
            start = float(np.round(t + rng.uniform(0.0, 0.1) * duration_s))
            if start + duration > duration_s or duration <= 0:
                break
            fault_sensors = PROCESS_FAULT_SENSORS[kind] if kind in PROCESS_FAULT_KINDS else (str(rng.choice(sensors)),)
            magnitude = default_magnitude(kind, _SCALES[profile], fault_sensors) * float(rng.uniform(0.7, 1.5))
            if kind in ("cooling_degradation", "catalyst_deactivation"):
                magnitude = min(magnitude, 0.9)
            faults.append(Fault(kind, unit, start, duration, magnitude, fault_sensors))
            t = start + 2 * duration
    return Scenario(name=f"random-{seed}", profile=profile, units=units, faults=tuple(faults), seed=seed)
