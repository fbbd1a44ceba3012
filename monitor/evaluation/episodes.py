"""Alert episodes: AlertEvents collapsed into one Episode per alert_id, and merged across detectors per unit.

API (pure)::

    episodes = episodes_from_events(events)     # AlertEvents -> [Episode], in detection order
    merged = merge_episodes(episodes)           # -> one ANY ("any") Episode per stretch of overlapping alerts of a unit
    episode_end(ep), by_unit(items)             # when an episode stopped being active; episodes or labels per unit

An episode is announced at its first ``firing`` event's ``ts`` (what an operator sees), active until its
``resolved`` event (or the end of the data). Apart from the judgement (monitor.evaluation.judge) because the
report (monitor.report) and the benchmarks take episodes without judging them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from monitor.messages import AlertEvent
from monitor.wire.labels import Label

ANY = "any"  # evaluate_by_detector's key for the service as a whole (every detector's alerts merged)

_Item = TypeVar("_Item", "Episode", Label)


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode (one alert_id) of one unit and detector."""

    unit: str
    detector: str
    alert_id: str
    detected_at: float  # ts of its first firing event
    resolved_at: float | None  # ts of its resolved event; None: still firing at the end of the data
    top_sensor: str | None


def episodes_from_events(events: Iterable[AlertEvent]) -> list[Episode]:
    """Collapse firing / re-notify / resolved events into one Episode per alert_id, in detection order."""
    first: dict[str, AlertEvent] = {}
    resolved: dict[str, float] = {}
    for event in events:
        if event.state == "firing":
            if event.alert_id not in first or event.ts < first[event.alert_id].ts:
                first[event.alert_id] = event
        else:
            resolved[event.alert_id] = event.ts
    episodes = [
        Episode(
            e.unit,
            e.detector,
            alert_id,
            e.ts,
            resolved.get(alert_id),
            e.sensors[0][0] if e.sensors else None,
        )
        for alert_id, e in first.items()
    ]
    episodes.sort(key=lambda ep: (ep.detected_at, ep.alert_id))
    return episodes


def episode_end(ep: Episode) -> float:
    """When the episode stopped being active (inf: still firing at the end of the data)."""
    return ep.resolved_at if ep.resolved_at is not None else math.inf


def by_unit(items: Iterable[_Item]) -> dict[str, list[_Item]]:
    """Episodes or labels grouped by their unit, each group in the order given."""
    out: dict[str, list[_Item]] = {}
    for item in items:
        out.setdefault(item.unit, []).append(item)
    return out


def merge_episodes(episodes: Iterable[Episode], detector: str = ANY) -> list[Episode]:
    """Per unit, the union of the episodes' active spans: one Episode per stretch of overlapping or touching spans.

    A merged episode is announced when its first member was, ends with its last, takes the first member's top
    sensor and joins the members' alert ids with ``+`` (so a false alarm can be traced to its alerts).
    """
    merged: list[Episode] = []
    for unit, unit_eps in by_unit(episodes).items():
        group: list[Episode] = []
        group_end = -math.inf
        for ep in sorted(unit_eps, key=lambda e: (e.detected_at, e.alert_id)):
            if group and ep.detected_at <= group_end:  # overlaps (or touches) the stretch: the same alarm
                group.append(ep)
                group_end = max(group_end, episode_end(ep))
                continue
            if group:
                merged.append(_merged(unit, detector, group, group_end))
            group, group_end = [ep], episode_end(ep)
        if group:
            merged.append(_merged(unit, detector, group, group_end))
    merged.sort(key=lambda ep: (ep.detected_at, ep.alert_id))
    return merged


def _merged(unit: str, detector: str, group: Sequence[Episode], end: float) -> Episode:
    first = group[0]
    alert_id = "+".join(ep.alert_id for ep in group)
    return Episode(unit, detector, alert_id, first.detected_at, None if math.isinf(end) else end, first.top_sensor)
