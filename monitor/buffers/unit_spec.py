"""UnitSpec: how one unit's readings are aligned and windowed, checked once when the buffers are built.

API (frozen; the caller converts the unit's config, monitor.params and the backtest)::

    spec = UnitSpec(sensors=("a", "b"), period_s=1.0, window_rows=64, max_clock_skew_s=5.0)
    spec.capacity                  # ring rows: window_rows + max(window_rows, REDELIVERY_MARGIN_ROWS) by default

Apart from the aligner and the ring because the config side (monitor.params, monitor.scorer) needs the spec and
nothing of the buffers' machinery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# After a reconnect the broker resends the QoS 1 messages the service had not acknowledged (mosquitto keeps up to
# max_inflight_messages = 20 in flight per client), and a reconnecting publisher resends its own unacknowledged
# ones: they land up to a few dozen rows behind the newest. Keeping that many closed rows lets the ring recognise
# them as duplicates instead of counting them as late. 64 rows x 8 sensors x 4 B is 2 KiB a unit.
REDELIVERY_MARGIN_ROWS = 64


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """How one unit's readings are aligned and windowed (converted from the unit's config by the caller).

    window_rows: rows in each WindowJob, the largest window of the unit's models (see scoring.required_window_rows).
    capacity_rows: ring size; None means ``window_rows + max(window_rows, REDELIVERY_MARGIN_ROWS)``. It bounds how
    far back a redelivery is recognised as a duplicate rather than late.
    """

    sensors: tuple[str, ...]
    period_s: float = 1.0
    origin_s: float | None = None  # a time on the row grid (only its phase counts); None: the first reading's
    max_lateness_s: float = 5.0
    max_gap_periods: int = 3
    window_rows: int = 64
    capacity_rows: int | None = None
    # Rows of a silence closed in bulk that yield a health record each after the first row past the hold-over
    # (the alert policy's fire_window: enough for k of n to fire); then one more for the span's last row.
    silent_rows: int = 5
    # The clock guard (monitor.timeline): a first reading may lag the receive clock by this much. None: no guard,
    # readings are judged by event time alone (the aligner's own tests).
    max_clock_skew_s: float | None = None

    def __post_init__(self) -> None:
        if not self.sensors:
            raise ValueError("a unit needs at least one sensor")
        if len(set(self.sensors)) != len(self.sensors):
            raise ValueError(f"sensor names must be unique, got {list(self.sensors)}")
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"period_s must be a positive number, got {self.period_s}")
        if self.origin_s is not None and not math.isfinite(self.origin_s):
            raise ValueError(f"origin_s must be a finite number, got {self.origin_s}")
        if not (math.isfinite(self.max_lateness_s) and self.max_lateness_s >= 0):
            raise ValueError(f"max_lateness_s must be >= 0, got {self.max_lateness_s}")
        if self.max_gap_periods < 0:
            raise ValueError(f"max_gap_periods must be >= 0, got {self.max_gap_periods}")
        if self.window_rows < 1:
            raise ValueError(f"window_rows must be >= 1, got {self.window_rows}")
        if self.capacity_rows is not None and self.capacity_rows < self.window_rows:
            raise ValueError(f"capacity_rows {self.capacity_rows} is smaller than window_rows {self.window_rows}")
        if self.silent_rows < 0:
            raise ValueError(f"silent_rows must be >= 0, got {self.silent_rows}")
        skew = self.max_clock_skew_s
        if skew is not None and not (math.isfinite(skew) and skew >= 0):
            raise ValueError(f"max_clock_skew_s must be >= 0, got {self.max_clock_skew_s}")

    @property
    def capacity(self) -> int:
        if self.capacity_rows is not None:
            return self.capacity_rows
        return self.window_rows + max(self.window_rows, REDELIVERY_MARGIN_ROWS)
