"""Physical limits: the one rule that refuses a value outside its sensor's configured ``[min, max]``.

API::

    limits = unit_limits(cfg)                               # {unit: {sensor: (min, max)}}, units with limits only
    kept, refused = split_by_limits(values, limits[unit])   # refused: ((sensor, value), ...) outside [min, max]

The parser applies it to every readings message (monitor.ingest) and the backtest's CSV source to every row
(monitor.sources.CsvSource), so the two refuse exactly the same values. A value outside its limits is a broken
transmitter (a pressure of -1e6 bar), not a state of the process: it must reach neither the models nor the
forecaster's state.
It is refused as a value, reason ``out_of_range`` (the message's other values are kept); the buffers then treat
the sensor as missing for that row (hold-over, then a health-only record) and remember that it was out of range,
so the sensor detector names it ``out_of_range`` rather than ``silent`` (monitor.buffers.aligner, "Out of range").

Bounds are inclusive: ``min`` and ``max`` themselves are possible values. Values reaching this rule are finite
(monitor.messages.storable runs first).
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.config import PlantwatchConfig

# sensor -> (min, max), inclusive
Bounds = Mapping[str, tuple[float, float]]


def unit_limits(cfg: PlantwatchConfig) -> dict[str, Bounds]:
    """Every unit's configured physical limits (``units[].limits``); units without limits are left out."""
    return {u.name: {s: (lim.min, lim.max) for s, lim in u.limits.items()} for u in cfg.units if u.limits}


def split_by_limits(
    values: Mapping[str, float], bounds: Bounds
) -> tuple[dict[str, float], tuple[tuple[str, float], ...]]:
    """(the values within their bounds, the (sensor, value) pairs outside them, in message order). A sensor
    without bounds is always kept."""
    kept: dict[str, float] = {}
    refused: list[tuple[str, float]] = []
    for sensor, value in values.items():
        bound = bounds.get(sensor)
        if bound is None or bound[0] <= value <= bound[1]:
            kept[sensor] = value
        else:
            refused.append((sensor, value))
    return kept, tuple(refused)
