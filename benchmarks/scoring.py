"""Scoring benchmark: windows/s per model and batch size through the service's Scheduler and ScoringEngine.

    .venv/bin/python benchmarks/scoring.py                  # every model kind, B = 1, 16, 64, 256, 512 (CPU)
    .venv/bin/python benchmarks/scoring.py --quick          # bilstm and lstm_ae, shorter timings
    .venv/bin/python benchmarks/scoring.py --device cuda    # adds B = 4096, the bare cuDNN BiLSTM and a breakdown

Windows come from the service's ring buffers (monitor.buffers.RingBuffers): ``units`` units (one per window of
the largest batch) are fed ``window + 8`` readings each, and every WindowJob the buffers emit is kept, so a batch
of B windows is B units' jobs for the same row and consecutive batches are consecutive rows (forecasters then
also compute their one-step residual scores, as in the service). A batch goes through
``Scheduler.process(jobs)`` with ``max_batch = B``: ScoringEngine stacking, ``LoadedModel.infer`` (missing-value
fill, scaling, forward under inference_mode), scores with per-sensor errors, forecasts, Score records, handed to a
sink that drops them (the output stage is measured end to end by latency.py).

Reference, measured in the same run on the same windows: the seed's style, one window at a time
(``model(x.unsqueeze(0))`` under ``torch.no_grad`` in a Python loop, the score computed per window).
The issue's bar: on this CPU the batched scheduler reaches at least 4x the loop for the BiLSTM detector.

``--device cuda`` (one prepared run on a GPU machine): also the bare cuDNN BiLSTM (2 layers, hidden 64, window
50, 8 sensors, fp32: the seed's BidirectionalProcessLSTM, forward only, input already on the device) at B = 1 and
4096, against the scheduler path at B = 4096, and where the scheduler's time goes per batch: gathering windows
from the jobs, missing-value fill + scaling, host-to-device copy (pageable, as LoadedModel.infer does it, and
pinned + non_blocking for comparison), forward, device-to-host copy, post-processing (errors, Score records).
Every timer is bracketed by ``torch.cuda.synchronize``. On the CPU the breakdown runs too (copies are no-ops).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]  # benchmarks/models.py shadows models
sys.path.insert(0, str(BENCH_DIR.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._harness import SENSORS, machine, normal_signal, unit_phases  # noqa: E402
from models.artifacts import load_artifact  # noqa: E402
from models.device import resolve_device  # noqa: E402
from models.inference import LoadedModel  # noqa: E402
from models.preprocessing import fill_windows  # noqa: E402
from models.train import TrainConfig, train_model  # noqa: E402
from monitor.buffers import RingBuffers, UnitSpec  # noqa: E402
from monitor.messages import Reading, WindowJob  # noqa: E402
from monitor.scheduler import JobQueue, Scheduler, timed  # noqa: E402
from monitor.scoring import ScoringEngine, ScoringOutput, UnitModels  # noqa: E402

WINDOW = 50
ROWS_PER_UNIT = 8  # consecutive jobs per unit: batches cycle through them in event-time order
# (label, kind): seed sizes for every kind (models.networks.KINDS), lstm_ae at the default detector's sizes.
MODELS_FULL = (
    ("bilstm (seed detector)", "bilstm"),
    ("lstm_ae (default detector)", "lstm_ae"),
    ("lstm", "lstm"),
    ("gru", "gru"),
    ("rnn", "rnn"),
    ("seq2seq (H=10)", "seq2seq"),
    ("attention_lstm", "attention_lstm"),
)
MODELS_QUICK = MODELS_FULL[:2]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[int], object], per_call: int, min_seconds: float, device: torch.device) -> float:
    """Windows/s of ``fn(i)`` (i = call number; each call handles ``per_call`` windows), for >= min_seconds."""
    fn(0)  # warm-up: allocations, oneDNN / cuDNN plans
    sync(device)
    calls = 0
    start = time.perf_counter()
    while True:
        fn(calls + 1)
        calls += 1
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and calls >= 3:
            return calls * per_call / elapsed


def train(root: Path, kind: str, epochs: int) -> Path:
    """A model of ``kind`` at its seed sizes, briefly trained (speed does not depend on how well)."""
    data = normal_signal(np.arange(1200, dtype=np.float64), np.zeros(1))[:, 0, :]
    horizon = None
    config = TrainConfig(
        kind=kind,
        name=kind,
        window=WINDOW,
        horizon=horizon,
        epochs=epochs,
        patience=epochs,
        train_step=4,
        progress=False,
        device="cpu",
    )
    return train_model(data, SENSORS, root / kind, config)


def ring_buffer_jobs(n_units: int) -> list[list[WindowJob]]:
    """[ROWS_PER_UNIT][n_units] WindowJobs emitted by RingBuffers fed with each unit's readings in order."""
    units = [f"u{i:05d}" for i in range(n_units)]
    spec = UnitSpec(sensors=SENSORS, period_s=1.0, max_lateness_s=0.0, window_rows=WINDOW)
    buffers = RingBuffers({u: spec for u in units})
    n_rows = WINDOW + ROWS_PER_UNIT - 1
    t0 = 1_700_000_000.0
    values = normal_signal(t0 + np.arange(n_rows, dtype=np.float64), unit_phases(n_units)).tolist()  # [T][U][S]
    by_row: list[list[WindowJob]] = [[] for _ in range(ROWS_PER_UNIT)]
    for r in range(n_rows):
        for u, unit in enumerate(units):
            reading = Reading(unit, t0 + r, dict(zip(SENSORS, values[r][u], strict=True)), time.time())
            for job in buffers.add(reading).jobs:
                by_row[r - (WINDOW - 1)].append(job)
    assert all(len(jobs) == n_units for jobs in by_row), [len(j) for j in by_row]
    return by_row


def scheduler_for(model: LoadedModel, units: list[str], max_batch: int) -> Scheduler:
    role = {"detector": "detector", "forecaster": "forecaster"}[model.role]
    specs = {u: UnitModels(sensors=SENSORS, period_s=1.0, **{role: model.name}) for u in units}  # type: ignore[arg-type]
    # timed(): the wrapper the service scores through (histograms off here; batches padded to padded_batch sizes)
    engine = ScoringEngine(specs, timed({model.name: model}, None))

    def sink(out: ScoringOutput) -> None:
        pass

    return Scheduler(engine, JobQueue(10), sink, None, max_batch=max_batch, max_delay_s=0.0)


def seed_loop(model: LoadedModel, windows: list[np.ndarray]) -> None:
    """The seed's way: one window per forward call, the score computed per window."""
    module = model.module
    with torch.no_grad():
        for window in windows:
            x = torch.FloatTensor(model.scaler.transform(window)).unsqueeze(0).to(model.device)  # [1, W, S]
            out = module(x)
            if model.role == "detector":
                float(torch.mean((x - out) ** 2).item())
            else:
                out.cpu().numpy()


def _ignore_call_number(fn: Callable[..., object], *args: Any) -> object:
    return fn(*args[:-1])


def breakdown(model: LoadedModel, engine: ScoringEngine, jobs: list[WindowJob], repeats: int) -> dict[str, float]:
    """Median milliseconds per batch of each step of the scheduler path (a detector), synchronised timers."""
    device = model.device
    name = model.name
    idx = list(range(len(jobs)))
    steps: dict[str, list[float]] = {}

    def timed(key: str, fn: Callable[..., Any], *args: Any) -> Any:
        sync(device)
        start = time.perf_counter()
        value = fn(*args)
        sync(device)
        steps.setdefault(key, []).append((time.perf_counter() - start) * 1000.0)
        return value

    def prepare(windows: np.ndarray) -> np.ndarray:
        return model.scaler.transform(np.nan_to_num(fill_windows(windows), nan=0.0))

    def pageable(scaled: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(scaled).to(device)

    def pinned_copy(buf: torch.Tensor, scaled: np.ndarray) -> torch.Tensor:
        buf.copy_(torch.from_numpy(scaled))
        return buf.to(device, non_blocking=True)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out: torch.Tensor = model.module(x)
            return out

    def to_host(out: torch.Tensor) -> np.ndarray:
        return out.float().cpu().numpy()

    pinned: torch.Tensor | None = None
    for _ in range(repeats + 1):  # the first round warms up and is discarded
        windows = timed("gather windows (stack jobs)", engine._stack, jobs, idx, name, model)
        scaled = timed("fill + scale (numpy)", prepare, windows)
        on_device = timed("host-to-device, pageable", pageable, scaled)
        if device.type == "cuda":
            if pinned is None or tuple(pinned.shape) != scaled.shape:
                pinned = torch.empty(scaled.shape, dtype=torch.float32).pin_memory()
            timed("host-to-device, pinned + non_blocking", pinned_copy, pinned, scaled)
        out = timed("forward", forward, on_device)
        timed("device-to-host", to_host, out)
        result = model.infer(windows)
        timed("post-processing (errors, Score records)", engine._reconstruction, jobs, idx, name, model, result, [])
        timed("scheduler total (process)", engine.run, jobs)
    return {key: float(np.median(values[1:])) for key, values in steps.items()}


def bare_bilstm(device: torch.device, batch: int, min_seconds: float) -> float:
    """Windows/s of a bare cuDNN BiLSTM (2 layers, hidden 64, 8 inputs, fp32) + linear head, input on device."""
    lstm = torch.nn.LSTM(len(SENSORS), 64, 2, batch_first=True, bidirectional=True).to(device).eval()
    head = torch.nn.Linear(128, len(SENSORS)).to(device).eval()
    x = torch.randn(batch, WINDOW, len(SENSORS), device=device)

    def step(_: int) -> None:
        with torch.inference_mode():
            out, _h = lstm(x)
            head(out)

    return rate(step, batch, min_seconds, device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bilstm and lstm_ae only, shorter timings")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1, the service's scheduler.cpu_threads default; 0: torch's choice)",
    )
    parser.add_argument("--batches", help="comma-separated batch sizes (default 1,16,64,256,512; cuda adds 4096)")
    parser.add_argument("--min-seconds", type=float, help="timing length per figure (default 1.0, quick 0.3)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    min_seconds = args.min_seconds or (0.3 if args.quick else 1.0)
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
    else:
        batches = [1, 16, 64, 256, 512] + ([4096] if device.type == "cuda" else [])
    models = MODELS_QUICK if args.quick else MODELS_FULL
    loop_n = 64 if args.quick else 256

    print(f"building {max(batches)} units' ring buffers ...", file=sys.stderr, flush=True)
    by_row = ring_buffer_jobs(max(max(batches), loop_n))
    units = [job.unit for job in by_row[0]]
    rows = []
    detail: dict[str, float] | None = None
    bilstm_model: LoadedModel | None = None
    with tempfile.TemporaryDirectory(prefix="pw-bench-scoring-") as tmp:
        for label, kind in models:
            model = load_artifact(train(Path(tmp), kind, epochs=1), device=device)
            n_params = sum(p.numel() for p in model.module.parameters())
            loop_windows = [job.window for job in by_row[0][:loop_n]]
            loop_rate = rate(partial(_ignore_call_number, seed_loop, model, loop_windows), loop_n, min_seconds, device)
            rates = {}
            for b in batches:
                scheduler = scheduler_for(model, units, max_batch=b)
                batch_jobs = [row[:b] for row in by_row]
                rates[b] = rate(
                    lambda i, s=scheduler, bj=batch_jobs: s.process(bj[i % ROWS_PER_UNIT]), b, min_seconds, device
                )
            rows.append((label, n_params, loop_rate, rates))
            if kind == "bilstm":
                bilstm_model = model
            print(f"done {label}", file=sys.stderr, flush=True)
        if bilstm_model is not None:
            b = max(batches)
            engine = scheduler_for(bilstm_model, units, max_batch=b).engine
            detail = breakdown(bilstm_model, engine, by_row[0][:b], repeats=3 if args.quick else 10)

    threads = torch.get_num_threads()
    print(
        f"\nplantwatch scoring benchmark: device {device}, torch {torch.__version__}, {threads} torch thread(s), "
        f"{machine()}, load average {os.getloadavg()[0]:.1f} at the end; window {WINDOW}, {len(SENSORS)} sensors\n"
    )
    head = " | ".join(f"B={b} win/s" for b in batches)
    print(f"| model | params | seed loop win/s | {head} | best / seed loop |")
    print("|---|---:|---:|" + "---:|" * len(batches) + "---:|")
    for label, n_params, loop_rate, rates in rows:
        cells = " | ".join(f"{rates[b]:,.0f}" for b in batches)
        print(f"| {label} | {n_params:,} | {loop_rate:,.0f} | {cells} | {max(rates.values()) / loop_rate:.1f}x |")
    if detail is not None:
        b = max(batches)
        total = detail["scheduler total (process)"]
        print(f"\nWhere the scheduler's time goes, bilstm, one batch of {b} windows (median ms):\n")
        print("| step | ms per batch | share of scheduler total |")
        print("|---|---:|---:|")
        for key, ms in detail.items():
            print(f"| {key} | {ms:.2f} | {ms / total:.0%} |")
    if device.type == "cuda":
        bare = {bb: bare_bilstm(device, bb, min_seconds) for bb in (1, 4096)}
        sched = next(r for r in rows if r[0].startswith("bilstm"))[3].get(4096, float("nan"))
        print(f"\nBare cuDNN BiLSTM vs the scheduler ({torch.cuda.get_device_name(device)}):\n")
        print("| path | B=1 win/s | B=4096 win/s | scheduler / bare at 4096 |")
        print("|---|---:|---:|---:|")
        print(f"| bare cuDNN BiLSTM (forward only, input on device) | {bare[1]:,.0f} | {bare[4096]:,.0f} | |")
        bil = next(r for r in rows if r[0].startswith("bilstm"))[3]
        print(
            f"| scheduler (ring-buffer jobs -> Score records) | {bil.get(1, float('nan')):,.0f} | {sched:,.0f} "
            f"| {sched / bare[4096]:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
