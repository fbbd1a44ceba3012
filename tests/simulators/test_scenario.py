"""Scenario files: validation with messages that name the problem, the shipped examples, the random generator."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from simulators import FAULT_KINDS, ScenarioError, load_scenario, parse_duration, parse_scenario, random_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "config" / "scenarios"


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), ("90s", 90.0), ("5m", 300.0), ("1.5h", 5400.0), ("2d", 172800.0), ("250ms", 0.25)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5s", "5 weeks", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ScenarioError, match="duration"):
        parse_duration(text)


def test_unknown_fault_kind_names_it_and_the_valid_kinds() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"units": 1, "faults": [{"kind": "bais", "start": 1, "duration": 1}]})
    message = str(info.value)
    assert message.startswith("faults[0].kind: unknown fault kind 'bais'; valid kinds: bias, drift")
    assert all(kind in message for kind in FAULT_KINDS)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"units": 2, "faults": [{"kind": "bias", "start": 1, "duration": 1}]}, "faults[0].unit: missing"),
        ({"units": 1, "faults": [{"kind": "bias", "unit": "x", "start": 1, "duration": 1}]}, "unknown unit 'x'"),
        ({"units": 1, "faults": [{"kind": "bias", "start": 1}]}, "needs both start and duration"),
        ({"units": 1, "faults": [{"kind": "bias", "start": 1, "duration": 0}]}, "duration: must be positive"),
        (
            {"units": 1, "faults": [{"kind": "bias", "start": 1, "duration": 5, "sensors": ["temp"]}]},
            "unknown sensor 'temp'",
        ),
        ({"units": 1, "faults": [{"kind": "valve_stuck", "start": 1, "duration": 5, "sensors": ["x"]}]}, "no sensors"),
        (
            {"profile": "seed", "faults": [{"kind": "valve_stuck", "start": 1, "duration": 5}]},
            "needs profile 'reactor'",
        ),
        ({"units": 1, "faults": [{"kind": "cooling_degradation", "start": 1, "duration": 5, "magnitude": 2}]}, "0..1"),
        ({"profile": "cstr"}, "unknown profile 'cstr'"),
        ({"units": 0}, "at least one unit"),
        ({"units": ["a/b"]}, "not a valid unit name"),
        ({"units": ["a", "a"]}, "duplicate"),
        ({"unit": 3}, "unknown key(s) ['unit']"),
        ({"step_s": 2.5}, "multiple of period_s"),
        ({"spread": -1}, "spread"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_scenarios_name_the_problem(raw: object, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw)
    assert fragment in str(info.value)


def test_unit_forms() -> None:
    assert parse_scenario({"units": 3}).units == ("reactor-01", "reactor-02", "reactor-03")
    assert parse_scenario({"units": {"count": 2, "prefix": "R"}}).units == ("R01", "R02")
    assert parse_scenario({"units": ["a", "b"]}).units == ("a", "b")
    assert len(parse_scenario({"units": 1000}).units[0]) == len("reactor-0001")


def test_bad_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("units: [a, b\nfaults: {")
    with pytest.raises(ScenarioError, match=r"bad.yaml: not valid YAML \(line"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")


def test_shipped_scenarios_load() -> None:
    faults = load_scenario(SCENARIOS / "faults.yaml")
    assert sorted({f.kind for f in faults.faults}) == sorted(FAULT_KINDS)  # one of each kind
    demo = load_scenario(SCENARIOS / "demo.yaml")
    (fault,) = demo.faults
    assert 30 <= fault.start_s <= 120 and fault.unit == "reactor-01"
    assert load_scenario(SCENARIOS / "normal.yaml").faults == ()
    assert load_scenario(SCENARIOS / "seed.yaml").profile == "seed"


def test_random_scenarios_are_seeded_and_faults_do_not_overlap() -> None:
    a, b, c = random_scenario(3, n_units=20), random_scenario(3, n_units=20), random_scenario(4, n_units=20)
    assert a == b and a != c
    assert len(a.faults) > 10 and {f.kind for f in a.faults} <= set(FAULT_KINDS)
    for unit in a.units:
        faults = sorted((f for f in a.faults if f.unit == unit), key=lambda f: f.start_s)
        for first, second in itertools.pairwise(faults):
            assert first.end_s <= second.start_s
        assert all(f.start_s >= 0.2 * 86400 and f.end_s <= 86400 for f in faults)
