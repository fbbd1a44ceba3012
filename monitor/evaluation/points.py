"""Point-wise detection figures: per-row predicted and true flags, their confusion counts and rates.

API (pure numpy)::

    m = pointwise(pred_flags, true_flags)      # -> PointMetrics(tp, fp, tn, fn)
    m.precision, m.recall, m.f1, m.far_pct, m.mar_pct
    span_mask(ts, spans, closed_end)           # rows of ts inside any [start, end) (or [start, end])

FAR = FP / (FP + TN) and MAR = FN / (FN + TP), in percent: SKAB's leaderboard definitions
(benchmarks/quality_skab.py relies on them). Apart from the event-level judgement (monitor.evaluation.judge) because
SKAB's figures are computed from per-row flags alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


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


def pointwise(predicted: npt.ArrayLike, truth: npt.ArrayLike) -> PointMetrics:
    """Confusion counts of per-row booleans (same length)."""
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"predicted {p.shape} and truth {t.shape} differ in shape")
    return PointMetrics(tp=int(np.sum(p & t)), fp=int(np.sum(p & ~t)), tn=int(np.sum(~p & ~t)), fn=int(np.sum(~p & t)))


def span_mask(
    ts: npt.NDArray[np.float64], spans: Sequence[tuple[float, float]], closed_end: bool
) -> npt.NDArray[np.bool_]:
    mask = np.zeros(ts.shape, dtype=bool)
    for start, end in spans:
        mask |= (ts >= start) & ((ts <= end) if closed_end else (ts < end))
    return mask
