"""Memory benchmark: the service's processes together (PSS, RSS, libtorch) for 100, 1,000 and 5,000 units, and drift.

    .venv/bin/python -m benchmarks.memory                      # sizes 100/1000/5000, then a 30-minute drift run
    .venv/bin/python -m benchmarks.memory --quick              # sizes 100/1000, a 3-minute drift run
    .venv/bin/python -m benchmarks.memory --drift-minutes 0    # sizes only
    .venv/bin/python -m benchmarks.memory --sizes 0 --drift-minutes 30 --drift-units 500   # drift only

Each figure is one `plantwatch run` subprocess against a private mosquitto, with the default detector (lstm_ae,
window 50) and an LSTM forecaster on every unit, 8 sensors, scores and forecasts published. What is measured is
the service's whole process tree: the `plantwatch run` pid and every descendant (a scorer process, multiprocessing's
resource tracker; benchmarks/_harness.py tree_memory, from /proc): per process PSS (/proc/PID/smaps_rollup: a page
shared by k processes counts 1/k in each, so the sum is what the service costs the machine), RSS and peak RSS
(VmHWM), and whether it maps libtorch (/proc/PID/maps); the table sums PSS and RSS over the tree. A one-process
service is a tree of one.

Sizes: the tree once connected (models loaded, buffers preallocated, metrics created), then after every unit has
received ``window + 10`` rows (past event times, at ``--fill-rate`` readings/s, below the service's capacity so
no queue builds up: a flood measures the queues' high-water mark instead) and the service has scored them:
every per-unit structure (ring, open rows, pending forecast, alert trackers, metric children) is in use by then.
Issue 12's bar: PSS <= 200 MiB summed at 1,000 units with every window filled, and no libtorch in any process on
the CPU.

Drift: ``--drift-units`` units (default: half the capacity given by ``--capacity``, itself default 1,000 units at
1 Hz; pipeline.py measures it) at 1 Hz in real time for ``--drift-minutes``; the tree's summed PSS and RSS sampled
every ``--sample-s``. Reports them after the first minute, at the end, the maximum, and the least-squares slope of
PSS over the samples after the first minute (MiB per hour).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import (
    TreeMemory,
    config_dict,
    machine,
    publisher_result,
    settled,
    start_publisher,
    train_artifacts,
    tree_memory,
    unit_names,
)
from tests.kit import Broker, SpawnedService, wait_until

WINDOW = 50


def measure_size(
    root: Path, broker: Broker, artifacts: dict[str, Path], n_units: int, fill_rate: float
) -> dict[str, Any]:
    data = config_dict(broker, artifacts, unit_names(n_units), prefix=f"m{n_units}")
    with SpawnedService(data, root, f"size{n_units}").start() as service:
        port = service.port
        time.sleep(1.0)
        started = tree_memory(service.pid)
        rows = WINDOW + 10
        pub = start_publisher(
            {
                "mode": "flood",
                "port": broker.port,
                "units": n_units,
                "rows": rows,
                "qos": 1,
                "topic": f"m{n_units}/plant/{{unit}}/readings",
                "rate": fill_rate,
            }
        )
        sent = publisher_result(pub)
        metrics = settled(port, sent["published"], timeout_s=600)
        loaded = tree_memory(service.pid)
    return {
        "units": n_units,
        "started": started,
        "loaded": loaded,
        "published": sent["published"],
        "received": metrics.total("plantwatch_readings_received_total"),
        "scored": metrics.total("plantwatch_windows_scored_total"),
        "skipped": metrics.total("plantwatch_windows_skipped_total"),
    }


def measure_drift(
    root: Path, broker: Broker, artifacts: dict[str, Path], n_units: int, minutes: float, sample_s: float
) -> dict[str, Any]:
    data = config_dict(broker, artifacts, unit_names(n_units), prefix="drift")
    samples: list[tuple[float, TreeMemory]] = []
    with SpawnedService(data, root, "drift").start() as service:
        port = service.port
        pub = start_publisher(
            {
                "mode": "paced",
                "port": broker.port,
                "units": n_units,
                "seconds": minutes * 60.0,
                "backfill": WINDOW + 5,
                "qos": 1,
                "topic": "drift/plant/{unit}/readings",
            }
        )
        t0 = time.monotonic()
        while pub.poll() is None:
            samples.append((time.monotonic() - t0, tree_memory(service.pid)))
            at, mem = samples[-1]
            print(f"drift {at:7.0f} s  PSS {mem.pss_mb:7.1f} MiB  RSS {mem.rss_mb:7.1f} MiB", file=sys.stderr)
            wait_until(lambda: pub.poll() is not None, sample_s, 0.5)
        sent = publisher_result(pub)
        metrics = settled(port, sent["published"], timeout_s=120)
        samples.append((time.monotonic() - t0, tree_memory(service.pid)))
    t = np.array([s[0] for s in samples])
    pss = np.array([s[1].pss_mb for s in samples])
    rss = np.array([s[1].rss_mb for s in samples])
    steady = t >= min(60.0, t[-1] / 2)
    slope = float(np.polyfit(t[steady] / 3600.0, pss[steady], 1)[0]) if steady.sum() >= 3 else float("nan")
    return {
        "units": n_units,
        "minutes": minutes,
        "pss_after_1min": float(pss[steady][0]),
        "pss_end": float(pss[-1]),
        "pss_max": float(pss.max()),
        "rss_after_1min": float(rss[steady][0]),
        "rss_end": float(rss[-1]),
        "rss_max": float(rss.max()),
        "slope": slope,
        "end": samples[-1][1],
        "published": sent["published"],
        "late_ticks": sent["late_ticks"],
        "received": metrics.total("plantwatch_readings_received_total"),
        "scored": metrics.total("plantwatch_windows_scored_total"),
        "skipped": metrics.total("plantwatch_windows_skipped_total"),
        "dropped": metrics.total("plantwatch_queue_dropped_total"),
    }


def _libtorch(mem: TreeMemory) -> str:
    pids = mem.libtorch_pids()
    return f"yes (pid {', '.join(map(str, pids))})" if pids else "no"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 100 and 1,000, a 3-minute drift run")
    parser.add_argument("--sizes", default=None, help="comma-separated unit counts (default 100,1000,5000; 0: none)")
    parser.add_argument("--drift-minutes", type=float, default=None, help="drift run length (default 30, quick 3)")
    parser.add_argument("--capacity", type=int, default=1000, help="units at 1 Hz the service sustains (latency.py)")
    parser.add_argument("--drift-units", type=int, default=None, help="units in the drift run (default capacity/2)")
    parser.add_argument(
        "--fill-rate", type=float, default=2500.0, help="readings/s while filling the buffers (0: flood)"
    )
    parser.add_argument("--sample-s", type=float, default=None, help="sampling interval (default 30 s, quick 10)")
    args = parser.parse_args(argv)
    sizes_text = args.sizes if args.sizes is not None else ("100,1000" if args.quick else "100,1000,5000")
    sizes = [int(s) for s in sizes_text.split(",") if int(s) > 0]
    minutes = args.drift_minutes if args.drift_minutes is not None else (3.0 if args.quick else 30.0)
    drift_units = args.drift_units or max(1, args.capacity // 2)
    sample_s = args.sample_s or (10.0 if args.quick else 30.0)

    with tempfile.TemporaryDirectory(prefix="pw-bench-memory-") as tmp, Broker(verbose_log=False) as broker:
        root = Path(tmp)
        artifacts = train_artifacts(root / "artifacts", window=WINDOW)
        size_rows = []
        for n in sizes:
            size_rows.append(measure_size(root, broker, artifacts, n, args.fill_rate))
            print(f"done {n} units", file=sys.stderr, flush=True)
        drift = measure_drift(root, broker, artifacts, drift_units, minutes, sample_s) if minutes > 0 else None

    print(f"\nplantwatch memory benchmark: {machine()}; lstm_ae detector + lstm forecaster per unit, window {WINDOW}\n")
    if size_rows:
        print(
            "| units | processes | PSS connected MiB | PSS every window filled MiB | RSS filled MiB (sum) "
            "| libtorch mapped | readings published | received | windows scored | skipped |"
        )
        print("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
        for r in size_rows:
            started, loaded = r["started"], r["loaded"]
            print(
                f"| {r['units']:,.0f} | {len(loaded.processes)} | {started.pss_mb:.0f} | {loaded.pss_mb:.0f} "
                f"| {loaded.rss_mb:.0f} | {_libtorch(loaded)} | {r['published']:,.0f} | {r['received']:,.0f} "
                f"| {r['scored']:,.0f} | {r['skipped']:,.0f} |"
            )
        print("\nPer process, every window filled:\n")
        print("| units | process | pid | PSS MiB | RSS MiB | peak RSS MiB | libtorch |")
        print("|---:|---|---:|---:|---:|---:|---|")
        for r in size_rows:
            for p in r["loaded"].processes:
                print(
                    f"| {r['units']:,.0f} | {p.name} | {p.pid} | {p.pss_mb:.1f} | {p.rss_mb:.1f} "
                    f"| {p.peak_rss_mb:.1f} | {'yes' if p.libtorch else 'no'} |"
                )
        at_1000 = [r for r in size_rows if r["units"] == 1000]
        if at_1000:
            loaded = at_1000[0]["loaded"]
            verdict = "met" if loaded.pss_mb <= 200.0 and not loaded.libtorch else "not met"
            print(
                f"\nIssue 12 (PSS <= 200 MiB at 1,000 units, every window filled; no libtorch on the CPU): {verdict} "
                f"(PSS {loaded.pss_mb:.0f} MiB over {len(loaded.processes)} process(es), libtorch {_libtorch(loaded)})"
            )
    if drift is not None:
        print(
            f"\nDrift: {drift['units']:,.0f} units at 1 Hz for {drift['minutes']:g} min "
            f"({drift['published']:,.0f} readings published, {drift['late_ticks']:.0f} late publisher ticks), "
            f"{len(drift['end'].processes)} process(es), libtorch {_libtorch(drift['end'])}\n"
        )
        print(
            "| PSS after 1 min MiB | PSS at end MiB | PSS max MiB | RSS after 1 min / end / max MiB "
            "| PSS slope MiB/h | received | windows scored | skipped | queue drops |"
        )
        print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        print(
            f"| {drift['pss_after_1min']:.1f} | {drift['pss_end']:.1f} | {drift['pss_max']:.1f} "
            f"| {drift['rss_after_1min']:.1f} / {drift['rss_end']:.1f} / {drift['rss_max']:.1f} "
            f"| {drift['slope']:+.1f} | {drift['received']:,.0f} | {drift['scored']:,.0f} | {drift['skipped']:,.0f} "
            f"| {drift['dropped']:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
