"""Strict readers of the JSON fields the alert payloads carry: a wrong type is a ValueError, never a coercion.

API::

    number(x) -> float            # a finite int or float (not a bool, not NaN / inf)
    number_or(x, default)         # None -> default, else number(x)
    text(x) -> str                # a string
    strict_bool(x) -> bool        # true or false (not 0 / 1)
    finite_or_none(x) -> float | None   # what is written: JSON has no NaN or inf, an unknown level is null

Why a module of its own: the alert event payload (monitor.alerts.event_payload) and the trackers' retained state
(monitor.alerts.tracker) read their fields by the same rules, so what a restart accepts is what a subscriber does.
"""

from __future__ import annotations

import math
from typing import Any


def number(x: Any) -> float:
    """``x`` as a float; ValueError unless it is a finite JSON number."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"expected a finite number, got {x!r}")
    return float(x)


def number_or(x: Any, default: float) -> float:
    """``default`` for a null (absent) field, else ``number(x)``."""
    return default if x is None else number(x)


def text(x: Any) -> str:
    """``x``; ValueError unless it is a string."""
    if not isinstance(x, str):
        raise ValueError(f"expected a string, got {x!r}")
    return x


def strict_bool(x: Any) -> bool:
    """``x``; ValueError unless it is a JSON boolean."""
    if not isinstance(x, bool):
        raise ValueError(f"expected a boolean, got {x!r}")
    return x


def finite_or_none(x: float) -> float | None:
    """``x``, or None for NaN and inf (written as null)."""
    return x if math.isfinite(x) else None
