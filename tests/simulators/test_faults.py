"""Each fault kind changes its affected signals (sensor faults: only those) exactly over its labelled interval."""

from __future__ import annotations

import numpy as np
import pytest

from simulators import PROCESS_FAULT_KINDS, SENSOR_FAULT_KINDS, parse_scenario, simulate
from simulators.faults import PROCESS_FAULT_SENSORS
from simulators.reactor import REACTOR_NOISE_SD

START, DURATION, TOTAL = 1200, 1800, 3600
BASE = {"units": 2, "seed": 4}
SENSORS = ("jacket_temp_K", "pressure_bar")


def run(faults: list[dict[str, object]]) -> object:
    return simulate(parse_scenario({**BASE, "faults": faults}), TOTAL)


@pytest.fixture(scope="module")
def clean() -> object:
    return run([])


@pytest.mark.parametrize("kind", SENSOR_FAULT_KINDS)
def test_sensor_fault_changes_only_its_sensors_in_its_interval(kind: str, clean: object) -> None:
    spec = {"kind": kind, "unit": "reactor-02", "start": START, "duration": DURATION, "sensors": list(SENSORS)}
    faulty = run([spec])
    changed = ~np.isclose(faulty.data, clean.data, rtol=0, atol=0, equal_nan=True)  # [U, T, S]
    expected = np.zeros_like(changed)
    columns = [faulty.sensors.index(s) for s in SENSORS]
    for c in columns:
        expected[1, START : START + DURATION, c] = True
    assert not (changed & ~expected).any(), "changed something outside its unit, sensors or interval"
    inside = changed[1, START : START + DURATION][:, columns]
    if kind == "spikes":
        assert 0.005 < inside.mean() < 0.05  # about 2 % of samples
        diff = (faulty.data - clean.data)[1, START : START + DURATION][:, columns][inside]
        assert np.allclose(np.abs(diff), faulty.scenario.faults[0].magnitude)
    else:
        assert inside.all()
    block = faulty.data[1, START : START + DURATION][:, columns]
    truth = clean.data[1, START : START + DURATION][:, columns]
    magnitude = faulty.scenario.faults[0].magnitude
    if kind == "bias":
        assert np.allclose(block - truth, magnitude)
    elif kind == "drift":
        ramp = magnitude * np.arange(1, DURATION + 1) / DURATION  # reaches magnitude on the last sample
        assert np.allclose(block - truth, ramp[:, None])
    elif kind == "stuck":
        assert np.array_equal(block, np.broadcast_to(clean.data[1, START - 1, columns], block.shape))
    elif kind == "noise":
        assert np.std(block - truth, axis=0) == pytest.approx([magnitude] * 2, rel=0.1)
    elif kind == "dropout":
        assert np.isnan(block).all()
    (label,) = faulty.labels
    assert (label.unit, label.kind, label.sensors) == ("reactor-02", kind, SENSORS)
    assert label.start == faulty.timestamps[START] and label.end == faulty.timestamps[START + DURATION]


@pytest.mark.parametrize("kind", PROCESS_FAULT_KINDS)
def test_process_fault_moves_its_signals_after_its_start_only(kind: str, clean: object) -> None:
    faulty = run([{"kind": kind, "unit": "reactor-02", "start": START, "duration": DURATION}])
    diff = np.abs(faulty.data - clean.data)
    assert np.array_equal(faulty.data[0], clean.data[0]), "another unit changed"
    assert diff[1, :START].max() == 0.0, "changed before the fault started"
    noise = np.asarray(REACTOR_NOISE_SD)  # both runs share their noise: any difference is physics
    moved = [
        s
        for s in PROCESS_FAULT_SENSORS[kind]
        if diff[1, START : START + DURATION, faulty.sensors.index(s)].max() > 3 * noise[faulty.sensors.index(s)]
    ]
    assert moved, f"{kind} moved none of {PROCESS_FAULT_SENSORS[kind]}"
    assert PROCESS_FAULT_SENSORS[kind][0] in moved  # the main signal of each fault moves
    (label,) = faulty.labels
    assert label.kind == kind and label.sensors == PROCESS_FAULT_SENSORS[kind]
    assert label.start == faulty.timestamps[START] and label.end == faulty.timestamps[START + DURATION]


def test_faults_compose_on_one_unit(clean: object) -> None:
    faulty = run(
        [
            {"kind": "bias", "unit": "reactor-01", "start": 100, "duration": 500, "magnitude": 2.0},
            {"kind": "bias", "unit": "reactor-01", "start": 300, "duration": 500, "magnitude": 3.0},
            {"kind": "feed_temp_step", "unit": "reactor-01", "start": 1000, "duration": 1000},
        ]
    )
    delta = faulty.data[0, :, 0] - clean.data[0, :, 0]
    assert np.allclose(delta[100:300], 2.0) and np.allclose(delta[300:600], 5.0) and np.allclose(delta[600:800], 3.0)
    assert np.abs(delta[1000:2000]).max() > 1.0  # the process fault on top
    assert len(faulty.labels) == 3


def test_labels_are_clipped_to_the_run_and_faults_after_it_dropped() -> None:
    result = simulate(
        parse_scenario(
            {
                "units": 1,
                "faults": [
                    {"kind": "bias", "start": 50, "duration": 1000},
                    {"kind": "stuck", "start": 5000, "duration": 10},
                ],
            }
        ),
        100,
    )
    (label,) = result.labels
    assert label.end == result.timestamps[0] + 100
    assert result.label_mask()[0].sum() == 50
