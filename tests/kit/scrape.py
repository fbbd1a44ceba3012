"""The one reader of the service's /metrics for tests and benchmarks: samples by name and labels, histograms.

    samples = scrape(port)                    # GET http://127.0.0.1:PORT/metrics, parsed
    samples = Samples.parse(text)             # the same from exposition text
    samples.value("plantwatch_windows_scored_total", detector="reconstruction")   # NaN when no sample matches
    samples.value("plantwatch_readings_received_total")       # without labels: every sample of it summed
    samples.total(name, **labels)             # the same, 0.0 when no sample matches (a count of nothing)
    samples.labelled(name) -> {'reason="gap"': 3.0, ...}       # label text -> value
    samples.by_label(name, "reason") -> {"gap": 3.0, ...}      # one label's values, the others summed
    samples.histogram(name, **labels) -> [(upper bound, cumulative count), ...]   # buckets, summed over labels
    increase(before, after); quantile(deltas, q); share_within(deltas, bound_s)  # over two scrapes' buckets

``labels`` select the samples that carry them (any others summed over), so naming every label gives the one
sample. The text format of prometheus_client (no timestamps); a line is ``name{labels} value``. Label text is
parsed only for the metric asked about: a benchmark scrape at thousands of units has hundreds of thousands of
lines, and most questions are totals.
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Iterator

_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 30.0) -> Samples:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as response:
        return Samples.parse(response.read().decode())


_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n", '"': '"', "\\": "\\"}


def parse_labels(text: str) -> dict[str, str]:
    """``a="x",b="y\\"z"`` -> {"a": "x", "b": 'y"z'} (the exposition's escapes undone)."""
    return {k: _ESCAPE.sub(lambda m: _ESCAPED.get(m.group(1), m.group(0)), v) for k, v in _LABEL.findall(text)}


class Samples:
    """One scrape: per metric name, its samples as (label text without braces, value)."""

    def __init__(self, series: dict[str, list[tuple[str, float]]]) -> None:
        self.series = series

    @classmethod
    def parse(cls, text: str) -> Samples:
        series: dict[str, list[tuple[str, float]]] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            name, _, labels = key.partition("{")
            try:
                number = float(value)
            except ValueError:
                continue
            series.setdefault(name, []).append((labels[:-1] if labels.endswith("}") else labels, number))
        return cls(series)

    def names(self) -> list[str]:
        return sorted(self.series)

    def matching(self, name: str, **labels: str) -> Iterator[tuple[str, float]]:
        """(label text, value) of each sample of ``name`` that carries ``labels``."""
        for text, value in self.series.get(name, ()):
            if not labels:
                yield text, value
                continue
            have = parse_labels(text)
            if all(have.get(k) == v for k, v in labels.items()):
                yield text, value

    def value(self, name: str, **labels: str) -> float:
        values = [v for _, v in self.matching(name, **labels)]
        return math.fsum(values) if values else math.nan

    def total(self, name: str, **labels: str) -> float:
        return math.fsum(v for _, v in self.matching(name, **labels))

    def labelled(self, name: str) -> dict[str, float]:
        return dict(self.series.get(name, ()))

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for text, value in self.series.get(name, ()):
            key = parse_labels(text).get(label)
            if key is not None:
                out[key] = out.get(key, 0.0) + value
        return out

    def histogram(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """[(upper bound, cumulative count)] of histogram ``name``, ascending, summed over the other labels."""
        buckets: dict[float, float] = {}
        for text, value in self.matching(name + "_bucket", **labels):
            le = parse_labels(text).get("le")
            if le is not None:
                bound = math.inf if le == "+Inf" else float(le)
                buckets[bound] = buckets.get(bound, 0.0) + value
        return sorted(buckets.items())


def increase(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The buckets' increase between two scrapes (a bucket absent before counts from 0)."""
    old = dict(before)
    return [(bound, count - old.get(bound, 0.0)) for bound, count in after]


def quantile(deltas: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile over bucket increases (linear within the bucket; NaN when nothing was observed)."""
    count = deltas[-1][1] if deltas else 0.0
    if count <= 0:
        return math.nan
    rank = q * count
    prev_bound, prev_count = 0.0, 0.0
    for bound, cumulative in deltas:
        if cumulative >= rank:
            if math.isinf(bound):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(cumulative - prev_count, 1e-9)
        prev_bound, prev_count = bound, cumulative
    return math.nan


def share_within(deltas: list[tuple[float, float]], bound_s: float) -> float:
    """Share of the observations at or under ``bound_s``, which must be a bucket bound (exact, not interpolated)."""
    count = deltas[-1][1] if deltas else 0.0
    at = [c for b, c in deltas if math.isclose(b, bound_s)]
    if not at:
        raise ValueError(f"{bound_s} s is not a bucket bound of the histogram")
    return at[0] / count if count > 0 else math.nan
