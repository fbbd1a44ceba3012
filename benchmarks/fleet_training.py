"""Fleet training cost: one fleet model for N units of H hours each vs one unit's model on H hours, per unit-hour.

    .venv/bin/python -m benchmarks.fleet_training                  # 10 units x 24 h, lstm_ae, 8 epochs (minutes)
    .venv/bin/python -m benchmarks.fleet_training --quick          # a smoke run: 2 units x 0.5 h, 1 epoch

Both models are trained by `plantwatch train` as a subprocess (the CLI defaults but ``--epochs``; the unit's model
with ``--unit``, the fleet with ``--units all``; ``--allow-weak-calibration`` since 24 h do not support the default
target), on simulated reactors (one simulation of N units; the single unit's CSV holds its first unit only). Wall
time is the whole command (reading the CSV, training, calibration, ONNX export and its check), CPU s the command's
user + system time (less sensitive than wall time to other jobs on a shared machine); ``fit s`` is the optimisation
loop alone (the manifest's ``training.figures.seconds``), also per epoch run, since early stopping can end the two
runs after different epoch counts. The target (issue 14): fleet <= 1.5 x one unit's time per
unit-hour. Prints the load average before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simulators import parse_scenario, simulate, write_csv

ROOT = Path(__file__).resolve().parents[1]

TARGET_RATIO = 1.5


def train(data: Path, out: Path, which: list[str], args: argparse.Namespace) -> dict[str, float]:
    """Run `plantwatch train`; its wall and CPU time, the load around it and the manifest's figures."""
    command = [sys.executable, "-m", "monitor", "train", "--data", str(data), *which, "--model", args.model]
    command += ["--out", str(out), "--epochs", str(args.epochs), "--allow-weak-calibration", "--no-progress"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # The child imports this checkout's packages, whatever is installed in the environment.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"train failed ({result.returncode}): {result.stderr.strip()}")
    print(result.stdout.strip(), file=sys.stderr)
    figures = json.loads((out / "manifest.json").read_text())["training"]["figures"]
    return {
        "wall_s": wall,
        "cpu_s": (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "fit_s": float(figures["seconds"]),
        "epochs": float(figures["epochs_run"]),
        "train_windows": float(figures["windows"]["train"]),
        "threads": float(figures["torch_threads"]),
    }


def per_unit_hour(run: dict[str, float], hours: float, key: str) -> float:
    return run[key] / hours if key != "fit_s" else run[key] / run["epochs"] / hours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--model", default="lstm_ae")
    parser.add_argument("--threads", type=int, help="--threads for both runs (default: torch's own)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 units x 0.5 h, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.units, args.hours, args.epochs = 2, 0.5, 1
    names = [f"R-{i + 1:03d}" for i in range(args.units)]
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        scenario = parse_scenario({"name": "fleet-bench", "profile": "reactor", "units": {"names": names}})
        result = simulate(scenario, duration_s=args.hours * 3600.0, seed=args.seed)
        fleet_csv, one_csv = root / "fleet.csv", root / "one.csv"
        write_csv(result, fleet_csv)
        write_csv(result, one_csv, units=names[:1])
        one = train(one_csv, root / "one", ["--unit", names[0]], args)
        fleet = train(fleet_csv, root / "fleet", ["--units", "all"], args)
    hours = {"one": args.hours, "fleet": args.units * args.hours}
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; {args.model}, "
        f"{args.epochs} epochs max, torch threads {one['threads']:.0f}"
    )
    print()
    print(
        "| model | unit-hours | epochs run | train windows | wall s | CPU s | fit s | wall s / unit-hour | "
        "CPU s / unit-hour | fit s / epoch / unit-hour | load average (1 min) at start / end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, run, label in (("one", one, "one unit"), ("fleet", fleet, f"fleet of {args.units}")):
        h = hours[name]
        print(
            f"| {label} | {h:g} | {run['epochs']:.0f} | {run['train_windows']:.0f} | {run['wall_s']:.1f} | "
            f"{run['cpu_s']:.1f} | {run['fit_s']:.1f} | {per_unit_hour(run, h, 'wall_s'):.3f} | "
            f"{per_unit_hour(run, h, 'cpu_s'):.3f} | {per_unit_hour(run, h, 'fit_s'):.4f} | "
            f"{run['load_before']:.2f} / {run['load_after']:.2f} |"
        )
    ratios = {
        key: per_unit_hour(fleet, hours["fleet"], key) / per_unit_hour(one, hours["one"], key)
        for key in ("wall_s", "cpu_s", "fit_s")
    }
    verdict = "met" if ratios["wall_s"] <= TARGET_RATIO else "NOT met"
    print()
    print(
        f"fleet / one unit, per unit-hour: wall {ratios['wall_s']:.2f}x, CPU {ratios['cpu_s']:.2f}x, fit per epoch "
        f"{ratios['fit_s']:.2f}x (target <= {TARGET_RATIO}x on wall time: {verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
