"""ONNX serving benchmark: export time and ONNX Runtime vs torch differences per kind, ``infer`` time of both
runtimes at one batch, and the memory of a process serving an ONNX artifact without torch.

    .venv/bin/python benchmarks/onnx_serving.py            # seed sizes, 8 sensors, window 50, batch 160
    .venv/bin/python benchmarks/onnx_serving.py --quick    # tiny models (hidden 8, window 16): a smoke run

Export: every kind trained for 2 epochs (the weights' values do not matter to the export) by models.train, which
exports and verifies the graph; ``export s`` is the manifest's ``onnx.seconds`` (export + verification, the time
training spends on the graph), ``train s`` the whole train_model call. The first export in a process also imports
torch.onnx and warms the tracer: rnn, measured first, carries that. ``max diff`` is the largest |onnxruntime -
torch| measured at export on the 32 reference windows (scaled errors for detectors, raw-unit forecasts and the
relative difference for forecasters).

Inference: ``infer`` on ``--batch`` complete windows (the fast path: one session.run), one intra-op thread for each
runtime, in one process; the best of ``--rounds`` rounds of ``--repeat`` calls, per call; then the same beside a
Python thread that never sleeps (a quarter of the calls), where every GIL hand-off can wait the 5 ms switch interval.

Memory: a fresh ``python -c`` that imports models.serving, loads one ONNX artifact (lstm_ae) and scores a batch,
then reads its own VmRSS / VmHWM; the same with the torch loader for comparison. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path: drop it (benchmarks/models.py would shadow the
# `models` package).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.artifacts import load_artifact  # noqa: E402
from models.networks import NETWORK_KINDS  # noqa: E402
from models.onnx_model import load_onnx_artifact  # noqa: E402
from models.preprocessing import sliding_windows  # noqa: E402
from models.synthetic import normal_process  # noqa: E402
from models.train import TrainConfig, train_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

MEMORY = """
import sys, numpy as np
{load}
w = np.asarray(np.random.default_rng(0).normal(size=(160, m.window, len(m.sensors))), np.float32) + 1.0
m.infer(w)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
print(type(m).__name__, "torch" in sys.modules, status["VmRSS"].split()[0], status["VmHWM"].split()[0])
"""
LOADERS = {
    "ONNX Runtime (models.serving.load_for_serving)": "from models.serving import load_for_serving\n"
    "m = load_for_serving(sys.argv[1], 'cpu')",
    "torch (models.artifacts.load_artifact)": "import torch\ntorch.set_num_threads(1)\n"
    "from models.artifacts import load_artifact\nm = load_artifact(sys.argv[1])",
}


def _train(root: Path, kind: str, quick: bool, data: np.ndarray, sensors: tuple[str, ...]) -> tuple[Path, float]:
    sizes = {"hidden_size": 8, "latent_size": 4} if quick else {}
    if kind != "lstm_ae":
        sizes.pop("latent_size", None)
    config = TrainConfig(
        kind=kind, window=16 if quick else 50, epochs=2, progress=False, device="cpu", train_step=4, **sizes
    )
    started = time.perf_counter()
    path = train_model(data, sensors, root / kind, config, period_s=1.0)
    return path, time.perf_counter() - started


class BusyThread:
    """A Python thread that never sleeps (what paho's loop or the buffer thread is under load), while in use."""

    def __init__(self) -> None:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1

    def __enter__(self) -> BusyThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _per_call(fn: object, windows: np.ndarray, rounds: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            fn(windows)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - started) / repeat)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sensors = tuple(f"s{i}" for i in range(8))
    data = normal_process(3000 if args.quick else 6000, len(sensors), seed=3)
    print(f"# ONNX serving ({platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread)\n")
    print("| kind | train s | export s | max diff (abs; rel) | model.onnx bytes |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = {}
        for kind in NETWORK_KINDS:
            paths[kind], seconds = _train(root, kind, args.quick, data, sensors)
            section = json.loads((paths[kind] / "manifest.json").read_text())["onnx"]
            diffs = "; ".join(f"{k} {v['abs']:.1e}; {v['rel']:.1e}" for k, v in section["max_diff"].items())
            print(f"| {kind} | {seconds:.2f} | {section['seconds']:.2f} | {diffs} | {section['bytes']} |")
        print(f"\n| model, batch {args.batch} | torch infer ms | ONNX Runtime infer ms | ratio |")
        print("| --- | --- | --- | --- |")
        for kind in ("lstm_ae", "lstm"):
            torch_model, onnx_model = load_artifact(paths[kind]), load_onnx_artifact(paths[kind], cpu_threads=1)
            w = torch_model.window
            windows = np.ascontiguousarray(sliding_windows(data[-(w + args.batch - 1) :], w), dtype=np.float32)
            torch_s = _per_call(torch_model.infer, windows, args.rounds, args.repeat)
            onnx_s = _per_call(onnx_model.infer, windows, args.rounds, args.repeat)
            print(f"| {kind}, alone | {torch_s * 1e3:.2f} | {onnx_s * 1e3:.2f} | {torch_s / onnx_s:.1f}x |")
            with BusyThread():  # the GIL's 5 ms switch interval against each hand-off
                torch_s = _per_call(torch_model.infer, windows, args.rounds, max(args.repeat // 4, 1))
                onnx_s = _per_call(onnx_model.infer, windows, args.rounds, max(args.repeat // 4, 1))
            busy = f"{torch_s * 1e3:.2f} | {onnx_s * 1e3:.2f} | {torch_s / onnx_s:.1f}x"
            print(f"| {kind}, beside a busy Python thread | {busy} |")
        print("\n| fresh process, lstm_ae loaded and scored | model | torch imported | VmRSS MiB | VmHWM MiB |")
        print("| --- | --- | --- | --- | --- |")
        for label, load in LOADERS.items():
            out = subprocess.run(
                [sys.executable, "-c", MEMORY.format(load=load), str(paths["lstm_ae"])],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout.split()
            print(f"| {label} | {out[0]} | {out[1]} | {int(out[2]) / 1024:.0f} | {int(out[3]) / 1024:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
