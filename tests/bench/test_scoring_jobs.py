"""benchmarks/scoring.py's jobs are what the service scores: windows taken from ring buffers, in row order.

(Padding a batch to a few fixed sizes, once tested here, is the models' business now: models.model_api.padded_infer,
checked for every kind and runtime by tests/models/test_contract.py.)
"""

from __future__ import annotations

import numpy as np

from benchmarks.scoring import ROWS_PER_UNIT, WINDOW, ring_buffer_jobs


def test_benchmark_windows_come_from_ring_buffers_in_row_order() -> None:
    by_row = ring_buffer_jobs(3)
    assert len(by_row) == ROWS_PER_UNIT
    for r, jobs in enumerate(by_row):
        assert [j.unit for j in jobs] == ["u00000", "u00001", "u00002"]
        assert all(j.window.shape == (WINDOW, 8) and np.isfinite(j.window).all() for j in jobs)
        if r:
            assert all(j.end_ts == p.end_ts + 1.0 for j, p in zip(jobs, by_row[r - 1], strict=True))
            # consecutive windows of a unit overlap by all but one row
            np.testing.assert_array_equal(jobs[0].window[:-1], by_row[r - 1][0].window[1:])
