"""Service benchmark: units sustained at 1 Hz with scoring, publish-to-score latency, RSS, and the ingest ceiling.

    .venv/bin/python benchmarks/pipeline.py                       # units 500,1000,2000,3000; stops at the first miss
    .venv/bin/python benchmarks/pipeline.py --units 1000 2000 --measure-s 30
    .venv/bin/python benchmarks/pipeline.py --skip-sustain        # only the ingest ceiling
    .venv/bin/python benchmarks/pipeline.py --artifacts DIR       # reuse trained artifacts (DIR/lstm_ae, DIR/lstm)

Sustain (per unit count N): a private mosquitto; `plantwatch run` as a subprocess with the default detector
(lstm_ae, TrainConfig defaults, window 50) and an LSTM forecaster (window 50) on every unit; the simulator's
LivePublisher publishes 8-sensor `readings` messages for N reactors at 1 Hz (QoS 1), event time = the wall time
the row is due. After the window warm-up, the service's own histograms give publish-to-score (wall clock at
scoring minus the row's event time, which includes the publisher's lag within each 1 s burst) and
receive-to-score; /proc gives RSS and CPU. N is sustained when every published reading was received (zero
lost), no window was skipped, and p99 publish-to-score < 250 ms.

Ingest ceiling: the broker holds K queued `readings` messages for a persistent session; the time to drain them
is measured for a bare paho subscriber that parses each payload with json.loads, and for the service's ingest
path with scoring off (MqttLink -> IngestStage -> Inbox -> BufferStage thread -> RingBuffers, the classes the
service runs; the windows that become due are dropped), alternately, in the same run. Both wall-clock rate and
CPU time per message of the benchmark process are reported: the CPU figure is much less disturbed by other
load on the machine. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry

from monitor.messages import SKIP_REASONS
from simulators import LivePublisher, parse_scenario, simulate
from simulators.reactor import REACTOR_SENSORS

WARMUP_S = 60  # window 50 rows + the forecaster's first residual + margin
LATENCY_TARGET_S = 0.25


# -- infrastructure ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        # The ceiling test preloads a queue of K messages for an offline persistent session.
        "max_queued_messages 1000000",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def train_artifacts(out: Path) -> dict[str, Path]:
    import torch

    from models.train import TrainConfig, train_model

    torch.set_num_threads(2)
    result = simulate(parse_scenario({"units": 1, "seed": 1}), 4 * 3600, seed=1)
    data = result.data[0]
    paths = {}
    for kind in ("lstm_ae", "lstm"):
        began = time.perf_counter()
        paths[kind] = train_model(
            data, result.sensors, out / kind, TrainConfig(kind=kind, epochs=3, progress=False, device="cpu")
        )
        print(f"trained {kind} in {time.perf_counter() - began:.1f} s -> {paths[kind]}", file=sys.stderr)
    return paths


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(port: int) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            out[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return out


def total(samples: dict[tuple[str, str], float], name: str, label_filter: str = "") -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and label_filter in labels)


def histogram(samples: dict[tuple[str, str], float], name: str) -> list[tuple[float, float]]:
    """[(upper bound, cumulative count)] of an unlabelled histogram."""
    buckets = []
    for (n, labels), v in samples.items():
        if n == name + "_bucket":
            le = re.search(r'le="([^"]+)"', labels)
            if le:
                buckets.append((math.inf if le.group(1) == "+Inf" else float(le.group(1)), v))
    return sorted(buckets)


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile over the increase between two scrapes (linear within the bucket)."""
    deltas = [(b, a_count - b_count) for (b, b_count), (_, a_count) in zip(before, after, strict=True)]
    count = deltas[-1][1] if deltas else 0
    if count <= 0:
        return math.nan
    rank = q * count
    prev_bound, prev_count = 0.0, 0.0
    for bound, cumulative in deltas:
        if cumulative >= rank:
            if math.isinf(bound):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / max(cumulative - prev_count, 1e-9)
        prev_bound, prev_count = bound, cumulative
    return math.nan


def proc_stats(pid: int) -> tuple[float, float, float]:
    """(RSS MB, peak RSS MB, CPU seconds) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = float(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    hwm = float(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, hwm, cpu


# -- sustain ----------------------------------------------------------------------------------------------------
def unit_names(n: int) -> list[str]:
    return [f"bench-{i:05d}" for i in range(n)]


def sustain(
    n: int,
    port: int,
    artifacts: dict[str, Path],
    workdir: Path,
    measure_s: int,
    outputs: bool,
    torch_threads: int,
    arrival: str,
) -> dict[str, Any]:
    names = unit_names(n)
    metrics_port = free_port()
    config = {
        "units": [
            {
                "name": name,
                "sensors": list(REACTOR_SENSORS),
                "detector": {"name": "lstm_ae", "artifact": str(artifacts["lstm_ae"])},
                "forecaster": {"name": "lstm", "artifact": str(artifacts["lstm"])},
            }
            for name in names
        ],
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"bench-svc-{uuid.uuid4().hex[:6]}"},
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "scheduler": {"device": "auto"},
        "outputs": {"publish_scores": outputs, "publish_forecasts": outputs},
    }
    config_path = workdir / f"bench-{n}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / f"bench-{n}.log"
    with log_path.open("wb") as log:
        env = dict(os.environ)
        if torch_threads > 0:
            env["OMP_NUM_THREADS"] = str(torch_threads)  # torch's intra-op threads in the service process
        service = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if service.poll() is not None:
                raise RuntimeError(f"service exited {service.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("service not ready after 120 s")
            time.sleep(0.2)
        rss_idle, _, _ = proc_stats(service.pid)

        duration = WARMUP_S + measure_s + 2
        result = simulate(parse_scenario({"units": {"names": names}, "seed": 2}), duration, seed=2)
        t_start = math.ceil(time.time()) + 2.0
        result = replace(result, timestamps=result.timestamps - result.timestamps[0] + t_start)
        publisher = LivePublisher(
            result, "127.0.0.1", port, speed=1.0, qos=1, max_pending=max(1000, 2 * n), stagger=arrival == "spread"
        )
        # Start on the dot: the publisher maps its start to the first row's event time, so an early start would
        # send every row early and understate publish-to-score by as much.
        time.sleep(max(0.0, t_start - time.time()))
        publisher.start()

        time.sleep(max(0.0, t_start + WARMUP_S - time.time()))
        a = scrape(metrics_port)
        _, _, cpu_a = proc_stats(service.pid)
        time.sleep(max(0.0, t_start + WARMUP_S + measure_s - time.time()))
        b = scrape(metrics_port)
        rss_b, hwm_b, cpu_b = proc_stats(service.pid)
        publisher.wait(60)
        # Let the service finish what is queued, then read the final counters.
        time.sleep(3)
        c = scrape(metrics_port)
        rss_c, hwm_c, _ = proc_stats(service.pid)
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            code = service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
            code = -9

    rows = len(result.timestamps)
    received = total(c, "plantwatch_readings_received_total")
    rejected = total(c, "plantwatch_readings_rejected_total")
    dropped = total(c, "plantwatch_queue_dropped_total")
    skipped = {reason: total(c, "plantwatch_windows_skipped_total", f'reason="{reason}"') for reason in SKIP_REASONS}
    scored = total(c, "plantwatch_windows_scored_total", 'detector="reconstruction"')
    expected_scored = n * (rows - 49)
    p2s_a, p2s_b = (
        histogram(a, "plantwatch_publish_to_score_seconds"),
        histogram(b, "plantwatch_publish_to_score_seconds"),
    )
    r2s_a, r2s_b = (
        histogram(a, "plantwatch_receive_to_score_seconds"),
        histogram(b, "plantwatch_receive_to_score_seconds"),
    )
    infer = {}
    for model in ("lstm_ae", "lstm"):
        label = f'model="{model}"'
        calls = total(b, "plantwatch_inference_seconds_count", label) - total(
            a, "plantwatch_inference_seconds_count", label
        )
        secs = total(b, "plantwatch_inference_seconds_sum", label) - total(a, "plantwatch_inference_seconds_sum", label)
        infer[model] = (calls, secs)
    batches = total(b, "plantwatch_batch_size_windows_count") - total(a, "plantwatch_batch_size_windows_count")
    windows = total(b, "plantwatch_batch_size_windows_sum") - total(a, "plantwatch_batch_size_windows_sum")
    p99 = quantile(p2s_a, p2s_b, 0.99)
    lost = publisher.published - received
    sustained = (
        lost == 0
        and rejected == 0
        and dropped == 0
        and sum(skipped.values()) == 0
        and scored == expected_scored
        and p99 < LATENCY_TARGET_S
        and publisher.error is None
    )
    return {
        "units": n,
        "arrival": arrival,
        "published": publisher.published,
        "acked": publisher.acked,
        "publisher_error": publisher.error,
        "received": received,
        "lost": lost,
        "rejected": rejected,
        "dropped": dropped,
        "skipped": skipped,
        "scored": scored,
        "expected_scored": expected_scored,
        "p50_publish_to_score_s": quantile(p2s_a, p2s_b, 0.5),
        "p99_publish_to_score_s": p99,
        "p99_receive_to_score_s": quantile(r2s_a, r2s_b, 0.99),
        "infer": infer,
        "mean_batch": windows / batches if batches else math.nan,
        "full_gc_collections": total(b, "python_gc_collections_total", 'generation="2"')
        - total(a, "python_gc_collections_total", 'generation="2"'),
        "cpu_cores": (cpu_b - cpu_a) / measure_s,
        "rss_idle_mb": rss_idle,
        "rss_mb": rss_b,
        "rss_end_mb": rss_c,
        "peak_rss_mb": max(hwm_b, hwm_c),
        "exit_code": code,
        "sustained": sustained,
    }


# -- ingest ceiling ---------------------------------------------------------------------------------------------
def preload(port: int, units: int, rows: int) -> int:
    result = simulate(parse_scenario({"units": {"names": unit_names(units)}, "seed": 3}), rows, seed=3)
    publisher = LivePublisher(result, "127.0.0.1", port, speed=0.0, qos=1, max_pending=2000)
    publisher.start()
    if not publisher.wait(600) or publisher.error:
        raise RuntimeError(f"preload failed: {publisher.error}")
    return publisher.published


def bare_session(port: int, client_id: str, on_message: Any | None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("plant/+/readings", qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    if on_message is not None:
        client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    if not subscribed.wait(30):
        raise RuntimeError("bare subscriber could not subscribe")
    return client


def drain_bare(port: int, units: int, rows: int) -> tuple[int, float, float]:
    client_id = f"bare-{uuid.uuid4().hex[:6]}"
    client = bare_session(port, client_id, None)
    client.disconnect()
    client.loop_stop()
    k = preload(port, units, rows)
    done = threading.Event()
    count = [0]

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        json.loads(msg.payload)
        count[0] += 1
        if count[0] >= k:
            done.set()

    began, cpu = time.perf_counter(), time.process_time()
    client = bare_session(port, client_id, on_message)
    if not done.wait(600):
        raise RuntimeError(f"bare subscriber got {count[0]} of {k}")
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    client.disconnect()
    client.loop_stop()
    return k, elapsed, cpu


def drain_service(port: int, units: int, rows: int) -> tuple[int, float, float]:
    from monitor.buffers import RingBuffers, UnitSpec
    from monitor.config import parse_config
    from monitor.ingest import Parser
    from monitor.messages import Reading
    from monitor.metrics import Metrics
    from monitor.mqtt import MqttLink
    from monitor.scheduler import JobQueue
    from monitor.stages import BufferStage, Inbox, IngestStage

    names = unit_names(units)
    cfg = parse_config(
        {
            "units": [
                {"name": n, "sensors": list(REACTOR_SENSORS), "detector": {"name": "d", "artifact": "/nonexistent"}}
                for n in names
            ],
            "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"ingest-{uuid.uuid4().hex[:6]}"},
        }
    )
    processed = [0]

    class Discard(JobQueue):
        """Scoring off: windows that become due are dropped (no scheduler runs)."""

        def put(self, job: Any) -> None:
            pass

    class Counting(BufferStage):
        def handle(self, reading: Reading) -> None:
            super().handle(reading)
            processed[0] += 1

    def build() -> tuple[MqttLink, threading.Event, threading.Thread]:
        metrics = Metrics(CollectorRegistry(), {n: tuple(REACTOR_SENSORS) for n in names}, models={})
        readings = Inbox(cfg.limits.ingest_queue)
        specs = {n: UnitSpec(sensors=tuple(REACTOR_SENSORS), window_rows=50) for n in names}
        stage = Counting(RingBuffers(specs), readings, Discard(1), metrics)
        ingest = IngestStage(Parser.from_config(cfg), readings, metrics)
        link = MqttLink(cfg.mqtt, ["plant/+/readings"], ingest.handle, metrics)
        stop = threading.Event()
        thread = threading.Thread(target=stage.run, args=(stop,), name="buffers", daemon=True)
        thread.start()
        return link, stop, thread

    link, stop, thread = build()
    link.start()
    if not link.subscribed.wait(30):
        raise RuntimeError("service link did not connect")
    time.sleep(0.5)  # the subscription is made in on_connect
    link.stop(5)
    stop.set()
    thread.join(5)
    k = preload(port, units, rows)
    processed[0] = 0
    link, stop, thread = build()
    began, cpu = time.perf_counter(), time.process_time()
    link.start()
    deadline = time.monotonic() + 600
    while processed[0] < k:
        if time.monotonic() > deadline:
            raise RuntimeError(f"service ingest processed {processed[0]} of {k}")
        time.sleep(0.005)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    link.stop(5)
    stop.set()
    thread.join(5)
    return k, elapsed, cpu


def ceiling(port: int, units: int, rows: int, repeats: int) -> list[str]:
    """Wall-clock drain rate, and CPU time per message of this process (less sensitive to other load)."""
    rates: dict[str, list[float]] = {"bare": [], "service": []}
    cpu_us: dict[str, list[float]] = {"bare": [], "service": []}
    k = 0
    for i in range(repeats):
        order = (drain_bare, drain_service) if i % 2 == 0 else (drain_service, drain_bare)
        for fn in order:
            k, elapsed, cpu = fn(port, units, rows)
            key = "bare" if fn is drain_bare else "service"
            rates[key].append(k / elapsed)
            cpu_us[key].append(1e6 * cpu / k)
    names = {"bare": "bare paho + json.loads", "service": "service ingest, scoring off"}
    lines = [
        f"Queued messages per run: {k:,} ({units} units x {rows} rows, 8-sensor `readings`, QoS 1); "
        f"{repeats} runs each, alternating order.",
        "",
        "| consumer | runs (msg/s) | best msg/s | CPU us/msg (runs) | best CPU us/msg |",
        "|---|---|---|---|---|",
    ]
    for key in ("bare", "service"):
        lines.append(
            f"| {names[key]} | {', '.join(f'{r:,.0f}' for r in rates[key])} | {max(rates[key]):,.0f} | "
            f"{', '.join(f'{c:.1f}' for c in cpu_us[key])} | {min(cpu_us[key]):.1f} |"
        )
    lines += [
        "",
        f"Ratio service / bare: {max(rates['service']) / max(rates['bare']):.2f} by best wall-clock rate, "
        f"{min(cpu_us['bare']) / min(cpu_us['service']):.2f} by CPU per message (target >= 0.7)",
    ]
    return lines


# -- main -------------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[500, 1000, 2000, 3000])
    parser.add_argument("--measure-s", type=int, default=30)
    parser.add_argument(
        "--artifacts", type=Path, help="directory with lstm_ae/ and lstm/ artifacts (trained if absent)"
    )
    parser.add_argument("--outputs", action="store_true", help="also publish scores and forecasts on MQTT")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="OMP_NUM_THREADS for the service (0: torch's default)"
    )
    parser.add_argument("--skip-sustain", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--ceiling-units", type=int, default=1000)
    parser.add_argument("--ceiling-rows", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep-going", action="store_true", help="run every unit count even after a miss")
    parser.add_argument(
        "--arrival",
        nargs="+",
        choices=("spread", "burst"),
        default=["spread", "burst"],
        help="spread: each unit at its own instant in the period (independent gateways; LivePublisher stagger); "
        "burst: every unit's row sent at the start of the second",
    )
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average at start {os.getloadavg()[0]:.2f}, "
        f"torch threads in the service: {args.torch_threads or 'default'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker, port = start_mosquitto(workdir)
        try:
            if not args.skip_sustain:
                artifacts_dir = args.artifacts or workdir / "artifacts"
                if (artifacts_dir / "lstm_ae" / "manifest.json").is_file():
                    artifacts = {k: artifacts_dir / k for k in ("lstm_ae", "lstm")}
                else:
                    artifacts = train_artifacts(artifacts_dir)
                print("\n## Sustained units at 1 Hz (lstm_ae detector + lstm forecaster on every row)\n")
                print(
                    "| arrival | units | published | lost | skipped | scored / expected | "
                    "p50 / p99 publish->score ms | p99 receive->score ms | mean batch | infer ms per call (ae, lstm) | "
                    "service CPU cores | "
                    "RSS MB (idle / loaded / peak) | sustained |"
                )
                print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
                results = []
                for arrival, n in [(a, n) for a in args.arrival for n in args.units]:
                    if any(r["arrival"] == arrival and not r["sustained"] for r in results) and not args.keep_going:
                        continue
                    r = sustain(n, port, artifacts, workdir, args.measure_s, args.outputs, args.torch_threads, arrival)
                    results.append(r)
                    infer = ", ".join(
                        f"{1000 * secs / calls:.0f}" if calls else "-" for calls, secs in r["infer"].values()
                    )
                    print(
                        f"| {arrival} | {n} | {r['published']} | {r['lost']:.0f} | {sum(r['skipped'].values()):.0f} | "
                        f"{r['scored']:.0f} / {r['expected_scored']} | "
                        f"{1000 * r['p50_publish_to_score_s']:.0f} / {1000 * r['p99_publish_to_score_s']:.0f} | "
                        f"{1000 * r['p99_receive_to_score_s']:.0f} | {r['mean_batch']:.0f} | {infer} | "
                        f"{r['cpu_cores']:.2f} | {r['rss_idle_mb']:.0f} / {r['rss_mb']:.0f} / {r['peak_rss_mb']:.0f} | "
                        f"{'yes' if r['sustained'] else 'no'} |",
                        flush=True,
                    )
                    print(json.dumps(r, default=str), file=sys.stderr, flush=True)
                for arrival in args.arrival:
                    ok = [r["units"] for r in results if r["sustained"] and r["arrival"] == arrival]
                    print(f"\nLargest unit count sustained ({arrival}): {max(ok) if ok else 'none of those tried'}")
            if not args.skip_ceiling:
                print("\n## Ingest ceiling, scoring off\n")
                print("\n".join(ceiling(port, args.ceiling_units, args.ceiling_rows, args.repeats)))
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
