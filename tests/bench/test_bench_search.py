"""pipeline.py's search for the largest unit count that holds (the histogram readings: tests/kit/test_kit.py).

The search is run against a known capacity (a unit count holds when it is at most the capacity), so its answer
and the counts it tried can be checked exactly.
"""

from __future__ import annotations

import pytest

from benchmarks.pipeline import search_largest


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
