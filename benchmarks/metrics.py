"""Per-unit metrics benchmark: memory of ``Metrics(...)``, scrape time, ``OutputStage.handle`` CPU time.

    .venv/bin/python -m benchmarks.metrics            # markdown table, before vs now (about 30 s)
    .venv/bin/python -m benchmarks.metrics --json     # this checkout's figures only, as JSON

Config: 1,000 units x 8 sensors (the reactor's), a detector and a forecaster of horizons (1, 10), on a fresh
CollectorRegistry (no process, platform or gc collectors), everything else as the service builds it.

- Memory: ``Metrics(registry, ...)`` constructed in a fresh subprocess after every import: the tracemalloc
  figure (Python allocations still held after construction) and, in another subprocess without tracemalloc,
  the RSS delta (/proc/self/statm) across the construction.
- Scrape: ``generate_latest(registry)`` wall time (median of ``--scrapes``), with every per-unit series set
  through the service's own stages: one valid readings message per unit and row through IngestStage (received),
  BufferStage (sensor values of the newest aligned row, buffer fill), and an OutputStage.handle of a scored
  window of every unit (scores, thresholds, per-sensor errors of both detectors, forecasts).
- Handle: CPU time (time.process_time, median of ``--handles`` calls) of ``OutputStage.handle`` for one
  ScoringOutput of 512 units' windows: 512 reconstruction Scores, 512 forecast Scores, 512 Forecasts [10, 8];
  scores under threshold (no alert events); once with the default config (scores and forecasts published as
  JSON to a publish callable that drops them), once with publishing off (metrics and alert state only); the
  garbage collector is off while timing (a collection over the prepared batches is not the stage's cost).

"before": the figures of this script run at commit d6ca084 (one prometheus_client child per series and unit,
``UnitMetrics``), the last commit before the numpy-backed ``UnitTable``, on the development machine (2 shared
cores, another engineer's benchmarks running in parallel); that code is not kept in the repo, so the column is a
constant here and only "now" is measured. Timings on a shared machine move by 10-20 % between runs: read the
ratios, not the third digit.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from monitor.alerts.board import AlertBoard
from monitor.alerts.policy import AlertPolicy
from monitor.buffers.ring_buffers import RingBuffers
from monitor.buffers.unit_spec import UnitSpec
from monitor.ingest import Parser
from monitor.messages import MODEL_DETECTORS, Forecast, Score
from monitor.metrics import Metrics
from monitor.mqtt_sink import MqttSink
from monitor.outputs import OutputStage
from monitor.scheduler import JobQueue
from monitor.scoring_records import ScoringOutput
from monitor.stages import BufferStage, Inbox, IngestStage
from simulators.reactor import REACTOR_SENSORS

SENSORS = tuple(REACTOR_SENSORS)
HORIZONS = (1, 10)
MODELS = {"det": "detector", "fc": "forecaster"}
UNITS = 1000
BATCH = 512
THRESHOLD = 1.0

# Measured with this script at d6ca084 (see the docstring).
BEFORE = {
    "tracemalloc_mib": 36.35,
    "rss_mib": 38.96,
    "scrape_ms": 591.7,
    "scrape_kib": 4671.5,
    "handle_ms": 63.6,
    "handle_nopub_ms": 21.2,
}


def unit_names(n: int) -> list[str]:
    return [f"u{i:04d}" for i in range(n)]


def build(n_units: int) -> tuple[CollectorRegistry, Metrics]:
    registry = CollectorRegistry()
    units = {name: SENSORS for name in unit_names(n_units)}
    return registry, Metrics(registry, units=units, models=MODELS, horizons=HORIZONS)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(kind: str) -> dict[str, float]:
    """Runs in a fresh interpreter: every import done, then one Metrics(...) construction."""
    build(2)  # first-use allocations (interned names, caches) outside the measurement
    gc.collect()
    if kind == "tracemalloc":
        tracemalloc.start()
        kept = build(UNITS)
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del kept
        return {"tracemalloc_mib": current / 2**20}
    before = rss_bytes()
    kept = build(UNITS)
    gc.collect()
    after = rss_bytes()
    del kept
    return {"rss_mib": (after - before) / 2**20}


def memory() -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in ("tracemalloc", "rss"):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind], check=True, capture_output=True, text=True, timeout=120
        )
        out.update(json.loads(proc.stdout))
    return out


def scores_and_forecasts(units: list[str], ts: float, rng: np.random.Generator) -> ScoringOutput:
    out = ScoringOutput()
    for unit in units:
        for detector in MODEL_DETECTORS:
            errors = rng.uniform(0.0, 0.5, len(SENSORS))
            out.scores.append(
                Score(
                    unit,
                    detector,
                    "det" if detector == "reconstruction" else "fc",
                    ts,
                    float(errors.mean()),
                    THRESHOLD,
                    dict(zip(SENSORS, errors.tolist(), strict=True)),
                    ts + 0.05,
                    ts,
                )
            )
        values = rng.normal(100.0, 10.0, (max(HORIZONS), len(SENSORS))).astype(np.float32)
        out.forecasts.append(Forecast(unit, "fc", ts, 1.0, values, ts + 0.05))
    return out


def output_stage(metrics: Metrics, units: list[str], publish: bool) -> OutputStage:
    board = AlertBoard({u: AlertPolicy() for u in units})
    sensors = {u: SENSORS for u in units}
    sink = MqttSink(
        lambda topic, payload, qos, retain: True, publish_scores=publish, publish_forecasts=publish, sensors=sensors
    )
    return OutputStage(board, [sink], metrics)


def fill_every_series(metrics: Metrics, units: list[str], rng: np.random.Generator) -> None:
    """Non-zero values in every per-unit series, through the stages that set them in the service."""
    now = time.time()
    parser = Parser({u: SENSORS for u in units})
    inbox = Inbox(len(units) * 4)
    ingest = IngestStage(parser, inbox, metrics)
    specs = {u: UnitSpec(sensors=SENSORS, window_rows=2) for u in units}
    jobs = JobQueue(len(units) * 4, metrics)
    buffers = BufferStage(RingBuffers(specs), inbox, jobs, metrics)
    for row in range(3):
        for unit in units:
            values = {s: float(v) for s, v in zip(SENSORS, rng.normal(50.0, 5.0, len(SENSORS)), strict=True)}
            payload = json.dumps({"ts": now - 10 + row, "values": values}).encode()
            ingest.handle(f"plant/{unit}/readings", payload, now)
        reading = inbox.get_nowait()
        while reading is not None:
            buffers.handle(reading)
            reading = inbox.get_nowait()
    buffers.update_gauges()
    output_stage(metrics, units, publish=False).handle(scores_and_forecasts(units, now, rng))


def scrape(n: int) -> dict[str, float]:
    registry, metrics = build(UNITS)
    units = unit_names(UNITS)
    fill_every_series(metrics, units, np.random.default_rng(0))
    body = generate_latest(registry)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - t0)
    return {"scrape_ms": 1e3 * statistics.median(times), "scrape_kib": len(body) / 1024}


def handle(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for publish in (True, False):
        _, metrics = build(UNITS)
        units = unit_names(UNITS)[:BATCH]
        stage = output_stage(metrics, units, publish)
        rng = np.random.default_rng(1)
        batches = [scores_and_forecasts(units, 1.7e9 + i, rng) for i in range(n + 1)]
        stage.handle(batches[0])  # trackers created, first-use costs
        times = []
        gc.collect()
        gc.disable()  # a collection over the prepared batches would land in some calls, not the stage's cost
        try:
            for batch in batches[1:]:
                t0 = time.process_time()
                stage.handle(batch)
                times.append(time.process_time() - t0)
        finally:
            gc.enable()
        out["handle_ms" if publish else "handle_nopub_ms"] = 1e3 * statistics.median(times)
    return out


ROWS = (
    ("tracemalloc_mib", "Metrics(...) memory, tracemalloc (MiB)"),
    ("rss_mib", "Metrics(...) memory, RSS delta (MiB)"),
    ("scrape_ms", "generate_latest(registry) (ms)"),
    ("scrape_kib", "exposition size (KiB)"),
    ("handle_ms", "OutputStage.handle, 512 windows, publishing on (ms CPU)"),
    ("handle_nopub_ms", "OutputStage.handle, 512 windows, publishing off (ms CPU)"),
)


def table(now: dict[str, float]) -> str:
    lines = [
        f"{UNITS:,} units x {len(SENSORS)} sensors, horizons {HORIZONS}",
        "",
        "| figure | before (d6ca084) | now | now / before |",
        "|---|---:|---:|---:|",
    ]
    for key, label in ROWS:
        before = BEFORE[key]
        lines.append(f"| {label} | {before:.1f} | {now[key]:.1f} | {now[key] / before:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print this checkout's figures as JSON")
    ap.add_argument("--scrapes", type=int, default=15)
    ap.add_argument("--handles", type=int, default=40)
    ap.add_argument("--child", choices=("tracemalloc", "rss"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(memory_child(args.child)))
        return 0
    now: dict[str, Any] = {}
    now.update(memory())
    now.update(scrape(args.scrapes))
    now.update(handle(args.handles))
    print(json.dumps(now, indent=1) if args.json else table(now))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
