"""pipeline.py's arithmetic: the search for the largest unit count that holds, and the histogram readings.

The search is run against a known capacity (a unit count holds when it is at most the capacity), so its answer
and the counts it tried can be checked exactly; the histogram helpers against hand-made bucket counts.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.pipeline import increase, quantile, search_largest, share_within


def _search(capacity: int, start: int = 2000, limit: int = 10000, step: int = 250, budget: int = 100):
    tried: list[int] = []

    def held(n: int) -> bool:
        tried.append(n)
        return n <= capacity

    best, cut = search_largest(held, start, limit, step, 1.5, lambda: len(tried) < budget)
    return best, cut, tried


@pytest.mark.parametrize("capacity", [*range(0, 12001, 137), 2000, 2250, 3700, 10000])
def test_search_finds_the_largest_count_on_the_grid(capacity: int) -> None:
    best, cut, tried = _search(capacity)
    expected = min(capacity // 250 * 250, 10000)
    assert best == (expected if expected >= 250 else None)
    assert not cut
    assert len(tried) == len(set(tried)) <= 12  # never the same count twice, a handful of runs
    assert all(n % 250 == 0 and 250 <= n <= 10000 for n in tried)


def test_search_goes_up_then_bisects() -> None:
    best, _, tried = _search(3700)
    assert tried == [2000, 3000, 4500, 3750, 3500]
    assert best == 3500


def test_search_halves_a_start_that_fails() -> None:
    best, _, tried = _search(600)
    assert tried == [2000, 1000, 500, 750]
    assert best == 500


def test_search_cut_by_the_budget_keeps_the_largest_so_far() -> None:
    best, cut, tried = _search(5000, budget=2)
    assert tried == [2000, 3000]
    assert (best, cut) == (3000, True)


BUCKETS = [(0.1, 10.0), (0.25, 60.0), (0.5, 95.0), (1.0, 100.0), (math.inf, 100.0)]


def test_quantile_and_share_over_the_increase_between_scrapes() -> None:
    before = [(b, c / 2) for b, c in BUCKETS]
    after = [(b, c * 1.5) for b, c in BUCKETS]
    deltas = increase(before, after)
    assert deltas == BUCKETS
    assert share_within(deltas, 0.25) == pytest.approx(0.6)
    assert quantile(deltas, 0.6) == pytest.approx(0.25)
    assert quantile(deltas, 0.99) == pytest.approx(0.5 + 0.5 * 4 / 5)  # linear inside (0.5, 1.0]
    assert quantile(deltas, 0.05) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="bucket bound"):
        share_within(deltas, 0.3)


def test_an_empty_histogram_has_no_quantile() -> None:
    empty = [(b, 0.0) for b, _ in BUCKETS]
    assert math.isnan(quantile(empty, 0.99))
    assert math.isnan(share_within(empty, 0.25))
