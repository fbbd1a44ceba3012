"""Detection quality: alert events (or per-row flags) against ground-truth fault labels.

API (pure numpy, no torch)::

    labels = read_labels("faults.csv")                 # monitor.wire.labels: [Label(unit, kind, start, end, ...)]
    episodes = episodes_from_events(events)            # AlertEvents -> one Episode per alert_id
    report = evaluate(episodes, labels, timelines={"R1": row_ts}, tolerance_s=60)
    print(report.format())
    reports = evaluate_by_detector(episodes, labels, timelines, tolerance_s=60)   # {detector: Evaluation, "any": ...}
    merge_episodes(episodes)                           # -> one "any" Episode per span of overlapping alerts of a unit
    restrict_labels(labels, timelines)                 # -> (labels counted, labels left out)
    pointwise(pred_flags, true_flags)                  # -> PointMetrics from per-row booleans

Definitions (all causal: an alert counts from the event time it was published at):

- An episode is announced at its first ``firing`` event's ``ts`` (what an operator sees), active until its
  ``resolved`` event (or the end of the data).
- Labels counted: those of a unit present in the timelines whose start lies within the time range of that unit's
  rows (first to last row). The others are left out (``Evaluation.left_out``): a fault the data never saw start
  can be neither detected nor missed. Left-out labels still mark their rows as faulty for the point-wise figures
  and still keep an episode announced inside them from being a false alarm: the fault did happen.
- A counted fault ``[start, end]`` has one of three statuses (``LabelResult.status``):

  - ``detected``: an episode of its unit is newly announced within ``[start, end + tolerance_s]``; its detection
    delay is the first such announcement minus ``start``;
  - ``already_alerting``: no episode is announced within that window, but one announced before ``start`` was
    still active at ``start``. It counts toward event recall (the operator was being alerted during the fault)
    but has no delay and is reported apart: it is not an early detection, and that episode stays a false alarm;
  - ``missed``: neither.

  Event recall = (detected + already alerting) / counted faults; delay statistics cover detected faults only.
- A settling alarm is an episode announced in a fault's settling span ``(end + tolerance_s, settled]`` of its unit
  (``Label.settled``: when the plant was back to normal; the simulator measures it for process faults) and
  inside no fault's ``[start, end + tolerance_s]``: the plant is still visibly off its normal state, so it is
  neither a false alarm nor a detection (``Evaluation.settling_alarms``, counted apart). A label without a
  settling span (``settled <= end + tolerance_s``) has none.
- A false alarm is an episode announced outside every fault ``[start, end + tolerance_s]`` and every settling span
  of its unit: before the fault started, or after it settled, even when it then runs into a fault. False alarms
  per unit-day divide by the summed time span of the units' timelines.
- Per detector (``evaluate_by_detector``): each detector's episodes alone, and ``"any"``, the service as a whole:
  the union of all detectors' active spans, merged per unit into one episode per stretch of overlapping (or
  touching) spans, announced when the first of them was. One incident seen by two detectors is one alarm; a
  fault counts as detected by "any" only if such a merged episode starts inside it.
- Point-wise: each timeline row is predicted anomalous while an episode of its unit is active, and truly
  anomalous inside a fault ``[start, end]``; precision, recall, F1, and SKAB's FAR = FP / (FP + TN) and
  MAR = FN / (FN + TP), in percent (SKAB's leaderboard definitions: benchmarks/quality_skab.py relies on them).
  Beside them, the alert-time share on normal rows: of the rows outside every fault's ``[start, end +
  tolerance_s]`` and settling span, the share during which an episode was active. With ``tolerance_s = 0`` and no
  settling spans it is FAR / 100; a tolerance leaves out the rows just after a fault, where an alert still
  resolving is expected, and a settling span the rows where the plant is still recovering.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from monitor.messages import AlertEvent
from monitor.wire.labels import Label

DAY_S = 86_400.0
ANY = "any"  # evaluate_by_detector's key for the service as a whole (every detector's alerts merged)

Status = Literal["detected", "missed", "already_alerting"]
_Item = TypeVar("_Item", "Episode", "Label")


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert episode (one alert_id) of one unit and detector."""

    unit: str
    detector: str
    alert_id: str
    detected_at: float  # ts of its first firing event
    resolved_at: float | None  # ts of its resolved event; None: still firing at the end of the data
    top_sensor: str | None


@dataclass(frozen=True, slots=True)
class PointMetrics:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def far_pct(self) -> float:
        """SKAB false alarm rate: FP / (FP + TN), percent."""
        return 100.0 * self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar_pct(self) -> float:
        """SKAB missed alarm rate: FN / (FN + TP), percent."""
        return 100.0 * self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0


@dataclass(frozen=True, slots=True)
class LabelResult:
    """How one counted fault fared (see the module docstring for the statuses)."""

    label: Label
    status: Status
    delay_s: float | None  # detected: first new announcement - start; otherwise None
    alert_id: str | None  # detected: the episode that detected it; already_alerting: the one already active
    top_sensor: str | None  # of that episode

    @property
    def detected(self) -> bool:
        """Newly detected (an episode announced inside it); already alerting is not."""
        return self.status == "detected"

    @property
    def caught(self) -> bool:
        """Counted toward event recall: detected or already alerting."""
        return self.status != "missed"


@dataclass(frozen=True, slots=True)
class Evaluation:
    labels: tuple[LabelResult, ...]
    episodes: int
    false_alarms: int
    unit_days: float
    points: PointMetrics
    false_alarm_ids: tuple[str, ...] = field(default=())
    settling_alarm_ids: tuple[str, ...] = field(default=())  # announced in a settling span: neither false nor found
    left_out: tuple[Label, ...] = field(default=())  # labels not counted: unit not in the data, or start outside it
    normal_rows: int = 0  # rows outside every fault's [start, end + tolerance] and settling span of their unit
    normal_rows_alerting: int = 0  # of those, rows during which an episode of the unit was active

    @property
    def settling_alarms(self) -> int:
        return len(self.settling_alarm_ids)

    @property
    def n_faults(self) -> int:
        return len(self.labels)

    @property
    def detected(self) -> int:
        return sum(1 for r in self.labels if r.status == "detected")

    @property
    def already_alerting(self) -> int:
        return sum(1 for r in self.labels if r.status == "already_alerting")

    @property
    def event_recall(self) -> float:
        """(Detected + already alerting) / counted faults."""
        return (self.detected + self.already_alerting) / self.n_faults if self.n_faults else math.nan

    @property
    def alert_share_normal(self) -> float:
        """Share (0..1) of the normal rows during which an episode was active."""
        return self.normal_rows_alerting / self.normal_rows if self.normal_rows else math.nan

    @property
    def false_alarms_per_unit_day(self) -> float:
        return self.false_alarms / self.unit_days if self.unit_days > 0 else math.nan

    @property
    def delays_s(self) -> list[float]:
        return [r.delay_s for r in self.labels if r.delay_s is not None]

    @property
    def delay_median_s(self) -> float:
        d = self.delays_s
        return float(np.median(d)) if d else math.nan

    @property
    def delay_p90_s(self) -> float:
        d = self.delays_s
        return float(np.percentile(d, 90)) if d else math.nan

    def format(self) -> str:
        """The summary the backtest prints, one figure per line."""
        p = self.points
        lines = [
            f"faults: {self.n_faults}, detected: {self.detected}, event recall: {self.event_recall:.3f} "
            f"(already alerting at the fault's start, counted in recall: {self.already_alerting})",
        ]
        if self.left_out:
            why = "unit not in the data, or starting outside its time range"
            lines.append(f"labels left out ({why}): {len(self.left_out)}")
        lines += [
            f"alert episodes: {self.episodes}, false alarms: {self.false_alarms} over {self.unit_days:.3f} unit-days"
            f" = {self.false_alarms_per_unit_day:.2f} per unit-day; in settling spans after a fault (neither false"
            f" nor detections): {self.settling_alarms}",
            f"detection delay (detected faults): median {self.delay_median_s:.1f} s, p90 {self.delay_p90_s:.1f} s",
            f"point-wise: precision {p.precision:.3f}, recall {p.recall:.3f}, F1 {p.f1:.3f}, "
            f"FAR {p.far_pct:.2f} %, MAR {p.mar_pct:.2f} %",
            f"alert time on normal rows: {100 * self.alert_share_normal:.2f} % "
            f"({self.normal_rows_alerting} of {self.normal_rows} rows outside faults + tolerance and settling)",
        ]
        lines += [f"  {_label_line(r)}" for r in self.labels]
        return "\n".join(lines)


def _label_line(r: LabelResult) -> str:
    lab = r.label
    if r.status == "detected":
        status = f"detected after {r.delay_s:.1f} s (top sensor {r.top_sensor})"
    elif r.status == "already_alerting":
        status = f"already alerting (alert {r.alert_id} announced before the start; not an early detection)"
    else:
        status = "missed"
    return f"{lab.unit} {lab.kind} [{lab.start:.0f}, {lab.end:.0f}]: {status}"


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


def pointwise(predicted: npt.ArrayLike, truth: npt.ArrayLike) -> PointMetrics:
    """Confusion counts of per-row booleans (same length)."""
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"predicted {p.shape} and truth {t.shape} differ in shape")
    return PointMetrics(tp=int(np.sum(p & t)), fp=int(np.sum(p & ~t)), tn=int(np.sum(~p & ~t)), fn=int(np.sum(~p & t)))


def _mask(ts: npt.NDArray[np.float64], spans: Sequence[tuple[float, float]], closed_end: bool) -> npt.NDArray[np.bool_]:
    mask = np.zeros(ts.shape, dtype=bool)
    for start, end in spans:
        mask |= (ts >= start) & ((ts <= end) if closed_end else (ts < end))
    return mask


def _end(ep: Episode) -> float:
    """When the episode stopped being active (inf: still firing at the end of the data)."""
    return ep.resolved_at if ep.resolved_at is not None else math.inf


def _by_unit(items: Iterable[_Item]) -> dict[str, list[_Item]]:
    out: dict[str, list[_Item]] = {}
    for item in items:
        out.setdefault(item.unit, []).append(item)
    return out


def _time_ranges(timelines: Mapping[str, npt.ArrayLike]) -> dict[str, tuple[float, float]]:
    """First and last row time of each unit with rows."""
    ranges = {}
    for unit, raw_ts in timelines.items():
        ts = np.asarray(raw_ts, dtype=np.float64)
        if ts.size:
            ranges[unit] = (float(ts.min()), float(ts.max()))
    return ranges


def restrict_labels(labels: Iterable[Label], timelines: Mapping[str, npt.ArrayLike]) -> tuple[list[Label], list[Label]]:
    """(counted, left out): a label counts when its unit has rows and its start lies within their time range."""
    ranges = _time_ranges(timelines)
    counted: list[Label] = []
    left_out: list[Label] = []
    for lab in labels:
        span = ranges.get(lab.unit)
        (counted if span is not None and span[0] <= lab.start <= span[1] else left_out).append(lab)
    return counted, left_out


def _judge(lab: Label, unit_episodes: Sequence[Episode], tolerance_s: float) -> LabelResult:
    """Detected by the first episode announced inside the fault, else already alerting, else missed."""
    new = [ep for ep in unit_episodes if lab.start <= ep.detected_at <= lab.end + tolerance_s]
    if new:
        first = min(new, key=lambda ep: ep.detected_at)
        return LabelResult(lab, "detected", first.detected_at - lab.start, first.alert_id, first.top_sensor)
    # An episode that began before the fault and still fires tells the operator something is wrong, but it was
    # raised for something else: not a detection with a (negative) delay.
    active = [ep for ep in unit_episodes if ep.detected_at < lab.start < _end(ep)]
    if active:
        first = min(active, key=lambda ep: ep.detected_at)
        return LabelResult(lab, "already_alerting", None, first.alert_id, first.top_sensor)
    return LabelResult(lab, "missed", None, None, None)


def _in_fault(ep: Episode, unit_labels: Sequence[Label], tolerance_s: float) -> bool:
    """Announced inside some fault's [start, end + tolerance] of its unit (running into one later is no excuse)."""
    return any(lab.start <= ep.detected_at <= lab.end + tolerance_s for lab in unit_labels)


def _in_settling(ep: Episode, unit_labels: Sequence[Label], tolerance_s: float) -> bool:
    """Announced inside some fault's settling span (end + tolerance, settled] of its unit."""
    return any(lab.end + tolerance_s < ep.detected_at <= lab.settled for lab in unit_labels)


def _not_normal(lab: Label, tolerance_s: float) -> tuple[float, float]:
    """The span a fault keeps from being normal: [start, end + tolerance], then its settling span."""
    return lab.start, max(lab.end + tolerance_s, lab.settled)


def evaluate(
    episodes: Sequence[Episode],
    labels: Sequence[Label],
    timelines: Mapping[str, npt.ArrayLike],
    tolerance_s: float = 0.0,
) -> Evaluation:
    """Score episodes against labels over the units' row timestamps (see the module docstring)."""
    eps_of = _by_unit(episodes)
    labels_of = _by_unit(labels)  # every label, counted or not: a fault outside the counted ones still happened
    counted, left_out = restrict_labels(labels, timelines)
    results = [_judge(lab, eps_of.get(lab.unit, ()), tolerance_s) for lab in counted]
    false_ids: list[str] = []
    settling_ids: list[str] = []
    for ep in episodes:
        unit_labels = labels_of.get(ep.unit, ())
        if _in_fault(ep, unit_labels, tolerance_s):
            continue
        (settling_ids if _in_settling(ep, unit_labels, tolerance_s) else false_ids).append(ep.alert_id)

    unit_days = 0.0
    tp = fp = tn = fn = normal = normal_alerting = 0
    for unit, raw_ts in timelines.items():
        ts = np.asarray(raw_ts, dtype=np.float64)
        if ts.size == 0:
            continue
        unit_days += float(ts.max() - ts.min()) / DAY_S
        unit_labels = labels_of.get(unit, ())
        pred = _mask(ts, [(ep.detected_at, _end(ep)) for ep in eps_of.get(unit, ())], closed_end=False)
        truth = _mask(ts, [(lab.start, lab.end) for lab in unit_labels], closed_end=True)
        m = pointwise(pred, truth)
        tp, fp, tn, fn = tp + m.tp, fp + m.fp, tn + m.tn, fn + m.fn
        outside = ~_mask(ts, [_not_normal(lab, tolerance_s) for lab in unit_labels], closed_end=True)
        normal += int(np.sum(outside))
        normal_alerting += int(np.sum(outside & pred))
    return Evaluation(
        labels=tuple(results),
        episodes=len(episodes),
        false_alarms=len(false_ids),
        unit_days=unit_days,
        points=PointMetrics(tp, fp, tn, fn),
        false_alarm_ids=tuple(false_ids),
        settling_alarm_ids=tuple(settling_ids),
        left_out=tuple(left_out),
        normal_rows=normal,
        normal_rows_alerting=normal_alerting,
    )


def merge_episodes(episodes: Iterable[Episode], detector: str = ANY) -> list[Episode]:
    """Per unit, the union of the episodes' active spans: one Episode per stretch of overlapping or touching spans.

    A merged episode is announced when its first member was, ends with its last, takes the first member's top
    sensor and joins the members' alert ids with ``+`` (so a false alarm can be traced to its alerts).
    """
    merged: list[Episode] = []
    for unit, unit_eps in _by_unit(episodes).items():
        group: list[Episode] = []
        group_end = -math.inf
        for ep in sorted(unit_eps, key=lambda e: (e.detected_at, e.alert_id)):
            if group and ep.detected_at <= group_end:  # overlaps (or touches) the stretch: the same alarm
                group.append(ep)
                group_end = max(group_end, _end(ep))
                continue
            if group:
                merged.append(_merged(unit, detector, group, group_end))
            group, group_end = [ep], _end(ep)
        if group:
            merged.append(_merged(unit, detector, group, group_end))
    merged.sort(key=lambda ep: (ep.detected_at, ep.alert_id))
    return merged


def _merged(unit: str, detector: str, group: Sequence[Episode], end: float) -> Episode:
    first = group[0]
    alert_id = "+".join(ep.alert_id for ep in group)
    return Episode(unit, detector, alert_id, first.detected_at, None if math.isinf(end) else end, first.top_sensor)


def evaluate_by_detector(
    episodes: Sequence[Episode],
    labels: Sequence[Label],
    timelines: Mapping[str, npt.ArrayLike],
    tolerance_s: float = 0.0,
    detectors: Iterable[str] = (),
) -> dict[str, Evaluation]:
    """One Evaluation per detector, then ``"any"`` (ANY) for all detectors' alerts merged (``merge_episodes``).

    The detectors are ``detectors`` (so one that never alerted still shows its missed faults), in that order,
    followed by any other detector the episodes name, in order of first appearance.
    """
    names = list(dict.fromkeys([*detectors, *(ep.detector for ep in episodes)]))
    if ANY in names:
        raise ValueError(f"a detector must not be called {ANY!r}: that key is the merged view")
    reports = {
        name: evaluate([ep for ep in episodes if ep.detector == name], labels, timelines, tolerance_s) for name in names
    }
    reports[ANY] = evaluate(merge_episodes(episodes), labels, timelines, tolerance_s)
    return reports
