"""Service benchmark: the most units at 1 Hz that keep p99 publish-to-score <= 250 ms, per arrival pattern.

    .venv/bin/python -m benchmarks.pipeline                     # search per pattern from 2,000 units, then N/2
    .venv/bin/python -m benchmarks.pipeline --quick             # shorter runs, a coarser search
    .venv/bin/python -m benchmarks.pipeline --units 1000 2000 --keep-going     # these unit counts, no search
    .venv/bin/python -m benchmarks.pipeline --arrival spread --start 3000 --limit 8000
    .venv/bin/python -m benchmarks.pipeline --device cuda --publishers 4 --budget-s 240 --json out.json   # gpu.sh

One run (N units, one arrival pattern): a private mosquitto; `plantwatch run` as a subprocess (with every process
it starts) with the default detector (lstm_ae, window 50) and an LSTM forecaster on every unit, 8 sensors, QoS 1;
the publisher process(es) of benchmarks/_harness.py ("paced" mode): ``backfill`` rows per unit with past event
times as fast as the service takes them (every window full), then one `readings` message per unit per second
through the warm-up and the measured span (then stopped after a whole tick). Arrival patterns
(_harness.arrival_offsets): **spread**, unit i of N sends at i/N of each second, stamped with that instant
(independent gateways, each on its own phase); **burst**, every unit's row sent at the tick, stamped with the
tick (one gateway polling every PLC; the publisher's own time to send the burst is inside publish-to-score).

Figures over the measured ``--measure-s`` seconds after the ``--warmup-s`` warm-up, which is extended (by up to
``--warmup-max-s``) until the service has caught up (the back-fill's windows and every live row older than a
second scored; the row says if it never did): the service's own
histograms, publish-to-score (wall clock at scoring minus the event time of the newest reading in the row) and
receive-to-score, p50 / p99 interpolated within their buckets, and the share at or under 250 ms read exactly at
the 0.25 s bucket bound; the service's CPU and memory over its whole process tree (_harness.tree_memory: PSS
summed over the processes, RSS per process and summed, whether any maps libtorch); the publisher's send lag (how
late its messages went out after their own due time: it competes for the cores). Counts at the end, after the
queues drained: published, received, lost (= published - received), rejected, ingest-queue drops, skipped
windows, scored / expected detector windows.

A unit count **holds** when nothing is lost, rejected, dropped or skipped, every expected window is scored, and at
least 99% of publish-to-score is <= 250 ms (p99 <= 250 ms, issue 12's bar).

Search (the default, per arrival pattern): from ``--start`` (2,000) up by x``--grow`` (1.5) while it holds, down
by halves if the start fails, then bisection until the bracket is ``--step`` units wide (all counts multiples of
``--step``); the largest count that held is reported, and then the run at half of it ("p99 at N/2"; a count
already run is not run again). ``--budget-s`` stops starting runs after that many seconds (the largest so far is
reported, marked as cut). The ingest ceiling is benchmarks/ingest.py's.

Prints markdown; ``--json PATH`` also writes every run's figures (rewritten after each run, so a cut run leaves
what it measured).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    config_dict,
    machine,
    settled,
    start_publisher,
    stop_publisher,
    train_artifacts,
    tree_cpu_seconds,
    tree_memory,
    unit_names,
)
from monitor.messages import SKIP_REASONS
from tests.kit import Broker, SpawnedService, increase, quantile, scrape, share_within, wait_until

WINDOW = 50
BACKFILL = WINDOW + 5  # full windows and the forecaster's first residual before the live part
LATENCY_TARGET_S = 0.25
HELD_SHARE = 0.99  # p99 <= 250 ms: at least 99% of publish-to-score at or under the target


# -- one run ------------------------------------------------------------------------------------------------------
class Bench:
    """What every run shares: the broker, the artifacts, the options, the work directory."""

    def __init__(self, broker: Broker, artifacts: dict[str, Path], workdir: Path, args: argparse.Namespace) -> None:
        self.broker = broker
        self.artifacts = artifacts
        self.workdir = workdir
        self.args = args


def _kill_running(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def run_units(bench: Bench, n: int, arrival: str) -> dict[str, Any]:
    """One run of ``n`` units with one arrival pattern; the figures listed in the module docstring."""
    args = bench.args
    prefix = f"p{uuid.uuid4().hex[:6]}"  # fresh topics: nothing a previous run left queued reaches this one
    data = config_dict(
        bench.broker,
        bench.artifacts,
        unit_names(n),
        prefix=prefix,
        scheduler={"device": args.device},
        outputs={"publish_scores": args.outputs, "publish_forecasts": args.outputs},
    )
    began = time.monotonic()
    with contextlib.ExitStack() as stack, SpawnedService(data, bench.workdir, f"{arrival}-{n}") as service:
        service.start(timeout_s=300)
        port = service.port
        start_s = time.monotonic() - began
        idle = tree_memory(service.pid)
        # Every shard publishes on the same clock: the first live tick after the estimated back-fill time.
        t_start = math.ceil(time.time() + 1.5 + BACKFILL * n / float(args.backfill_rate))
        backfill_windows = n * (BACKFILL - WINDOW + 1)
        shards = min(args.publishers, n)
        bounds = [round(i * n / shards) for i in range(shards + 1)]
        publishers: list[subprocess.Popen[str]] = []
        stack.callback(_kill_running, publishers)  # a run cut short leaves no publisher behind
        publishers += [
            start_publisher(
                {
                    "mode": "paced",
                    "port": bench.broker.port,
                    "units": n,
                    "first_unit": lo,
                    "shard_units": hi - lo,
                    # an upper bound: stopped (after a whole tick) once the measured span is over
                    "seconds": args.warmup_s + args.warmup_max_s + args.measure_s + 10,
                    "backfill": BACKFILL,
                    "arrival": arrival,
                    "t_start": t_start,
                    "qos": 1,
                    "topic": f"{prefix}/plant/{{unit}}/readings",
                }
            )
            for lo, hi in itertools.pairwise(bounds)
        ]
        time.sleep(max(0.0, t_start + args.warmup_s - time.time()))

        # The measured span starts once the service has caught up: the back-fill scored (else its past event
        # times would count as latency) and every live row older than a second too; a warm-up that ends first is
        # extended by up to warmup_max_s (a service that never catches up is measured anyway, and flagged).
        def caught_up() -> bool:
            scored = scrape(port).total("plantwatch_windows_scored_total", detector="reconstruction")
            return scored >= backfill_windows + n * max(0, math.floor(time.time() - t_start) - 1)

        caught = wait_until(caught_up, args.warmup_max_s, 0.5)
        warmup_s = time.time() - t_start
        a = scrape(port)
        cpu_a, a_at = tree_cpu_seconds(service.pid), time.monotonic()
        time.sleep(args.measure_s)
        b = scrape(port)
        cpu_b, b_at = tree_cpu_seconds(service.pid), time.monotonic()
        loaded = tree_memory(service.pid)
        sent = [stop_publisher(p, timeout_s=120) for p in publishers]
        published = sum(int(s["published"]) for s in sent)
        c = settled(port, published, timeout_s=120)
        end = tree_memory(service.pid)
    exit_code = service.proc.returncode if service.proc is not None else None

    expected_scored = published - n * (WINDOW - 1)  # every unit's rows, less the first window's warm-up rows
    received = c.total("plantwatch_readings_received_total")
    skipped = c.total("plantwatch_windows_skipped_total")
    scored = c.total("plantwatch_windows_scored_total", detector="reconstruction")
    p2s, r2s = (
        increase(a.histogram(name), b.histogram(name))
        for name in ("plantwatch_publish_to_score_seconds", "plantwatch_receive_to_score_seconds")
    )
    infer_ms = {}
    for model in ("det", "fc"):
        calls, secs = (
            b.total(name, model=model) - a.total(name, model=model)
            for name in ("plantwatch_inference_seconds_count", "plantwatch_inference_seconds_sum")
        )
        infer_ms[model] = 1000.0 * secs / calls if calls else math.nan
    batches = b.total("plantwatch_batch_size_windows_count") - a.total("plantwatch_batch_size_windows_count")
    windows = b.total("plantwatch_batch_size_windows_sum") - a.total("plantwatch_batch_size_windows_sum")
    share = share_within(p2s, LATENCY_TARGET_S)
    result: dict[str, Any] = {
        "arrival": arrival,
        "units": n,
        "service_start_s": start_s,
        "published": published,
        "received": received,
        "lost": published - received,
        "rejected": c.total("plantwatch_readings_rejected_total"),
        "dropped": c.total("plantwatch_queue_dropped_total"),
        "skipped": skipped,
        "skipped_by_reason": {
            reason: c.total("plantwatch_windows_skipped_total", reason=reason) for reason in SKIP_REASONS
        },
        "scored": scored,
        "expected_scored": expected_scored,
        "caught_up_before_measuring": caught,
        "warmup_s": warmup_s,
        "live_ticks": min(int(s["ticks"]) for s in sent),
        "measured_windows": p2s[-1][1] if p2s else 0.0,
        "p50_publish_to_score_s": quantile(p2s, 0.5),
        "p99_publish_to_score_s": quantile(p2s, 0.99),
        "share_within_250ms": share,
        "p99_receive_to_score_s": quantile(r2s, 0.99),
        "infer_ms_per_call": infer_ms,
        "mean_batch": windows / batches if batches else math.nan,
        "service_cpu_cores": (cpu_b - cpu_a) / max(b_at - a_at, 1e-9),
        "publisher_late_ticks": sum(int(s["late_ticks"]) for s in sent),
        "publisher_send_lag_p99_s": max(float(s["send_lag_p99_s"]) for s in sent),
        "publisher_backfill_s": max(float(s["backfill_s"]) for s in sent),
        "publishers": shards,
        "memory_idle": idle.as_dict(),
        "memory_loaded": loaded.as_dict(),
        "memory_end": end.as_dict(),
        "memory_loaded_per_process": loaded.per_process(),
        "exit_code": exit_code,
    }
    result["held"] = (
        result["lost"] == 0
        and result["rejected"] == 0
        and result["dropped"] == 0
        and skipped == 0
        and scored == expected_scored
        and share >= HELD_SHARE
    )
    return result


# -- the search ---------------------------------------------------------------------------------------------------
def search_largest(
    held: Callable[[int], bool], start: int, limit: int, step: int, grow: float, may_run: Callable[[], bool]
) -> tuple[int | None, bool]:
    """The largest unit count (a multiple of ``step``, at most ``limit``) for which ``held`` is true, assuming it
    holds below any count that holds: up by x``grow`` from ``start`` while it holds, down by halves from a start that
    fails, then bisection to one ``step``. Returns (largest that held or None, whether ``may_run`` cut the search).
    """

    def on_grid(x: float) -> int:
        return max(step, round(x / step) * step)

    best: int | None = None
    worst: int | None = None  # the smallest count that failed
    n = on_grid(min(start, limit))
    while True:  # bracket: up while it holds, down by halves while it fails
        if not may_run():
            return best, True
        if held(n):
            best = n
            following = min(on_grid(n * grow), limit)
            if worst is not None or following <= n:
                break
            n = following
        else:
            worst = n
            if best is not None or n <= step:
                break
            n = on_grid(n / 2)
    while best is not None and worst is not None and worst - best > step:  # bisect
        mid = on_grid((best + worst) / 2)
        if mid in (best, worst):
            break
        if not may_run():
            return best, True
        if held(mid):
            best = mid
        else:
            worst = mid
    return best, False


# -- output -------------------------------------------------------------------------------------------------------
HEADER = (
    "| arrival | units | published | lost | skipped | scored / expected | p50 / p99 publish->score ms "
    "| <= 250 ms | p99 receive->score ms | publisher send lag p99 ms | mean batch | infer ms/call (det, fc) "
    "| service CPU cores | processes | PSS MiB idle / loaded | RSS MiB loaded | libtorch | held |\n"
    "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|---:|---:|---|---:|---|---|"
)


def row(r: dict[str, Any]) -> str:
    loaded = r["memory_loaded"]
    libtorch = [p["pid"] for p in loaded["processes"] if p["libtorch"]]
    flags = "" if r["caught_up_before_measuring"] else " (still behind when measured)"
    return (
        f"| {r['arrival']} | {r['units']:,} | {r['published']:,} | {r['lost']:,.0f} | {r['skipped']:,.0f} "
        f"| {r['scored']:,.0f} / {r['expected_scored']:,} "
        f"| {1000 * r['p50_publish_to_score_s']:.0f} / {1000 * r['p99_publish_to_score_s']:.0f} "
        f"| {100 * r['share_within_250ms']:.2f}% | {1000 * r['p99_receive_to_score_s']:.0f} "
        f"| {1000 * r['publisher_send_lag_p99_s']:.0f} | {r['mean_batch']:.0f} "
        f"| {r['infer_ms_per_call']['det']:.1f}, {r['infer_ms_per_call']['fc']:.1f} "
        f"| {r['service_cpu_cores']:.2f} | {len(loaded['processes'])} "
        f"| {r['memory_idle']['pss_mb']:.0f} / {loaded['pss_mb']:.0f} | {loaded['rss_mb']:.0f} "
        f"| {'yes (pid ' + ', '.join(map(str, libtorch)) + ')' if libtorch else 'no'} "
        f"| {'yes' if r['held'] else 'no'}{flags} |"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="warm-up 8 s, measure 12 s, search step 500 units")
    parser.add_argument("--units", type=int, nargs="+", help="run these unit counts instead of searching")
    parser.add_argument("--keep-going", action="store_true", help="with --units: go on after a count fails")
    parser.add_argument("--arrival", nargs="+", choices=("spread", "burst"), default=["spread", "burst"])
    parser.add_argument("--start", type=int, default=2000, help="search: the first unit count (default 2,000)")
    parser.add_argument("--limit", type=int, default=10000, help="search: the largest unit count tried")
    parser.add_argument("--step", type=int, help="search: resolution in units (default 250, quick 500)")
    parser.add_argument("--grow", type=float, default=1.5, help="search: factor while counts hold")
    parser.add_argument("--no-half", action="store_true", help="search: skip the run at half the largest count")
    parser.add_argument("--warmup-s", type=float, help="live seconds before measuring (default 15, quick 8)")
    parser.add_argument(
        "--warmup-max-s", type=float, default=60.0, help="longest extension of the warm-up while the back-fill scores"
    )
    parser.add_argument("--measure-s", type=float, help="measured seconds per run (default 30, quick 12)")
    parser.add_argument("--device", default="cpu", help="the service's scheduler.device (cpu, cuda, auto)")
    parser.add_argument("--publishers", type=int, default=1, help="publisher processes, units split between them")
    parser.add_argument(
        "--backfill-rate", type=float, default=5000.0, help="readings/s the back-fill is expected to take (schedule)"
    )
    parser.add_argument("--outputs", action="store_true", help="also publish scores and forecasts on MQTT")
    parser.add_argument("--budget-s", type=float, default=0.0, help="start no run after this many seconds (0: none)")
    parser.add_argument("--artifacts", type=Path, help="directory for the trained artifacts (trained if absent)")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args(argv)
    # SIGTERM (a timeout around this script, as in gpu.sh) unwinds like Ctrl-C: the service, the broker and the
    # publishers are stopped by their context managers instead of running on beside whatever comes next.
    signal.signal(signal.SIGTERM, _interrupt)
    args.warmup_s = args.warmup_s if args.warmup_s is not None else (8.0 if args.quick else 15.0)
    args.measure_s = args.measure_s if args.measure_s is not None else (12.0 if args.quick else 30.0)
    step = args.step or (500 if args.quick else 250)
    began = time.monotonic()
    runs: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"largest": {}, "cut": {}, "half": {}}
    header = (
        f"plantwatch pipeline benchmark: {machine()}, load average at start {os.getloadavg()[0]:.2f}; "
        f"lstm_ae detector + lstm forecaster on every unit, window {WINDOW}, 8 sensors, QoS 1, device {args.device}; "
        f"warm-up {args.warmup_s:g} s, measured {args.measure_s:g} s per run"
    )
    print(header + "\n", flush=True)
    print(HEADER, flush=True)

    def record(r: dict[str, Any]) -> None:
        runs.append(r)
        print(row(r), flush=True)
        print(json.dumps(r, default=str), file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps({"header": header, "runs": runs, **summary}, indent=1, default=str))

    def may_run() -> bool:
        budget_s = float(args.budget_s)
        return budget_s <= 0 or time.monotonic() - began < budget_s

    with tempfile.TemporaryDirectory(prefix="pw-bench-pipeline-") as tmp, Broker(verbose_log=False) as broker:
        workdir = Path(tmp)
        artifacts = train_artifacts(args.artifacts or workdir / "artifacts", window=WINDOW)
        bench = Bench(broker, artifacts, workdir, args)
        done: dict[tuple[str, int], dict[str, Any]] = {}

        def held(arrival: str, n: int) -> bool:
            if (arrival, n) not in done:
                done[(arrival, n)] = run_units(bench, n, arrival)
                record(done[(arrival, n)])
            return done[(arrival, n)]["held"] is True

        for arrival in args.arrival:
            if args.units:
                for n in args.units:
                    if not may_run():
                        break
                    if not held(arrival, n) and not args.keep_going:
                        break
                continue
            largest, cut = search_largest(partial(held, arrival), args.start, args.limit, step, args.grow, may_run)
            summary["largest"][arrival], summary["cut"][arrival] = largest, cut
            if largest is not None and not args.no_half and may_run():
                held(arrival, largest // 2)
                summary["half"][arrival] = done[(arrival, largest // 2)]
    if args.json:
        args.json.write_text(json.dumps({"header": header, "runs": runs, **summary}, indent=1, default=str))
    if not args.units:
        print()
        for arrival in args.arrival:
            largest = summary["largest"].get(arrival)
            note = " (search cut by --budget-s)" if summary["cut"].get(arrival) else ""
            found = f"{largest:,}" if largest else "none of those tried"
            line = f"- {arrival}: largest unit count that held p99 <= 250 ms: {found}{note}"
            half = summary["half"].get(arrival)
            if half is not None:
                line += (
                    f"; at half of it ({half['units']:,} units) p99 publish-to-score "
                    f"{1000 * half['p99_publish_to_score_s']:.0f} ms"
                )
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
