"""monitor.wire.durations: the one duration rule (scenario files, `simulate --duration`, the demo's options)."""

from __future__ import annotations

import pytest

from monitor.wire.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3h40m", 13200.0),
        ("1d 6h", 108000.0),
        ("2m30s", 150.0),
        ("1h30m15s", 5415.0),
        ("1.5h", 5400.0),
        ("5min", 300.0),
        ("250ms", 0.25),
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
    ],
)
def test_single_and_compound_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["40m3h", "3h40", "3h3h", "5 weeks", "", "h", "-5s", "soon", True, None, [1]])
def test_what_is_not_a_duration_names_the_field(text: object) -> None:
    with pytest.raises(ValueError, match=r"^--duration: "):
        parse_duration(text, "--duration")


def test_infinite_is_refused() -> None:
    with pytest.raises(ValueError, match="finite, non-negative"):
        parse_duration("1e999s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(13200, "3h40m"), (125, "2m05s"), (12, "12s"), (0, "0s"), (93600, "1d02h"), (3601, "1h00m01s")],
)
def test_format_duration_writes_what_parse_duration_reads(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_scenario_files_take_compound_durations() -> None:
    from simulators import ScenarioError, parse_scenario

    scenario = parse_scenario(
        {"units": ["a"], "faults": [{"kind": "bias", "unit": "a", "start": "3h40m", "duration": "1h30m"}]}
    )
    (fault,) = scenario.faults
    assert (fault.start_s, fault.duration_s) == (13200.0, 5400.0)
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.start: expected a duration such as"):
        parse_scenario({"units": ["a"], "faults": [{"kind": "bias", "unit": "a", "start": "40m3h", "duration": 1}]})
