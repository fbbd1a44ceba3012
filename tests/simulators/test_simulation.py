"""Offline simulation: determinism, physics sanity, the seed profile, CSV round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulators import (
    REACTOR_SENSORS,
    SEED_SENSORS,
    Fault,
    parse_scenario,
    read_labels,
    read_table,
    seed_signal,
    simulate,
    with_faults,
    write_csv,
    write_labels,
)
from simulators.seed_profile import seed_means
from simulators.simulation import Simulation

T, TJ, CA, FEED, TF, FC, P, LEVEL = range(8)


def quiet(units: int = 1, **extra: object) -> object:
    """Nominal units: no parameter spread, no disturbances, no noise (pure physics)."""
    return parse_scenario({"units": units, "spread": 0, "disturbances": 0, "noise": 0, **extra})


def test_sensor_names_and_shapes() -> None:
    result = simulate(parse_scenario({"units": 3}), 600, seed=1)
    assert result.sensors == REACTOR_SENSORS
    assert result.units == ("reactor-01", "reactor-02", "reactor-03")
    assert result.data.shape == (3, 600, 8)
    assert np.allclose(np.diff(result.timestamps), 1.0)
    assert result.timestamps[0] == 1767225600.0


def test_same_seed_same_output_different_seed_different_output() -> None:
    scenario = parse_scenario(
        {"units": 2, "faults": [{"kind": "spikes", "unit": "reactor-01", "start": 100, "duration": 200}]}
    )
    a = simulate(scenario, 900, seed=5)
    b = simulate(scenario, 900, seed=5)
    c = simulate(scenario, 900, seed=6)
    assert np.array_equal(a.data, b.data, equal_nan=True)
    assert not np.allclose(a.data, c.data)
    # Units differ from each other (parameter spread), and the plant looks plausible.
    assert abs(a.data[0, :, T].mean() - a.data[1, :, T].mean()) > 0.01
    assert 330 < a.data[:, :, T].mean() < 370 and 1.5 < a.data[:, :, P].mean() < 5.0


def test_streamed_chunks_equal_the_offline_run() -> None:
    scenario = parse_scenario(
        {"units": 2, "faults": [{"kind": "noise", "unit": "reactor-02", "start": 3000, "duration": 2000}]}
    )
    offline = simulate(scenario, 7200, seed=3)
    chunks = Simulation(scenario, seed=3).chunks()
    streamed = np.concatenate([next(chunks)[1], next(chunks)[1]], axis=1)
    assert np.array_equal(offline.data, streamed)


def test_scalar_and_vector_integrators_agree() -> None:
    scenario = with_faults(parse_scenario({"units": 3}), Fault("valve_stiction", "reactor-02", 600, 1800, 0.04, ()))
    scalar = Simulation(scenario, seed=2)
    vector = Simulation(scenario, seed=2)
    vector.scalar_max_units = 0
    a, b = next(scalar.chunks())[1], next(vector.chunks())[1]
    assert np.allclose(a, b, rtol=1e-9, atol=1e-9)


def test_nominal_steady_state_is_steady() -> None:
    result = simulate(quiet(), 7200, seed=0)
    data = result.data[0]
    assert np.abs(data - data[0]).max() < 1e-6
    assert data[0, T] == pytest.approx(350.0)
    assert data[0, CA] == pytest.approx(0.75)
    assert data[0, LEVEL] == pytest.approx(1.0)
    assert 2.5 < data[0, P] < 3.5
    assert 0.2 < data[0, FC] / 50.0 < 0.8  # the valve sits mid-range, with headroom both ways


def fault(kind: str, start: float, duration: float, magnitude: float | None = None) -> dict[str, object]:
    out: dict[str, object] = {"kind": kind, "unit": "reactor-01", "start": start, "duration": duration}
    if magnitude is not None:
        out["magnitude"] = magnitude
    return out


def test_cooling_degradation_raises_reactor_temperature() -> None:
    result = simulate(quiet(faults=[fault("cooling_degradation", 1800, 3 * 3600, 0.6)]), 4 * 3600, seed=0)
    temp = result.data[0, :, T]
    assert np.abs(temp[:1800] - 350.0).max() < 1e-6
    assert temp[3 * 3600 : 12600].mean() > 353.0  # the valve is wide open and it is still hotter
    assert result.data[0, 12000, FC] == pytest.approx(50.0)
    assert temp[-1] < temp[12599]  # cleaned (fault over): cooling again


def test_controller_holds_setpoint_through_a_feed_temperature_step() -> None:
    result = simulate(quiet(faults=[fault("feed_temp_step", 1800, 3 * 3600, 10.0)]), 4 * 3600, seed=0)
    temp, coolant, feed_temp = result.data[0, :, T], result.data[0, :, FC], result.data[0, :, TF]
    assert feed_temp[1800] - feed_temp[1799] == pytest.approx(10.0)
    assert temp[1800:3600].max() > 351.0  # the disturbance was felt ...
    assert np.abs(temp[3 * 3600 : 12600] - 350.0).max() < 0.1  # ... and rejected
    assert coolant[12599] - coolant[0] > 5.0  # by opening the coolant valve


def test_thermal_runaway_shows_in_temperature_and_pressure() -> None:
    result = simulate(quiet(faults=[fault("thermal_runaway", 1800, 3600, 1.0)]), 5400, seed=0)
    temp, pressure, coolant = result.data[0, :, T], result.data[0, :, P], result.data[0, :, FC]
    assert temp[1800:5400].max() > 420.0
    assert pressure[1800:5400].max() > 3 * pressure[0]
    assert coolant[1800:5400].max() == pytest.approx(50.0)  # cooling saturated: the controller lost
    # It accelerates: the last 5 K before 400 K take far less time than the first 5 K above setpoint.
    first = np.argmax(temp > 355.0)
    t395, t400 = np.argmax(temp > 395.0), np.argmax(temp > 400.0)
    assert 0 < first < t395 < t400 and (t400 - t395) < (np.argmax(temp > 360.0) - first)


def test_catalyst_deactivation_raises_concentration_and_valve_stuck_freezes_coolant() -> None:
    scenario = parse_scenario(
        {
            "units": 2,
            "spread": 0,
            "noise": 0,
            "faults": [
                {"kind": "catalyst_deactivation", "unit": "reactor-01", "start": 1800, "duration": 7200},
                {"kind": "valve_stuck", "unit": "reactor-02", "start": 1800, "duration": 3600},
            ],
        }
    )
    result = simulate(scenario, 9000, seed=1)
    conc = result.data[0, :, CA]
    assert conc[6000:9000].mean() > conc[:1800].mean() + 0.2
    coolant = result.data[1, :, FC]
    assert np.ptp(coolant[1800:5400]) == 0.0 and np.ptp(coolant[:1800]) > 0.0


def test_seed_signals_reproduce_the_tutorial() -> None:
    np.random.seed(42)
    time = np.linspace(0, 50, 500)
    expected = 350 + 20 * np.sin(0.2 * time) + 5 * np.random.randn(len(time))
    assert np.array_equal(seed_signal("temperature"), expected)
    np.random.seed(42)
    time = np.linspace(0, 100, 1000)
    pressure = 5 + 2 * np.sin(0.1 * time) + 0.5 * np.cos(0.3 * time) + 0.3 * np.random.randn(len(time))
    assert np.array_equal(seed_signal("pressure"), pressure)
    multi = seed_signal("multivariate")
    assert multi.shape == (1000, 3)
    test = seed_signal("bilstm_test")
    assert np.allclose(test[200:250] - seed_signal("bilstm_normal")[200:250], 50.0)


def test_seed_profile_streams_the_tutorial_sine_waves() -> None:
    scenario = parse_scenario({"profile": "seed", "units": ["s1"], "noise": 0})
    result = simulate(scenario, 2000, seed=0)
    assert result.sensors == SEED_SENSORS
    assert np.allclose(result.data[0], seed_means(np.arange(2000)))
    assert result.data[0, 0] == pytest.approx([350.0, 7.0, 100.0])
    noisy = simulate(parse_scenario({"profile": "seed", "units": 1}), 1000, seed=0)
    assert np.std(noisy.data[0, :, 0] - seed_means(np.arange(1000))[:, 0]) == pytest.approx(10.0, rel=0.1)


def test_csv_and_labels_round_trip(tmp_path: Path) -> None:
    scenario = parse_scenario(
        {
            "units": 2,
            "faults": [
                {"kind": "dropout", "unit": "reactor-02", "start": 10, "duration": 5, "sensors": ["level_m"]},
                {"kind": "bias", "unit": "reactor-01", "start": 20, "duration": 100},
            ],
        }
    )
    result = simulate(scenario, 60, seed=1)
    assert write_csv(result, tmp_path / "d.csv") == 120
    assert write_labels(result.labels, tmp_path / "l.csv") == 2
    table = read_table(tmp_path / "d.csv")
    assert table.columns == REACTOR_SENSORS
    assert table.units == tuple(["reactor-01", "reactor-02"] * 60)
    assert np.array_equal(table.timestamps[::2], result.timestamps)
    back = table.values.reshape(60, 2, 8).transpose(1, 0, 2)
    assert np.allclose(back, result.data, rtol=1e-6, equal_nan=True)
    assert np.isnan(back[1, 10:15, LEVEL]).all() and not np.isnan(back[1, 15:, LEVEL]).any()
    labels = read_labels(tmp_path / "l.csv")
    assert labels[1].unit == "reactor-01" and labels[1].kind == "bias"
    assert labels[1].start == result.timestamps[20] and labels[1].end == result.timestamps[0] + 60  # clipped to the run
    assert labels[0].sensors == ("level_m",)


def test_skab_file_reads() -> None:
    path = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "skab" / "valve1" / "0.csv"
    if not path.exists():
        pytest.skip("SKAB data not present")
    table = read_table(path)
    assert table.units is None and "Temperature" in table.columns and "anomaly" in table.columns
    assert table.timestamps[0] == pytest.approx(1583748873.0)  # 2020-03-09 10:14:33 read as UTC
    assert np.all(np.diff(table.timestamps) > 0)


def test_simulators_import_no_torch() -> None:
    code = (
        "import sys, importlib, pkgutil, simulators\n"
        "for m in pkgutil.iter_modules(simulators.__path__):\n"
        "    importlib.import_module('simulators.' + m.name)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('models') or "
        "(m.startswith('monitor') and m != 'monitor' and m.split('.')[:2] != ['monitor', 'wire'])]\n"
        "assert not bad, bad\n"
        "print('ok', len(list(pkgutil.iter_modules(simulators.__path__))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")
