"""Model speed: training time at the seed's sizes, and inference windows/s (batched vs the seed's loop), per kind.

    .venv/bin/python -m benchmarks.model_speed            # full run (20 epochs per model)
    .venv/bin/python -m benchmarks.model_speed --quick    # a smoke run (2 epochs, shorter timings)
    .venv/bin/python -m benchmarks.model_speed --device cuda

Training: every model on its seed example's own synthetic data and sizes (models.synthetic.seed_signal:
hidden sizes, layers, dropout, windows, series lengths), a fixed number of epochs (no early stop),
minibatch 64. ``train s`` is the optimisation loop; ``total s`` adds scaling, windowing,
calibration and writing the artifact.

Inference: ``LoadedModel.infer`` on B windows at a time (B = 1, 64, 512), raw windows in, scores or
forecasts out (scaling, missing-value fill and the forward pass included). The reference is the
seed's style, measured in the same run: one forward call per window (``model(x[i:i+1])`` in a
Python loop, under ``torch.no_grad``). Each rate is the best of 3 timed rounds. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from models.artifacts import load_artifact
from models.device import resolve_device
from models.inference import LoadedModel
from models.preprocessing import sliding_windows
from models.synthetic import seed_signal
from models.train import train_model
from models.train_config import TrainConfig

# (label, seed signal, kind override): the deeper LSTM is the seed's example 5; lstm_ae is ours,
# trained on the BiLSTM example's data at its default sizes.
MODELS: tuple[tuple[str, str, str | None], ...] = (
    ("rnn", "rnn", None),
    ("lstm", "lstm", None),
    ("lstm_deep (128x3, dropout 0.2)", "lstm_deep", None),
    ("gru", "gru", None),
    ("seq2seq (H=10)", "seq2seq", None),
    ("attention_lstm", "attention_lstm", None),
    ("bilstm", "bilstm", None),
    ("lstm_ae (default detector)", "bilstm", "lstm_ae"),
)
BATCHES = (1, 64, 512)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], object], n_windows: int, min_seconds: float, device: torch.device, rounds: int = 3) -> float:
    """Windows per second of ``fn`` (which handles ``n_windows``): the best of ``rounds`` timed rounds.

    The best round, not the mean: the machine is shared, and other processes only ever slow a round down.
    """
    fn()  # warm-up (allocations, cuDNN plans)
    _sync(device)
    best = 0.0
    for _ in range(rounds):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds / rounds:
                break
        best = max(best, calls * n_windows / elapsed)
    return best


def _seed_loop(model: LoadedModel, windows: np.ndarray) -> None:
    """The seed's way: scale, then one forward per window in a Python loop."""
    scaled = torch.from_numpy(model.scaler.transform(windows)).to(model.device)
    with torch.no_grad():
        for i in range(scaled.shape[0]):
            model.module(scaled[i : i + 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs and short timings (a smoke run)")
    parser.add_argument("--epochs", type=int, help="epochs per model (default 20, --quick 2)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 20)
    min_seconds = 0.2 if args.quick else 1.0
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, signal_name, kind_override in MODELS:
            sig = seed_signal(signal_name)
            kind = kind_override or sig.kind
            hyper = {} if kind_override else dict(sig.hyperparameters)
            config = TrainConfig(
                kind=kind,
                window=sig.window,
                horizon=sig.horizon if kind != "lstm_ae" else None,
                epochs=epochs,
                patience=epochs,
                batch_size=64,
                progress=False,
                device=str(device),
                **hyper,
            )
            started = time.perf_counter()
            path = train_model(sig.values, ["x"], Path(tmp) / kind / signal_name, config)
            total_s = time.perf_counter() - started
            model = load_artifact(path, device=device)
            figures = model.manifest["training"]["figures"]
            n_params = sum(p.numel() for p in model.module.parameters())
            pool = np.ascontiguousarray(sliding_windows(sig.values, sig.window), dtype=np.float32)
            reps = int(np.ceil(512 / len(pool)))
            pool = np.concatenate([pool] * reps)[:512]
            rates = {b: _rate(partial(model.infer, pool[:b]), b, min_seconds, device) for b in BATCHES}
            loop_n = 64 if args.quick else 256
            loop_rate = _rate(partial(_seed_loop, model, pool[:loop_n]), loop_n, min_seconds, device)
            rows.append((label, len(sig.values), sig.window, n_params, figures["seconds"], total_s, loop_rate, rates))
            print(f"done {label}", file=sys.stderr, flush=True)
    threads = torch.get_num_threads()
    print(
        f"\nplantwatch models benchmark: device {device}, torch {torch.__version__}, {threads} CPU thread(s), "
        f"{platform.processor() or platform.machine()}, {epochs} epochs, batch 64\n"
    )
    print(
        "| model | series rows | window | params | train s | total s | seed loop win/s "
        "| infer B=1 win/s | B=64 win/s | B=512 win/s | B=512 / seed loop |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, n_rows, window, n_params, train_s, total_s, loop_rate, rates in rows:
        print(
            f"| {label} | {n_rows} | {window} | {n_params:,} | {train_s:.2f} | {total_s:.2f} | {loop_rate:,.0f} "
            f"| {rates[1]:,.0f} | {rates[64]:,.0f} | {rates[512]:,.0f} | {rates[512] / loop_rate:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
