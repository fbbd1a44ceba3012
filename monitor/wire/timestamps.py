"""Event time from text, one rule for every format: epoch seconds, or ISO 8601.

An MQTT ``ts`` string must carry its zone (DESIGN.md wire contract: a gateway's local time is ambiguous);
a CSV cell without one is read as UTC (data sets such as SKAB are written that way).
"""

from __future__ import annotations

import datetime as dt
import math


class NoZoneError(ValueError):
    """ISO 8601 text without a zone where one is required."""


def epoch_from_iso(text: str, *, naive_is_utc: bool) -> float:
    """Epoch seconds of ISO 8601 ``text`` (``Z`` or ``+hh:mm``); ValueError if it is not ISO 8601, NoZoneError if
    it has no zone and ``naive_is_utc`` is False."""
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise NoZoneError(f"{text[:40]!r} has no zone")
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def parse_time(text: str) -> float:
    """A CSV time cell: a finite number of epoch seconds, or ISO 8601 (no zone = UTC); ValueError otherwise."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return epoch_from_iso(text, naive_is_utc=True)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]!r} is not a finite time")
    return value
