"""Scoring at padded batch sizes (monitor.scheduler.padded_batch) gives exactly the unpadded results.

The scheduler pads every batch to one of a few sizes so that oneDNN's per-shape primitive cache stays bounded
(benchmarks/memory.py found RSS growing without it); the padding must never change a score, a forecast or an
attention weight, nor the number of results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.scoring import ROWS_PER_UNIT, WINDOW, ring_buffer_jobs
from monitor.scheduler import TimedModel, padded_batch

SENSORS = ("a", "b", "c")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    from models.train import TrainConfig, train_model

    torch.set_num_threads(1)
    t = np.arange(400, dtype=np.float64)
    data = np.stack([np.sin(t / 9.0), np.cos(t / 7.0), 0.1 * np.sin(t / 5.0)], axis=1)
    root = tmp_path_factory.mktemp("padded")
    out = {}
    for kind, sizes in (("lstm_ae", {"hidden_size": 8, "latent_size": 2}), ("attention_lstm", {"hidden_size": 8})):
        config = TrainConfig(kind=kind, window=10, epochs=1, progress=False, device="cpu", num_layers=1, **sizes)
        out[kind] = train_model(data, SENSORS, root / kind, config)
    return out


def test_padded_batch_sizes() -> None:
    assert [padded_batch(n) for n in (0, 1, 2, 3, 5, 17, 32, 33, 64, 65, 512, 513)] == [
        0,
        1,
        2,
        4,
        8,
        32,
        32,
        64,
        64,
        96,
        512,
        544,
    ]
    assert len({padded_batch(n) for n in range(1, 513)}) == 21  # the shapes oneDNN ever sees up to 512


@pytest.mark.parametrize("kind", ["lstm_ae", "attention_lstm"])
@pytest.mark.parametrize("n", [3, 5, 33])
def test_padding_changes_no_result(tiny_models: dict[str, Path], kind: str, n: int) -> None:
    from models.artifacts import load_artifact

    model = load_artifact(tiny_models[kind])
    rng = np.random.default_rng(n)
    windows = rng.normal(size=(n, 10, 3)).astype(np.float32)
    windows[0, :4, 1] = np.nan  # a gap: filled inside the window, as in the service
    plain = model.infer(windows)
    padded = TimedModel(model, None).infer(windows)
    for field in ("scores", "sensor_errors", "forecasts", "attention"):
        a, b = getattr(plain, field), getattr(padded, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert b.shape == a.shape and b.shape[0] == n
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=field)


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
