"""Scoring benchmark: windows/s per model, batch size and precision through the service's Scheduler and ScoringEngine.

    .venv/bin/python -m benchmarks.scoring                  # every model kind, B = 1, 16, 64, 256, 512 (CPU), fp32
    .venv/bin/python -m benchmarks.scoring --quick          # bilstm and lstm_ae, shorter timings
    .venv/bin/python -m benchmarks.scoring --device cuda --precision fp32,fp16,bf16 --json scoring.json
                                                            # B = 1 ... 4096, the bare cuDNN BiLSTM, a breakdown

Windows come from the service's ring buffers (monitor.buffers.ring_buffers): ``units`` units (one per window of
the largest batch) are fed ``window + 8`` readings each, and every WindowJob the buffers emit is kept, so a batch
of B windows is B units' jobs for the same row and consecutive batches are consecutive rows (forecasters then
also compute their one-step residual scores, as in the service). A batch goes through
``Scheduler.process(jobs)`` with ``max_batch = B``: ScoringEngine stacking, ``LoadedModel.infer`` (missing-value
fill, scaling, forward under inference_mode), scores with per-sensor errors, forecasts, Score records, handed to a
sink that drops them (the output stage is measured end to end by latency.py).

Reference, measured in the same run on the same windows: the seed's style, one window at a time
(``model(x.unsqueeze(0))`` under ``torch.no_grad`` in a Python loop, the score computed per window).
The issue's bar: on this CPU the batched scheduler reaches at least 4x the loop for the BiLSTM detector.

Precision (``--precision``, fp32 always first): fp16 and bf16 run the same scheduler calls, the seed loop and the
bare BiLSTM under ``torch.autocast`` on the device (the service's ``scheduler.precision`` has no reduced-precision
path yet); a kind or type the device has no kernel for is reported in its row, not fatal. "Deviation from fp32":
on the largest batch's windows, detectors max |score change| / calibrated threshold, forecasters max |forecast
change| in training-scale units.

On CUDA (or with ``--bare``): the bare BiLSTM (2 layers, hidden 64, window 50, 8 sensors: the seed's
BidirectionalProcessLSTM, forward only, input already on the device) at B = 1 and the largest B, per precision,
against the scheduler path at the largest B, and the scheduler at the largest B over the fp32 seed loop (issue 12's
bars on a GPU at B = 4096: >= 50 % of bare, >= 100x the loop). Where the scheduler's time goes per batch (bilstm,
fp32): gathering windows from the jobs, missing-value fill + scaling, host-to-device copy (pageable, as
LoadedModel.infer does it, and pinned + non_blocking for comparison), forward, device-to-host copy,
post-processing (errors, Score records); every timer bracketed by ``torch.cuda.synchronize``. On the CPU the
breakdown runs too (copies are no-ops). ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._harness import SENSORS, machine, normal_signal, unit_phases
from models.artifacts import load_artifact
from models.device import resolve_device
from models.inference import LoadedModel
from models.preprocessing import fill_windows
from monitor.buffers.ring_buffers import RingBuffers
from monitor.buffers.unit_spec import UnitSpec
from monitor.messages import Reading, WindowJob
from monitor.model_scores import reconstruction_scores
from monitor.scheduler import JobQueue, Scheduler
from monitor.scoring import ScoringEngine
from monitor.scoring_records import ScoringOutput, UnitModels
from monitor.sensor_health import outside_envelope
from monitor.timed_models import timed
from tests.kit import SEED_SIZES, train_tiny

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


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@contextlib.contextmanager
def precision(device: torch.device, name: str) -> Iterator[None]:
    """Run the models at ``name``: fp32 as they are, fp16 / bf16 under torch.autocast on ``device``.

    The scheduler has no reduced-precision path of its own yet (``scheduler.precision`` is accepted and ignored
    by the service), so the benchmark applies autocast around the same scheduler calls: the forward runs in the
    reduced type and LoadedModel.infer takes its outputs back as float32.
    """
    if name == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=PRECISIONS[name]):
        yield


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
    recipe = {"window": WINDOW, "epochs": epochs, "patience": epochs, "train_step": 4, **SEED_SIZES}
    return train_tiny(data, SENSORS, root / kind, kind, name=kind, threads=None, **recipe)


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
    # timed(): the wrapper the service scores through (histograms off here; infer pads to padded_batch sizes itself)
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
                out.float().cpu().numpy()  # float(): numpy has no bfloat16


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
        bounds = [engine._bounds.get((jobs[i].unit, name)) for i in idx]
        outside = outside_envelope(bounds, model.sensors, windows)  # the envelope check the engine runs per batch
        post = "post-processing (errors, Score records)"
        timed(post, reconstruction_scores, jobs, idx, name, model, result, [], outside, engine.units)
        timed("scheduler total (process)", engine.run, jobs)
    return {key: float(np.median(values[1:])) for key, values in steps.items()}


def bare_bilstm(device: torch.device, batch: int, min_seconds: float, prec: str) -> float:
    """Windows/s of a bare (cuDNN on CUDA) BiLSTM (2 layers, hidden 64, 8 inputs) + linear head, input on device,
    at ``prec`` (autocast as for the scheduler)."""
    lstm = torch.nn.LSTM(len(SENSORS), 64, 2, batch_first=True, bidirectional=True).to(device).eval()
    head = torch.nn.Linear(128, len(SENSORS)).to(device).eval()
    x = torch.randn(batch, WINDOW, len(SENSORS), device=device)

    def step(_: int) -> None:
        with torch.inference_mode(), precision(device, prec):
            out, _h = lstm(x)
            head(out)

    return rate(step, batch, min_seconds, device)


def deviation_from_fp32(model: LoadedModel, windows: np.ndarray, prec: str) -> float:
    """How far ``prec`` moves the outputs from fp32 on the same windows: detectors, max |score change| as a share
    of the calibrated threshold; forecasters, max |forecast change| in units of the training scale."""
    reference = model.infer(windows)
    with precision(model.device, prec):
        reduced = model.infer(windows)
    if model.role == "detector":
        assert reference.scores is not None and reduced.scores is not None
        return float(np.nanmax(np.abs(reduced.scores - reference.scores)) / model.threshold)
    assert reference.forecasts is not None and reduced.forecasts is not None
    scale = np.asarray(model.scaler.scale, dtype=np.float32)
    return float(np.nanmax(np.abs(reduced.forecasts - reference.forecasts) / scale))


def _score_row(scheduler: Scheduler, batch_jobs: list[list[WindowJob]], i: int) -> None:
    """Call ``i`` of a timing: batches cycle through consecutive rows, in event-time order per unit."""
    scheduler.process(batch_jobs[i % ROWS_PER_UNIT])


def measure_model(
    model: LoadedModel,
    by_row: list[list[WindowJob]],
    batches: list[int],
    precisions: list[str],
    loop_n: int,
    min_seconds: float,
) -> list[dict[str, Any]]:
    """One row per precision: the seed-style loop and the scheduler at every batch size, windows/s."""
    device = model.device
    units = [job.unit for job in by_row[0]]
    loop_windows = [job.window for job in by_row[0][:loop_n]]
    top = np.stack([job.window for job in by_row[0][: max(batches)]])
    rows = []
    for prec in precisions:
        row: dict[str, Any] = {"precision": prec, "rates": {}, "error": None}
        try:
            with precision(device, prec):
                row["seed_loop"] = rate(
                    partial(_ignore_call_number, seed_loop, model, loop_windows), loop_n, min_seconds, device
                )
                for b in batches:
                    scheduler = scheduler_for(model, units, max_batch=b)
                    batch_jobs = [r[:b] for r in by_row]
                    row["rates"][b] = rate(partial(_score_row, scheduler, batch_jobs), b, min_seconds, device)
            row["deviation"] = 0.0 if prec == "fp32" else deviation_from_fp32(model, top, prec)
        except RuntimeError as exc:  # a kernel missing for this type on this device: say so, measure the rest
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
        rows.append(row)
    return rows


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
    parser.add_argument(
        "--batches", help="comma-separated batch sizes (default 1,16,64,256,512; cuda 1,4,16,64,256,1024,2048,4096)"
    )
    parser.add_argument("--min-seconds", type=float, help="timing length per figure (default 1.0, quick 0.3)")
    parser.add_argument(
        "--precision",
        default="fp32",
        help="comma-separated: fp32, fp16, bf16 (reduced precision through torch.autocast; default fp32)",
    )
    parser.add_argument("--bare", action="store_true", help="also the bare BiLSTM off CUDA (always on CUDA)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    min_seconds = args.min_seconds or (0.3 if args.quick else 1.0)
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
    else:
        batches = [1, 4, 16, 64, 256, 1024, 2048, 4096] if device.type == "cuda" else [1, 16, 64, 256, 512]
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or "fp32" not in precisions:
        parser.error(f"--precision takes fp32, fp16, bf16 and must include fp32 (got {args.precision!r})")
    precisions = ["fp32"] + [p for p in precisions if p != "fp32"]
    models = MODELS_QUICK if args.quick else MODELS_FULL
    loop_n = 64 if args.quick else 256

    print(f"building {max(batches)} units' ring buffers ...", file=sys.stderr, flush=True)
    by_row = ring_buffer_jobs(max(max(batches), loop_n))
    units = [job.unit for job in by_row[0]]
    results: list[dict[str, Any]] = []
    detail: dict[str, float] | None = None
    bilstm_model: LoadedModel | None = None
    with tempfile.TemporaryDirectory(prefix="pw-bench-scoring-") as tmp:
        for label, kind in models:
            model = load_artifact(train(Path(tmp), kind, epochs=1), device=device)
            n_params = sum(p.numel() for p in model.module.parameters())
            for row in measure_model(model, by_row, batches, precisions, loop_n, min_seconds):
                results.append({"model": label, "kind": kind, "params": n_params, **row})
            if kind == "bilstm":
                bilstm_model = model
            print(f"done {label}", file=sys.stderr, flush=True)
        if bilstm_model is not None:
            b = max(batches)
            engine = scheduler_for(bilstm_model, units, max_batch=b).engine
            detail = breakdown(bilstm_model, engine, by_row[0][:b], repeats=3 if args.quick else 10)

    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    header = (
        f"plantwatch scoring benchmark: device {device} ({name}), torch {torch.__version__}, {threads} torch "
        f"thread(s), {machine()}, load average {os.getloadavg()[0]:.1f} at the end; window {WINDOW}, "
        f"{len(SENSORS)} sensors; reduced precision through torch.autocast"
    )
    print(f"\n{header}\n")
    head = " | ".join(f"B={b} win/s" for b in batches)
    print(f"| model | precision | params | seed loop win/s | {head} | best / seed loop | deviation from fp32 |")
    print("|---|---|---:|---:|" + "---:|" * len(batches) + "---:|---:|")
    for r in results:
        if r["error"]:
            print(f"| {r['model']} | {r['precision']} | {r['params']:,} | {r['error']} |" + " |" * (len(batches) + 2))
            continue
        cells = " | ".join(f"{r['rates'][b]:,.0f}" for b in batches)
        deviation = "" if r["precision"] == "fp32" else f"{r['deviation']:.2e}"
        print(
            f"| {r['model']} | {r['precision']} | {r['params']:,} | {r['seed_loop']:,.0f} | {cells} "
            f"| {max(r['rates'].values()) / r['seed_loop']:.1f}x | {deviation} |"
        )
    print(
        "\nDeviation from fp32 on the largest batch's windows: detectors, max |score change| / calibrated threshold; "
        "forecasters, max |forecast change| in training-scale units."
    )
    if detail is not None:
        b = max(batches)
        total = detail["scheduler total (process)"]
        print(f"\nWhere the scheduler's time goes, bilstm fp32, one batch of {b} windows (median ms):\n")
        print("| step | ms per batch | share of scheduler total |")
        print("|---|---:|---:|")
        for key, ms in detail.items():
            print(f"| {key} | {ms:.2f} | {ms / total:.0%} |")
    bare_rows = []
    if device.type == "cuda" or args.bare:
        b = max(batches)
        print(f"\nBare BiLSTM ({'cuDNN' if device.type == 'cuda' else 'torch CPU'}) against the scheduler, {name}:\n")
        print(
            f"| precision | bare B=1 win/s | bare B={b} win/s | scheduler B={b} win/s | scheduler / bare "
            f"| scheduler B={b} / seed loop (fp32) |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        fp32_loop = next(r for r in results if r["kind"] == "bilstm" and r["precision"] == "fp32").get("seed_loop")
        for prec in precisions:
            sched_row = next(r for r in results if r["kind"] == "bilstm" and r["precision"] == prec)
            try:
                bare = {bb: bare_bilstm(device, bb, min_seconds, prec) for bb in (1, b)}
            except RuntimeError as exc:
                print(f"| {prec} | {type(exc).__name__}: {str(exc).splitlines()[0][:100]} | | | | |")
                continue
            sched = sched_row["rates"].get(b, float("nan")) if not sched_row["error"] else float("nan")
            ratio, vs_loop = sched / bare[b], sched / fp32_loop if fp32_loop else float("nan")
            bare_rows.append({"precision": prec, "bare": bare, "scheduler": sched, "ratio": ratio, "vs_loop": vs_loop})
            print(f"| {prec} | {bare[1]:,.0f} | {bare[b]:,.0f} | {sched:,.0f} | {ratio:.2f} | {vs_loop:,.0f}x |")
        if device.type == "cuda" and b == 4096 and bare_rows:
            fp32 = bare_rows[0]
            print(
                f"\nIssue 12 on this GPU (BiLSTM, B=4096, fp32): scheduler / bare cuDNN {fp32['ratio']:.2f} "
                f"(bar >= 0.50: {'met' if fp32['ratio'] >= 0.5 else 'not met'}); "
                f"scheduler / seed loop {fp32['vs_loop']:,.0f}x "
                f"(bar >= 100x: {'met' if fp32['vs_loop'] >= 100 else 'not met'})"
            )
    if args.json:
        payload = {"header": header, "batches": batches, "results": results, "breakdown": detail, "bare": bare_rows}
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
