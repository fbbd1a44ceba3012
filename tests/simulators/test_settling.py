"""Settling spans: the faulty run against its fault-free twin (simulators.settling, called by simulate)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulators import parse_scenario, simulate
from simulators.scenario import Scenario
from simulators.settling import HOLD_S, TwinMismatch, reactor_tolerance, settle_labels
from simulators.simulation import SimResult, Simulation

SEED = 5
MIN = 60.0


def scenario(*faults: dict[str, object]) -> Scenario:
    """Two reactors with the default spread, disturbances and noise (the random streams all in use)."""
    return parse_scenario({"units": 2, "faults": list(faults)})


def twin_of(result: SimResult) -> SimResult:
    return simulate(replace(result.scenario, faults=()), len(result.timestamps) * result.period_s, seed=SEED)


def test_the_twin_equals_the_run_exactly_before_the_first_fault_and_on_a_unit_without_faults() -> None:
    # Spikes and noise draw from the fault stream; the process fault changes the physics of reactor-01 only.
    run = simulate(
        scenario(
            {"kind": "noise", "unit": "reactor-01", "start": "40m", "duration": "10m"},
            {"kind": "cooling_degradation", "unit": "reactor-01", "start": "1h", "duration": "20m"},
            {"kind": "spikes", "unit": "reactor-01", "start": "2h", "duration": "10m"},
        ),
        3 * 3600,
        seed=SEED,
    )
    twin = twin_of(run)
    first = int(40 * MIN)
    assert np.array_equal(run.data[0, :first], twin.data[0, :first])  # exactly: not allclose
    assert not np.array_equal(run.data[0, first : first + 600], twin.data[0, first : first + 600])
    assert np.array_equal(run.data[1], twin.data[1])


def test_a_process_fault_settles_after_its_end_where_every_sensor_stays_in_the_band() -> None:
    run = simulate(
        scenario({"kind": "feed_temp_step", "unit": "reactor-02", "start": "30m", "duration": "20m"}),
        4 * 3600,
        seed=SEED,
    )
    (lab,) = run.labels
    end_of_data = run.timestamps[-1] + run.period_s
    assert lab.end < lab.settled < end_of_data - HOLD_S  # measured, not capped
    off = np.abs(run.unit_data("reactor-02") - twin_of(run).unit_data("reactor-02")) > reactor_tolerance(run.sensors)
    back = int(np.searchsorted(run.timestamps, lab.settled))
    assert not off[back:].any()  # from settled on, every sensor stays within the band of the twin
    assert off[back - 1].any()  # and the sample before was still outside it
    print(f"feed_temp_step 20 min: settled {(lab.settled - lab.end) / MIN:.1f} min after its end")


def test_a_sensor_fault_settles_at_its_end_and_the_twin_agrees_right_after_it() -> None:
    faults = (
        {"kind": "bias", "unit": "reactor-01", "start": "30m", "duration": "20m", "sensors": ["reactor_temp_K"]},
        {"kind": "stuck", "unit": "reactor-01", "start": "1h", "duration": "10m", "sensors": ["coolant_flow_m3_h"]},
        {"kind": "cooling_degradation", "unit": "reactor-02", "start": "30m", "duration": "20m"},
    )
    run = simulate(scenario(*faults), 2 * 3600, seed=SEED)
    bias, stuck, cooling = run.labels
    assert (bias.settled, stuck.settled) == (bias.end, stuck.end)
    assert cooling.settled > cooling.end
    twin = twin_of(run)
    for lab in (bias, stuck):
        after = int(np.searchsorted(run.timestamps, lab.end))
        assert np.array_equal(run.data[0, after : after + 600], twin.data[0, after : after + 600])


def test_the_span_stops_at_the_next_fault_of_the_unit_and_at_the_end_of_the_data() -> None:
    run = simulate(
        scenario(
            {"kind": "thermal_runaway", "unit": "reactor-01", "start": "30m", "duration": "20m"},
            {"kind": "bias", "unit": "reactor-01", "start": "55m", "duration": "5m"},
            {"kind": "catalyst_deactivation", "unit": "reactor-02", "start": "50m", "duration": "20m"},
        ),
        3 * 3600 + 10 * MIN,
        seed=SEED,
    )
    runaway, bias, catalyst = run.labels
    assert runaway.settled == bias.start  # still off the twin 5 min after its end: the bias would mix in
    assert bias.settled == bias.end
    assert catalyst.settled > catalyst.end


def test_the_end_of_the_data_caps_an_unsettled_span() -> None:
    run = simulate(
        scenario({"kind": "cooling_degradation", "unit": "reactor-01", "start": "30m", "duration": "20m"}),
        3600,
        seed=SEED,
    )
    (lab,) = run.labels
    assert lab.settled == run.timestamps[-1] + run.period_s  # 10 min after the end is not enough: a lower bound


def test_a_twin_with_other_random_streams_is_refused() -> None:
    faulty = scenario({"kind": "valve_stuck", "unit": "reactor-01", "start": "20m", "duration": "10m"})
    run = simulate(faulty, 3600, seed=SEED)
    plain = [replace(lab, settled=lab.end) for lab in run.labels]
    wrong_twin = Simulation(replace(faulty, faults=()), seed=SEED + 1, start_epoch=run.timestamps[0])
    end_of_data = float(run.timestamps[-1]) + run.period_s
    with pytest.raises(TwinMismatch, match="reactor-01: the twin differs from the run before its first fault"):
        tolerance = reactor_tolerance(run.sensors)
        settle_labels(plain, run.timestamps, run.data, run.units, wrong_twin.chunks(), tolerance, end_of_data, 1.0)
