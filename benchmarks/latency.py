"""Latency benchmark: publish-to-score and publish-to-alert, p50 and p99, at 10%, 50% and 90% of capacity.

    .venv/bin/python -m benchmarks.latency                    # measure the capacity, then 60 s per load level
    .venv/bin/python -m benchmarks.latency --capacity 1500    # take the capacity (units at 1 Hz) as given
    .venv/bin/python -m benchmarks.latency --quick            # a short capacity search and 25 s per level

Setup: a private mosquitto; `plantwatch run` as a subprocess (its own process, as deployed) with the default
detector (lstm_ae, window 50) and an LSTM forecaster on every unit, scores and forecasts published; a publisher
process (benchmarks/_harness.py) that first back-fills 55 rows per unit (past event times, so every window is
full when the live part starts), then every second publishes one 8-sensor `readings` message per unit for the
row whose event time is that second (QoS 1, a burst per tick, as a gateway polling its PLCs would).
This process subscribes to the service's score and alert topics:

- publish-to-score: arrival of ``<prefix>/scores/{unit}`` minus the row's event time (= the tick at which the
  burst started, so the publisher's own spread over the burst is included). Rows of the first 10 live seconds
  are left out (the back-fill is still being scored).
- receive-to-score: the service's own histogram (arrival at the service to scoring), bucket-interpolated; with
  the publisher's mean burst length it tells how much of publish-to-score the service itself adds.
- publish-to-alert: arrival of a ``firing`` event minus its ``ts`` (the row that completed the fire rule). Faults
  (+20 K on reactor_temp_K, far above the calibrated threshold) are injected into every 20th unit (5%) from live
  second 12 to 22 (and again every 30 s in longer runs), so each level sees alerts fire.

Capacity: the largest unit count at 1 Hz for which, over a short run, no reading is lost, no window is skipped
(``plantwatch_windows_skipped_total``) and p99 publish-to-score stays under one period (1 s); searched by doubling
from ``--start-units`` and one bisection step. Issue 4's target (p99 < 250 ms at 2,000 units) is a separate
column. Figures depend on the machine's other load: the header prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks._harness import (
    config_dict,
    cpu_seconds,
    machine,
    percentile,
    publisher_result,
    rss_mb,
    start_publisher,
    train_artifacts,
    unit_names,
)
from tests.kit import Broker, SpawnedService, increase, quantile, scrape

WINDOW = 50
BACKFILL = WINDOW + 5
WARMUP_S = 10.0
RECEIVE_TO_SCORE = "plantwatch_receive_to_score_seconds"
FAULT_OFFSET_K = 20.0
FAULT_S = 10  # seconds each injected fault lasts


class Listener:
    """Subscribes to the service's score and alert topics; records arrival minus event time."""

    def __init__(self, broker: Broker, prefix: str, since: float) -> None:
        self.since = since  # rows with event time before this are ignored (warm-up)
        self.score_lat: list[float] = []
        self.alert_lat: list[float] = []
        self.alert_units: set[str] = set()
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"lat-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        topics = [(f"{prefix}/pw/scores/+", 0), (f"{prefix}/pw/alerts/+", 1)]
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not subscribed.wait(15):
            raise RuntimeError("listener could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(msg.payload)
        ts = float(body["ts"])
        if ts < self.since:
            return
        with self._lock:
            if "/scores/" in msg.topic:
                self.score_lat.append(now - ts)
            elif body.get("state") == "firing":
                self.alert_lat.append(now - ts)
                self.alert_units.add(str(body.get("unit")))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_level(
    root: Path, broker: Broker, artifacts: dict[str, Path], n_units: int, seconds: float, cpu_threads: int = 1
) -> dict[str, Any]:
    """One service at ``n_units`` units at 1 Hz for ``seconds`` live seconds; latency and loss figures."""
    prefix = f"l{n_units}x{uuid.uuid4().hex[:4]}"
    data = config_dict(
        broker, artifacts, unit_names(n_units), prefix=prefix, scheduler={"device": "cpu", "cpu_threads": cpu_threads}
    )
    n_faulty = max(1, n_units // 20)
    starts = range(int(WARMUP_S) + 2, int(seconds) - FAULT_S + 1, 30)
    # Every 20th unit, so the faulty units are spread over each tick's burst like the others.
    step = max(1, n_units // n_faulty)
    faulty_units = range(0, n_units, step)
    n_faulty = len(faulty_units)
    faults = [[u, 1, start, start + FAULT_S, 0, FAULT_OFFSET_K] for start in starts for u in faulty_units]
    with SpawnedService(data, root, prefix).start() as service:
        port = service.port
        pub = start_publisher(
            {
                "mode": "paced",
                "port": broker.port,
                "units": n_units,
                "seconds": seconds,
                "backfill": BACKFILL,
                "qos": 1,
                "topic": f"{prefix}/plant/{{unit}}/readings",
                "faults": faults,
            }
        )
        # The publisher's first live tick follows its back-fill (the same estimate as in _harness.py); rows
        # before that tick + WARMUP_S are not counted, nor are the skips and CPU of the back-fill.
        since = time.time() + BACKFILL * n_units / 8000.0 + 1.0 + WARMUP_S
        listener = Listener(broker, prefix, since=since)
        time.sleep(max(0.0, since - time.time()))
        cpu0, t0, m0 = cpu_seconds(service.pid), time.monotonic(), scrape(port)
        sent = publisher_result(pub)
        time.sleep(3.0)  # the last tick's scores and alerts
        m1 = scrape(port)
        cpu = (cpu_seconds(service.pid) - cpu0) / (time.monotonic() - t0)
        rss = rss_mb(service.pid)
        listener.close()

    def delta(name: str) -> float:
        return m1.total(name) - m0.total(name)

    received_total = m1.total("plantwatch_readings_received_total")
    receive_to_score = increase(m0.histogram(RECEIVE_TO_SCORE), m1.histogram(RECEIVE_TO_SCORE))
    return {
        "units": n_units,
        "cpu_threads": cpu_threads,
        "published": sent["published"],
        "lost": sent["published"] - received_total - m1.total("plantwatch_queue_dropped_total"),
        "late_ticks": sent["late_ticks"],
        "skipped": delta("plantwatch_windows_skipped_total"),
        "scores": len(listener.score_lat),
        "p50": percentile(listener.score_lat, 50),
        "p99": percentile(listener.score_lat, 99),
        "max": max(listener.score_lat) if listener.score_lat else float("nan"),
        "alerts": len(listener.alert_lat),
        "alert_units": len(listener.alert_units),
        "faulty": n_faulty,
        "a50": percentile(listener.alert_lat, 50),
        "a99": percentile(listener.alert_lat, 99),
        "cpu": cpu,
        "rss": rss,
        "burst_ms": 1000.0 * sent["burst_mean_s"],
        "r50": quantile(receive_to_score, 0.5),
        "r99": quantile(receive_to_score, 0.99),
    }


def sustained(r: dict[str, Any]) -> bool:
    return bool(r["lost"] == 0 and r["skipped"] == 0 and r["p99"] < 1.0 and r["scores"] > 0)


def find_capacity(
    root: Path, broker: Broker, artifacts: dict[str, Path], start: int, limit: int, seconds: float
) -> tuple[int, list[dict[str, Any]]]:
    tried: list[dict[str, Any]] = []
    good, bad = 0, 0
    n = start
    while n <= limit:
        r = run_level(root, broker, artifacts, n, seconds)
        tried.append(r)
        print(f"capacity probe {n} units: {'ok' if sustained(r) else 'missed'} {r}", file=sys.stderr, flush=True)
        if sustained(r):
            good, n = n, n * 2
        else:
            bad = n
            break
    if good and bad:
        mid = (good + bad) // 2
        r = run_level(root, broker, artifacts, mid, seconds)
        tried.append(r)
        print(f"capacity probe {mid} units: {'ok' if sustained(r) else 'missed'} {r}", file=sys.stderr, flush=True)
        if sustained(r):
            good = mid
    return max(good, 1), tried


def fmt_ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short capacity probes (20 s) and 25 s per level")
    parser.add_argument("--capacity", type=int, help="units at 1 Hz the service sustains (skips the search)")
    parser.add_argument("--start-units", type=int, default=250, help="first capacity probe (doubled until a miss)")
    parser.add_argument("--max-units", type=int, default=4000, help="largest capacity probe")
    parser.add_argument("--seconds", type=float, help="live seconds per load level (default 60, quick 25)")
    parser.add_argument("--levels", default="0.1,0.5,0.9", help="shares of the capacity to measure")
    parser.add_argument(
        "--broker-inflight",
        type=int,
        help="mosquitto max_inflight_messages (QoS 1 messages unacknowledged per client; mosquitto's default 20)",
    )
    parser.add_argument(
        "--cpu-threads",
        default="1",
        help="scheduler.cpu_threads values to run each level with (e.g. 0,1: torch's default vs one thread)",
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (25.0 if args.quick else 60.0)
    probe_s = 20.0 if args.quick else 30.0
    levels = [float(x) for x in args.levels.split(",")]

    extra = [f"max_inflight_messages {args.broker_inflight}"] if args.broker_inflight is not None else []
    with (
        tempfile.TemporaryDirectory(prefix="pw-bench-latency-") as tmp,
        Broker(extra_conf=extra, verbose_log=False) as broker,
    ):
        root = Path(tmp)
        artifacts = train_artifacts(root / "artifacts", window=WINDOW, epochs=4)
        probes: list[dict[str, Any]] = []
        if args.capacity:
            capacity = args.capacity
        else:
            capacity, probes = find_capacity(root, broker, artifacts, args.start_units, args.max_units, probe_s)
        results = []
        for share in levels:
            n = max(1, round(capacity * share))
            for threads in [int(t) for t in args.cpu_threads.split(",")]:
                results.append((share, run_level(root, broker, artifacts, n, seconds, threads)))
                print(f"done {share:.0%} of capacity ({n} units, cpu_threads {threads})", file=sys.stderr, flush=True)

    inflight = args.broker_inflight if args.broker_inflight is not None else "20 (default)"
    print(
        f"\nplantwatch latency benchmark: {machine()}, load average {os.getloadavg()[0]:.1f} at the end; "
        f"lstm_ae + lstm per unit, window {WINDOW}, 1 Hz, QoS 1; service = `plantwatch run` subprocess; "
        f"mosquitto max_inflight_messages {inflight}\n"
    )
    header = (
        "| units | readings/s | lost | windows skipped | p50 publish-to-score ms | p99 ms | max ms | p99 < 250 ms "
        "| alerts fired (faulty units) | p50 publish-to-alert ms | p99 ms | publisher burst ms (mean) "
        "| p50 receive-to-score ms (service histogram) | p99 ms | service CPU cores | RSS MiB |"
    )
    rule = "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"

    def row(r: dict[str, Any], label: str = "") -> str:
        return (
            f"| {label}{r['units']:,} | {r['units']:,} | {r['lost']:,.0f} | {r['skipped']:,.0f} | {fmt_ms(r['p50'])} "
            f"| {fmt_ms(r['p99'])} | {fmt_ms(r['max'])} | {'yes' if r['p99'] < 0.25 else 'no'} "
            f"| {r['alerts']} ({r['faulty']}) | {fmt_ms(r['a50'])} | {fmt_ms(r['a99'])} | {r['burst_ms']:,.0f} "
            f"| {fmt_ms(r['r50'])} | {fmt_ms(r['r99'])} | {r['cpu']:.2f} | {r['rss']:.0f} |"
        )

    if probes:
        print(f"Capacity search ({probe_s:g} s per probe; sustained = nothing lost or skipped, p99 < 1 s):\n")
        print(header)
        print(rule)
        for r in probes:
            print(row(r, "ok " if sustained(r) else "missed "))
        print()
    print(f"Capacity: {capacity:,} units at 1 Hz{' (given)' if args.capacity else ''}. Load levels, {seconds:g} s:\n")
    print("| load | scheduler.cpu_threads " + header)
    print("|---|---:" + rule)
    for share, r in results:
        threads = "0 (torch default)" if r["cpu_threads"] == 0 else str(r["cpu_threads"])
        print(f"| {share:.0%} | {threads} " + row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
