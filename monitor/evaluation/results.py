"""What an evaluation returns: LabelResult (how one counted fault fared) and Evaluation (every figure).

API (frozen records; monitor.evaluation.judge.evaluate builds them)::

    report.event_recall, report.false_alarms_per_unit_day, report.delay_median_s, report.points (PointMetrics)
    report.labels          # one LabelResult(label, status, delay_s, alert_id, top_sensor) per counted fault
    print(report.format()) # the summary the backtest prints, one figure per line

Apart from the judgement so that readers of the figures (the backtest's command, the quality benchmarks) see the
records and their summary without the rules; the statuses and figures are defined in monitor.evaluation.judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from monitor.evaluation.points import PointMetrics
from monitor.wire.labels import Label

Status = Literal["detected", "missed", "already_alerting"]


@dataclass(frozen=True, slots=True)
class LabelResult:
    """How one counted fault fared (monitor.evaluation.judge defines the statuses)."""

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
