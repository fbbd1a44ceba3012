"""The demo plant: two steady reactors (config/scenarios/demo.yaml's units), optionally with the scripted fault,
and the recorder that keeps what the simulator streams as ``data.csv``.

API::

    scenario = demo_scenario(opts, with_fault=True)      # a simulators.Scenario
    with DataRecorder(workdir / "data.csv", sensors) as recorder:
        rows = recorder.tee(simulation_rows(sim))        # LivePublisher(rows, ...) streams them; each row is
                                                         # written as the publisher takes it
    recorder.rows                                        # rows written

The plant is steady (no parameter spread, no slow disturbances): models trained for a minute on two hours of data
have not seen the excursions that disturbances take over a day, and would flag them.

``data.csv`` is the backtest's input format (monitor/wire/csvfile.py): ``timestamp, unit``, then one column per sensor;
a sensor a row does not carry is an empty cell. It is recorded on the publishing side, so a row the publisher took
just before a stop may be in the file but not on the broker.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from monitor.demo.options import FAULT_SENSOR, FAULT_UNIT, RUN_SEED, UNITS, DemoOptions

if TYPE_CHECKING:
    from simulators.live import Row
    from simulators.scenario import Scenario


def demo_scenario(opts: DemoOptions, with_fault: bool) -> Scenario:
    """The demo plant (config/scenarios/demo.yaml's units and fault, steady operation); optionally with its fault."""
    from simulators import parse_scenario

    faults: list[dict[str, Any]] = []
    if with_fault:
        faults.append(
            {
                "kind": "bias",
                "unit": FAULT_UNIT,
                "start": opts.fault_at_s,
                "duration": opts.fault_duration_s,
                "magnitude": opts.fault_magnitude,
                "sensors": [FAULT_SENSOR],
            }
        )
    return parse_scenario(
        {
            "name": "demo",
            "profile": "reactor",
            "period_s": 1,
            "units": {"names": list(UNITS)},
            "spread": 0.0,
            "disturbances": 0.0,
            "seed": RUN_SEED,
            "faults": faults,
        }
    )


class DataRecorder:
    """Writes the rows the simulator streams to a data CSV (see the module docstring)."""

    def __init__(self, path: Path, sensors: Sequence[str]) -> None:
        self.path = path
        self._sensors = tuple(sensors)
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._writer = csv.writer(self._file)
        self._writer.writerow(["timestamp", "unit", *self._sensors])
        self.rows = 0

    def tee(self, rows: Iterable[Row]) -> Iterator[Row]:
        """``rows``, each written to the file as it is taken (on the publisher's thread)."""
        for row in rows:
            self._writer.writerow([f"{row.ts:.3f}", row.unit, *(row.values.get(s, "") for s in self._sensors)])
            self.rows += 1
            yield row

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DataRecorder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
