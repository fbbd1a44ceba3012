"""When an alert fires, resolves and repeats: the per-unit alert policy, checked once when it is made.

API::

    policy = AlertPolicy(fire_hits=3, fire_window=5, resolve_hits=10, min_duration_s=30, renotify_s=600,
                         adapt=AdaptPolicy(), outside_envelope="warn", fire_evidence=5.0)   # ValueError if invalid
    EnvelopePolicy                          # "alert" | "warn" | "suppress": scores outside the training envelope

Why a module of its own: the policy is the one thing of the alerts package the configuration side builds
(monitor.params converts a unit's ``alerts`` config into it) and every tracker only reads; what each field does
to an episode is told in monitor.alerts.tracker's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from monitor.thresholds import AdaptPolicy

EnvelopePolicy = Literal["alert", "warn", "suppress"]


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When an alert fires, resolves and repeats (converted from a unit's ``alerts`` config by the caller)."""

    fire_hits: int = 3  # k: hits needed ...
    fire_window: int = 5  # n: ... among the last n scores
    resolve_hits: int = 10  # m consecutive scores under the resolve level resolve it
    resolve_ratio: float = 0.8  # resolve level / threshold where the Score has no calibrated resolve level
    min_duration_s: float = 30.0  # an episode lasts at least this long (event time)
    renotify_s: float = 600.0  # repeat a firing event this often while it lasts; 0 = never
    critical_ratio: float = 2.0  # critical level / threshold where the Score has no calibrated critical level
    top_sensors: int = 3  # contributors listed in an event
    adapt: AdaptPolicy = field(default_factory=AdaptPolicy)
    outside_envelope: EnvelopePolicy = "warn"
    persist_s: float = 300.0  # republish the retained state this often (event time) while thresholds adapt
    # Evidence a model-score episode needs before it fires (reconstruction and forecast; the sensor detector's
    # threshold is a rule, not a fitted tail): the accumulated normalised excess, a CUSUM of (score / threshold
    # - 1) that cannot go below 0, must reach this level as well as fire_hits of fire_window. A big exceedance
    # brings it at once (3 windows at 1.7 x the threshold: the k-of-n delay); scores a few per cent over the
    # threshold for a minute do not. 0 = the k-of-n rule alone. See benchmarks/QUALITY.md for how it was chosen.
    fire_evidence: float = 5.0
    # The most one score under the threshold drains from the evidence: a noisy ramp whose scores straddle the
    # threshold keeps what its hits brought (tests/unit/test_thresholds.py's 4 h ramp), a quiet stretch empties it.
    evidence_drain: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.fire_hits <= self.fire_window:
            raise ValueError(f"need 1 <= fire_hits <= fire_window, got {self.fire_hits} of {self.fire_window}")
        if self.resolve_hits < 1:
            raise ValueError(f"resolve_hits must be >= 1, got {self.resolve_hits}")
        if not 0 < self.resolve_ratio <= 1:
            raise ValueError(f"resolve_ratio must be in (0, 1], got {self.resolve_ratio}")
        if self.min_duration_s < 0 or self.renotify_s < 0:
            raise ValueError("min_duration_s and renotify_s must be >= 0")
        if self.critical_ratio < 1:
            raise ValueError(f"critical_ratio must be >= 1, got {self.critical_ratio}")
        if self.top_sensors < 1:
            raise ValueError(f"top_sensors must be >= 1, got {self.top_sensors}")
        if self.outside_envelope not in ("alert", "warn", "suppress"):
            raise ValueError(f"outside_envelope must be alert, warn or suppress, got {self.outside_envelope!r}")
        if self.persist_s <= 0:
            raise ValueError("persist_s must be > 0")
        if not (math.isfinite(self.evidence_drain) and self.evidence_drain > 0):
            raise ValueError(f"evidence_drain must be a finite number > 0, got {self.evidence_drain}")
        if not (math.isfinite(self.fire_evidence) and self.fire_evidence >= 0):
            raise ValueError(f"fire_evidence must be a finite number >= 0, got {self.fire_evidence}")
