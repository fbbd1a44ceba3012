"""Sources: where the buffers' Readings come from. MQTT in the service, a CSV file in the backtest.

API::

    source.readings() -> Iterator[Reading]     # the Source port: what has arrived, in arrival order
    data = read_csv("run.csv", sensors_by_unit, default_unit)        # monitor.wire.csvfile, the one CSV reader
    source = CsvSource(data, sensors_by_unit, limits=unit_limits(cfg))   # the backtest's Source

The Source port (DESIGN.md data flow): the buffers take Readings (monitor.messages) in arrival order from
``readings()``, whatever produced them, and need nothing else of the source.

- MQTT (the service): MqttLink (monitor/mqtt.py) hands each message to IngestStage.handle (monitor/stages.py) on
  paho's network thread, which parses it (monitor/ingest.py), journals it and puts the Reading in the Inbox; the
  Inbox is the Source the buffer thread drains (``Inbox.readings()``, every POLL_S). ``received_at`` is the
  arrival time.
- CSV (the backtest): ``CsvSource.readings()`` yields one Reading per row of a read CSV (monitor.wire.csvfile's
  CsvData), in file order, all at once, with ``received_at = ts`` (event time only: the results do not depend on
  the machine's speed, and the clock guard never holds a reading). Missing cells are left out; a value outside
  its sensor's ``units[].limits`` is refused by the service's own rule (monitor.validation.split_by_limits, which
  the live parser applies): the sensor is missing for that row, and the sensor detector names it
  ``out_of_range``.

A later source (Sparkplug B, OPC UA) puts its Readings in the Inbox as IngestStage does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from monitor.messages import Reading
from monitor.validation import Bounds, split_by_limits
from monitor.wire.csvfile import CsvData


class Source(Protocol):
    """Readings for the buffers (see the module docstring)."""

    def readings(self) -> Iterator[Reading]:
        """What has arrived and not been taken yet, in arrival order (a file: all of it, once)."""
        ...


class CsvSource:
    """The backtest's Source: one Reading per row of a read CSV, in file order (see the module docstring)."""

    def __init__(
        self, data: CsvData, sensors_by_unit: Mapping[str, Sequence[str]], limits: Mapping[str, Bounds]
    ) -> None:
        self._data = data
        self._sensors = {unit: tuple(sensors) for unit, sensors in sensors_by_unit.items()}
        self._limits = limits

    def readings(self) -> Iterator[Reading]:
        data = self._data
        cursor = dict.fromkeys(data.values, 0)
        for i, unit in enumerate(data.units):
            r = cursor[unit]
            cursor[unit] = r + 1
            row = data.values[unit][r]
            values = {s: v for s, v in zip(self._sensors[unit], row.tolist(), strict=True) if not math.isnan(v)}
            ts = float(data.ts[i])
            bounds = self._limits.get(unit)
            if bounds is not None:
                values, out_of_range = split_by_limits(values, bounds)
                yield Reading(unit, ts, values, received_at=ts, out_of_range=out_of_range)
            else:
                yield Reading(unit, ts, values, received_at=ts)
