"""Durations from text, one rule for every place that reads one: scenario files, command-line options.

API::

    parse_duration("3h40m")        -> 13200.0
    parse_duration(90)             -> 90.0       (a number is seconds)
    parse_duration("1.5h", "--duration")         (``what`` names the field in the ValueError)
    format_duration(13200)         -> "3h40m"    (what parse_duration reads back; progress lines)

Text is one number with an optional unit (``90``, ``90s``, ``250ms``, ``5m``, ``5min``, ``1.5h``, ``2d``) or several
terms each with its unit, largest first, each unit once (``3h40m``, ``1d 6h``, ``2m30s``): ``40m3h`` is refused,
as it is more likely a typing slip than a way to write 3 h 40 min. Negative, infinite and NaN durations are
refused. The service's config states its durations as numbers of seconds (the ``*_s`` keys) and reads no text.
"""

from __future__ import annotations

import itertools
import math
import re

UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
# "min" and "ms" before "m": the alternation takes the first that matches.
_TERM = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(min|ms|s|m|h|d)?")
EXAMPLES = "90, '90s', '5m', '3h40m' or '2d'"


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds from a number or text (module docstring); ValueError naming ``what`` otherwise."""
    seconds = _seconds(value)
    if seconds is None:
        raise ValueError(f"{what}: expected a duration such as {EXAMPLES}, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what}: must be a finite, non-negative duration, got {value!r}")
    return seconds


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):  # YAML's yes/no: a bool is an int in Python, never a duration
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    terms: list[tuple[float, str | None]] = []
    pos = 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None or match.end() == pos:
            return None
        terms.append((float(match.group(1)), match.group(2)))
        pos = match.end()
    if not terms:
        return None
    if len(terms) == 1:
        number, unit = terms[0]
        return number * (UNIT_SECONDS[unit] if unit else 1.0)
    if any(unit is None for _, unit in terms):
        return None  # "3h40": a compound duration names every unit
    sizes = [UNIT_SECONDS[unit] for _, unit in terms if unit is not None]
    if any(larger <= smaller for larger, smaller in itertools.pairwise(sizes)):
        return None  # units largest first, each once
    return sum(number * size for (number, _), size in zip(terms, sizes, strict=True))


def format_duration(seconds: float) -> str:
    """``seconds`` as the text parse_duration reads, to the second: ``3h40m``, ``2m05s``, ``12s``, ``1d2h``."""
    if not math.isfinite(seconds):
        return str(seconds)
    sign = "-" if seconds < 0 else ""
    rest = round(abs(seconds))
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while len(parts) > 1 and parts[0][0] == 0:  # no leading zero terms
        parts.pop(0)
    while len(parts) > 1 and parts[-1][0] == 0:  # nor trailing ones
        parts.pop()
    text = f"{parts[0][0]}{parts[0][1]}" + "".join(f"{n:02d}{unit}" for n, unit in parts[1:])
    return sign + text
