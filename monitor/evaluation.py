"""Detection quality: alert events (or per-row flags) against ground-truth fault labels.

API (pure numpy, no torch)::

    labels = load_labels("faults.csv")                 # CSV: unit,kind,start,end,sensors (epoch s, sensors ;-joined)
    episodes = episodes_from_events(events)            # AlertEvents -> one Episode per alert_id
    report = evaluate(episodes, labels, timelines={"R1": row_ts}, tolerance_s=60)
    print(report.format())
    pointwise(pred_flags, true_flags)                  # -> PointMetrics from per-row booleans

Definitions (all causal: an alert counts from the event time it was published at):

- An episode is detected at its first ``firing`` event's ``ts`` (what an operator sees), active until its
  ``resolved`` event (or the end of the data).
- A labelled fault ``[start, end]`` is detected when an episode of its unit is first announced within
  ``[start, end + tolerance_s]``; its detection delay is that announcement minus ``start``. Event recall =
  detected faults / faults.
- A false alarm is an episode whose active span overlaps no fault ``[start, end + tolerance_s]`` of its unit.
  False alarms per unit-day divide by the summed time span of the units' timelines.
- Point-wise: each timeline row is predicted anomalous while an episode of its unit is active, and truly
  anomalous inside a fault ``[start, end]``; precision, recall, F1, and SKAB's FAR = FP / (FP + TN) and
  MAR = FN / (FN + TP), in percent.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.messages import AlertEvent

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Label:
    """One injected or recorded fault."""

    unit: str
    kind: str
    start: float
    end: float
    sensors: tuple[str, ...] = ()


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
    label: Label
    detected: bool
    delay_s: float | None
    alert_id: str | None
    top_sensor: str | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    labels: tuple[LabelResult, ...]
    episodes: int
    false_alarms: int
    unit_days: float
    points: PointMetrics
    false_alarm_ids: tuple[str, ...] = field(default=())

    @property
    def n_faults(self) -> int:
        return len(self.labels)

    @property
    def detected(self) -> int:
        return sum(1 for r in self.labels if r.detected)

    @property
    def event_recall(self) -> float:
        return self.detected / self.n_faults if self.n_faults else math.nan

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
            f"faults: {self.n_faults}, detected: {self.detected}, event recall: {self.event_recall:.3f}",
            f"alert episodes: {self.episodes}, false alarms: {self.false_alarms} over {self.unit_days:.3f} unit-days"
            f" = {self.false_alarms_per_unit_day:.2f} per unit-day",
            f"detection delay: median {self.delay_median_s:.1f} s, p90 {self.delay_p90_s:.1f} s",
            f"point-wise: precision {p.precision:.3f}, recall {p.recall:.3f}, F1 {p.f1:.3f}, "
            f"FAR {p.far_pct:.2f} %, MAR {p.mar_pct:.2f} %",
        ]
        for r in self.labels:
            lab = r.label
            status = f"detected after {r.delay_s:.1f} s (top sensor {r.top_sensor})" if r.detected else "missed"
            lines.append(f"  {lab.unit} {lab.kind} [{lab.start:.0f}, {lab.end:.0f}]: {status}")
        return "\n".join(lines)


def load_labels(path: str | Path) -> list[Label]:
    """Read a label CSV (``unit,kind,start,end,sensors``); ValueError names the bad line."""
    labels = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"unit", "kind", "start", "end"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: label file lacks columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                start, end = float(row["start"]), float(row["end"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: start/end must be epoch seconds: {exc}") from exc
            if not (math.isfinite(start) and math.isfinite(end) and end >= start):
                raise ValueError(f"{path}:{line}: need finite start <= end, got {start}, {end}")
            sensors = tuple(s for s in (row.get("sensors") or "").split(";") if s)
            labels.append(Label(row["unit"], row["kind"], start, end, sensors))
    return labels


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


def evaluate(
    episodes: Sequence[Episode],
    labels: Sequence[Label],
    timelines: Mapping[str, npt.ArrayLike],
    tolerance_s: float = 0.0,
) -> Evaluation:
    """Score episodes against labels over the units' row timestamps (see the module docstring)."""
    by_unit: dict[str, list[Episode]] = {}
    for ep in episodes:
        by_unit.setdefault(ep.unit, []).append(ep)
    results = []
    for lab in labels:
        hits = [ep for ep in by_unit.get(lab.unit, ()) if lab.start <= ep.detected_at <= lab.end + tolerance_s]
        if hits:
            best = min(hits, key=lambda ep: ep.detected_at)
            results.append(LabelResult(lab, True, best.detected_at - lab.start, best.alert_id, best.top_sensor))
        else:
            results.append(LabelResult(lab, False, None, None, None))

    false_ids = []
    for ep in episodes:
        end = ep.resolved_at if ep.resolved_at is not None else math.inf
        overlaps = any(
            lab.unit == ep.unit and ep.detected_at <= lab.end + tolerance_s and end >= lab.start for lab in labels
        )
        if not overlaps:
            false_ids.append(ep.alert_id)

    unit_days = 0.0
    tp = fp = tn = fn = 0
    for unit, raw_ts in timelines.items():
        ts = np.asarray(raw_ts, dtype=np.float64)
        if ts.size == 0:
            continue
        unit_days += float(ts.max() - ts.min()) / DAY_S
        active = [
            (ep.detected_at, ep.resolved_at if ep.resolved_at is not None else math.inf) for ep in by_unit.get(unit, ())
        ]
        truth = _mask(ts, [(lab.start, lab.end) for lab in labels if lab.unit == unit], closed_end=True)
        pred = _mask(ts, active, closed_end=False)
        m = pointwise(pred, truth)
        tp, fp, tn, fn = tp + m.tp, fp + m.fp, tn + m.tn, fn + m.fn
    return Evaluation(
        labels=tuple(results),
        episodes=len(episodes),
        false_alarms=len(false_ids),
        unit_days=unit_days,
        points=PointMetrics(tp, fp, tn, fn),
        false_alarm_ids=tuple(false_ids),
    )
