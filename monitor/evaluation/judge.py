"""The judgement: alert episodes against ground-truth fault labels, over the units' row times, per detector.

API (pure numpy, no torch)::

    labels = read_labels("faults.csv")                 # monitor.wire.labels: [Label(unit, kind, start, end, ...)]
    episodes = episodes_from_events(events)            # monitor.evaluation.episodes: one Episode per alert_id
    report = evaluate(episodes, labels, timelines={"R1": row_ts}, tolerance_s=60)   # -> Evaluation (evaluation.results)
    print(report.format())
    reports = evaluate_by_detector(episodes, labels, timelines, tolerance_s=60)   # {detector: Evaluation, "any": ...}
    restrict_labels(labels, timelines)                 # -> (labels counted, labels left out)

The rules live here, the records they fill in monitor.evaluation.results, the episodes and the per-row figures in
monitor.evaluation.episodes and .points: this module is the one place that says what counts as detected, missed,
false or settling.

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

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from monitor.evaluation.episodes import ANY, Episode, by_unit, episode_end, merge_episodes
from monitor.evaluation.points import PointMetrics, pointwise, span_mask
from monitor.evaluation.results import Evaluation, LabelResult
from monitor.wire.labels import Label

DAY_S = 86_400.0


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
    active = [ep for ep in unit_episodes if ep.detected_at < lab.start < episode_end(ep)]
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
    eps_of = by_unit(episodes)
    labels_of = by_unit(labels)  # every label, counted or not: a fault outside the counted ones still happened
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
        pred = span_mask(ts, [(ep.detected_at, episode_end(ep)) for ep in eps_of.get(unit, ())], closed_end=False)
        truth = span_mask(ts, [(lab.start, lab.end) for lab in unit_labels], closed_end=True)
        m = pointwise(pred, truth)
        tp, fp, tn, fn = tp + m.tp, fp + m.fp, tn + m.tn, fn + m.fn
        outside = ~span_mask(ts, [_not_normal(lab, tolerance_s) for lab in unit_labels], closed_end=True)
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
