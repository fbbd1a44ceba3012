"""/metrics over two processes: the scorer's families merged into the front's at each scrape, and the shared
per-unit table's allocator.

API::

    MergedRegistry(registry, scorer.collect)     # what /metrics exposes in process mode: one scrape, both processes
    merge_families(local, remote) -> [Metric]
    table_block_size(units, horizons); table_zeros(block)   # the UnitTable on a shared block, in both processes

The per-unit metric table (scores, thresholds, sensor errors, forecasts, alert state: most of the series) is one
shared block (monitor/shared_block.py) that the scorer writes and the front's registry exports, so a scrape copies
nothing between processes for it. The scorer's other metrics (histograms, counters) live in its own prometheus_client
registry; at each scrape the front asks for them over the control pipe and merges them into its own families
(``merge_families``: counters and histograms add up, a gauge set in one process wins over the other's 0,
``plantwatch_mqtt_connected`` is the lower of the two links, ``plantwatch_ready`` is the front's). Chosen over
prometheus_client's multiprocess mode, which does not support the service's custom collectors (the per-unit
table, ``set_function`` gauges, the process collector) and writes a file per metric and process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from monitor.shared_block import SharedBlock
from monitor.unit_metrics import UnitTable

MIN_GAUGES = frozenset({"plantwatch_mqtt_connected"})  # the service is connected when both of its links are
FRONT_ONLY = frozenset({"plantwatch_ready"})  # computed from both processes by the front's ready()


def _combine(family: Metric, sample_name: str, mine: float, theirs: float) -> float:
    if sample_name.endswith("_created") or (family.type == "gauge" and family.name in MIN_GAUGES):
        return min(mine, theirs)
    if mine != mine:  # NaN: the other process's value
        return theirs
    if theirs != theirs:
        return mine
    return mine + theirs  # counters and histograms add up; a gauge is set in one process, 0 in the other


def merge_families(local: Iterable[Metric], remote: Iterable[Metric]) -> list[Metric]:
    """The front's families with the scorer's merged in (see the module docstring); order: the front's first."""
    theirs = {family.name: family for family in remote}
    merged: list[Metric] = []
    for family in local:
        other = theirs.pop(family.name, None)
        if other is None or family.name in FRONT_ONLY:
            merged.append(family)
            continue
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample
        for sample in other.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            mine = samples.get(key)
            if mine is None:
                samples[key] = sample
            else:
                samples[key] = mine._replace(value=_combine(family, sample.name, mine.value, sample.value))
        combined = Metric(family.name, family.documentation, family.type, family.unit)
        combined.samples = list(samples.values())
        merged.append(combined)
    merged.extend(theirs.values())
    return merged


class MergedRegistry:
    """What /metrics exposes in process mode: the front registry's families with the scorer's merged in."""

    def __init__(self, local: CollectorRegistry, remote: Callable[[], list[Metric]]) -> None:
        self._local = local
        self._remote = remote

    def collect(self) -> Iterable[Metric]:
        return merge_families(self._local.collect(), self._remote())

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        wanted = dict(labels or {})
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return float(sample.value)
        return None


def table_block_size(units: Mapping[str, Sequence[str]], horizons: Iterable[int]) -> int:
    """Bytes of the shared block that holds the per-unit metric table (monitor.unit_metrics.UnitTable)."""
    shapes = UnitTable.array_shapes(units, tuple(horizons))
    return SharedBlock.size_of((np.float64, shape) for shape in shapes.values())


def table_zeros(block: SharedBlock) -> Callable[[tuple[int, ...]], Any]:
    """UnitTable's allocator on ``block``: both processes carve the table's arrays in the same order."""
    carve = block.carver()
    return lambda shape: carve(np.float64, shape)
