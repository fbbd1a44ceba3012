"""Reactor simulator with injected faults and ground truth; CSV export, MQTT publisher, CSV replay.

Imports numpy, PyYAML and paho-mqtt only (no torch, nothing of ``monitor`` but the ``monitor.wire`` package of
shared formats), so it runs on a machine without torch. The CSV reader and the label record and files are
monitor.wire's (csvfile, labels), re-exported here so a simulator user needs one import.

Offline, for training data, tests and backtests::

    from simulators import load_scenario, parse_scenario, simulate, write_csv, write_labels

    scenario = load_scenario("config/scenarios/faults.yaml")      # or parse_scenario({...}) / random_scenario(seed)
    result = simulate(scenario, duration_s=2 * 86400, seed=7)      # -> SimResult
    result.timestamps   # [T] epoch seconds (start_epoch defaults to 2026-01-01T00:00:00Z)
    result.units        # unit names; result.sensors: sensor names (REACTOR_SENSORS for the reactor)
    result.data         # [U, T, S] float64 in sensor units, NaN where a dropout fault removed readings
    result.labels       # tuple[Label(unit, kind, start, end, sensors, settled)], epoch seconds, [start, end);
                        # settled: process faults' recovery measured against the fault-free twin (simulators.settling)
    result.label_mask() # [U, T] bool, True inside any fault
    write_csv(result, "data.csv"); write_labels(result.labels, "labels.csv")

Live, to a broker (runs in its own thread)::

    from simulators import LivePublisher
    pub = LivePublisher(result, host="127.0.0.1", port=1883, speed=10.0, qos=1, payload="readings")
    pub.start(); pub.wait(timeout_s=60)      # or pub.stop()
    pub.published, pub.acked, pub.error      # counts of messages handed to paho and acknowledged

``LivePublisher`` also takes a :class:`Simulation` (streams a run chunk by chunk, endless unless
``duration_s``) or any iterable of :class:`simulators.live.Row` in time order, such as
``simulators.replay.table_rows(read_table("file.csv"), unit="u")`` (what ``plantwatch replay`` does).

Commands: ``plantwatch simulate`` (monitor.commands.simulate), ``plantwatch replay`` (monitor.commands.replay).
"""

from __future__ import annotations

from monitor.wire.csvfile import CsvError, CsvTable, read_table
from monitor.wire.labels import Label, read_labels, write_labels
from simulators.csvio import write_csv
from simulators.faults import FAULT_KINDS, PROCESS_FAULT_KINDS, SENSOR_FAULT_KINDS, Fault
from simulators.live import LivePublisher, PublishError
from simulators.reactor import REACTOR_SENSORS
from simulators.scenario import Scenario, ScenarioError, load_scenario, parse_duration, parse_scenario, random_scenario
from simulators.seed_profile import SEED_SENSORS, seed_signal
from simulators.simulation import DEFAULT_START_EPOCH, SimResult, Simulation, simulate, with_faults

__all__ = [
    "DEFAULT_START_EPOCH",
    "FAULT_KINDS",
    "PROCESS_FAULT_KINDS",
    "REACTOR_SENSORS",
    "SEED_SENSORS",
    "SENSOR_FAULT_KINDS",
    "CsvError",
    "CsvTable",
    "Fault",
    "Label",
    "LivePublisher",
    "PublishError",
    "Scenario",
    "ScenarioError",
    "SimResult",
    "Simulation",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
    "random_scenario",
    "read_labels",
    "read_table",
    "seed_signal",
    "simulate",
    "with_faults",
    "write_csv",
    "write_labels",
]
