"""What the service benchmarks share beyond the kit: configs, the publisher process, process-tree memory and CPU.

The broker, the spawned service, the /metrics reader and the training recipe are the test kit's (tests/kit/), the
same ones the tests use. Benchmarks run as modules from the repository root (``python -m benchmarks.NAME``)::

    from benchmarks._harness import config_dict, start_publisher, train_artifacts, tree_memory, ...
    from tests.kit import Broker, SpawnedService, scrape

API:
    train_artifacts(root, window=50) -> {"det": Path, "fc": Path}   # default-size lstm_ae + lstm, few epochs
    SENSORS                                            # the reactor's 8 sensor names (shared facts)
    unit_names(n) -> ["u0000", ...]
    config_dict(broker, artifacts, units, prefix, **sections) -> dict   # a valid `plantwatch run` config
    settled(metrics_port, published, timeout_s) -> Samples   # the scrape once every reading is taken, queues empty
    rss_mb(pid) -> float                               # resident set size from /proc (peak_rss_mb: VmHWM)
    process_tree(pid) -> [pid, child, ..., grandchild]  # the process and its descendants (the service's processes)
    tree_memory(pid) -> TreeMemory                     # per process PSS (smaps_rollup), RSS, libtorch mapped; sums
    tree_cpu_seconds(pid) -> float                     # CPU seconds of the tree's live processes
    start_publisher(spec) -> Popen; publisher_result(proc) -> dict   # publisher in its own process
    stop_publisher(proc) -> dict                       # paced: SIGTERM, it ends after the tick it is sending
    percentile(values, q) -> float

The publisher runs in its own process (``python -m benchmarks._harness publish SPEC_JSON``) so that it
competes with the service for a core, not for the GIL; it speaks MQTT 3.1.1 through benchmarks/_rawmqtt.py
(a few us of CPU per message, where paho's client spends about 250 us at QoS 1: it would measure itself).
Modes (``spec["mode"]``):
    "flood": ``rows`` rows of each of ``units`` units, as fast as the broker takes them (QoS 1: at most
             ``inflight`` (1,000) unacknowledged; at most ``rate`` messages/s if given), event times ``t0 + row``;
             prints {"published", "seconds"}.
    "paced": the live case: every ``period_s`` (wall clock) one `readings` message per unit, ``seconds`` long,
             after ``backfill`` rows published as fast as possible with past event times (fills the windows).
             ``arrival`` (arrival_offsets): "burst" (default) sends every unit's row at the tick, event time = the
             tick (a gateway polling its PLCs); "spread" sends unit i of N at tick + i/N of the period, event time =
             that instant (independent gateways, each on its own phase). ``t_start``: the first live tick (epoch
             s; default: estimated from ``backfill_rate``). ``faults``: [[first_unit, n_units, start_s, end_s,
             sensor_index, offset]] adds ``offset`` to one sensor of those units for ticks in [start_s, end_s)
             after the paced start. SIGTERM ends it after the tick being sent (``ticks``: those sent).
             Prints {"published", "ticks", "late_ticks", "t_start", "arrival", "backfill_s", "burst_mean_s",
             "burst_max_s", "send_lag_p99_s", "send_lag_max_s"} (late_ticks: ticks whose sending started > 50 ms
             after the tick, i.e. the publisher itself fell behind; burst: from the tick to its last message handed
             to paho; send lag: how late a message went out after its own due time).
Both modes publish a shard of the units when given ``first_unit`` and ``shard_units`` (several publisher processes
for more messages per second than one Python process sends); phases and arrival offsets stay the whole fleet's.
Payload values: a smooth periodic signal per sensor (unit-specific phase) plus small noise, the same
family the artifacts are trained on (``normal_signal``), so fault-free units stay below threshold.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks._rawmqtt import RawPublisher
from simulators.reactor import REACTOR_SENSORS
from tests.kit import SEED_SIZES, Broker, Samples, scrape, train_tiny, wait_until

REPO = Path(__file__).resolve().parents[1]

SENSORS: tuple[str, ...] = REACTOR_SENSORS  # the simulator's eight signals, the shared wire fact
# Operating points and amplitudes per sensor (plausible reactor magnitudes; only the shape matters).
_LEVEL = np.array([350.0, 300.0, 0.5, 6.0, 295.0, 12.0, 2.0, 1.5])
_AMP = np.array([2.0, 1.5, 0.02, 0.3, 0.5, 0.6, 0.05, 0.05])
_NOISE = 0.05


def percentile(values: Sequence[float] | npt.NDArray[np.float64], q: float) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, q)) if arr.size else math.nan


def _proc_status_mb(pid: int | None, key: str) -> float:
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {key} in /proc status")


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process (this one by default) in MiB, from /proc."""
    return _proc_status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident set size (VmHWM) in MiB."""
    return _proc_status_mb(pid, "VmHWM")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process so far (from /proc/PID/stat)."""
    with open(f"/proc/{pid or os.getpid()}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- a process and its descendants (the service may run as several processes) --------------------------------


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        # the command name (field 2) may hold spaces and parentheses: the fields after its last ")" are fixed
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _children_by_scan(pid: int) -> list[int]:
    """Children of ``pid`` from every process's ppid in /proc/*/stat (works on any kernel)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _parent_pid(int(entry)) == pid:
                    children.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # gone between the listing and the read
    return sorted(children)


def _children_listed(pid: int) -> list[int] | None:
    """Children of ``pid`` from /proc/PID/task/*/children; None where the kernel has no such file."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: set[int] = set()
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                children.update(int(c) for c in f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return None  # CONFIG_PROC_CHILDREN is off
        except OSError:
            continue
    return sorted(children)


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (children before grandchildren), alive at the time of the call."""
    tree: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop(0)
        if not os.path.exists(f"/proc/{current}"):
            continue
        tree.append(current)
        listed = _children_listed(current)
        todo.extend(listed if listed is not None else _children_by_scan(current))
    return tree


def pss_mb(pid: int) -> float:
    """Proportional set size in MiB (/proc/PID/smaps_rollup): pages shared with other processes count by share,
    so the PSS of a process tree adds up to what the tree costs the machine (RSS counts shared pages in each)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no Pss in /proc/{pid}/smaps_rollup")


def maps_libtorch(pid: int) -> bool:
    """Whether the process has libtorch (libtorch.so, libtorch_cpu.so, libtorch_cuda.so ...) mapped."""
    with open(f"/proc/{pid}/maps") as f:
        return any("/libtorch" in line for line in f)


def describe_process(pid: int) -> str:
    """A short name for a process of the service: its command line, with multiprocessing's helpers named."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    text = " ".join(argv)
    if "resource_tracker" in text:
        return "multiprocessing resource tracker"
    if "forkserver" in text:
        return "multiprocessing forkserver"
    if "spawn_main" in text or "--multiprocessing-fork" in text:
        return "multiprocessing spawn child"
    args = [Path(argv[0]).name, *argv[1:]] if argv else ["?"]
    if len(args) > 1 and args[0].startswith("python"):
        if args[1] == "-m":
            args = args[2:]  # "python -m monitor run --config x" -> "monitor run --config x"
        elif not args[1].startswith("-"):
            args = [Path(args[1]).name, *args[2:]]  # "python .venv/bin/plantwatch run" -> "plantwatch run"
    return " ".join(a if len(a) <= 24 else "..." + a[-21:] for a in args[:3])


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    ppid: int
    name: str
    pss_mb: float
    rss_mb: float
    peak_rss_mb: float  # VmHWM
    libtorch: bool


@dataclass(frozen=True)
class TreeMemory:
    """Memory of a process tree at one moment: per process, and summed."""

    processes: tuple[ProcessMemory, ...]

    @property
    def pss_mb(self) -> float:
        return sum(p.pss_mb for p in self.processes)

    @property
    def rss_mb(self) -> float:
        return sum(p.rss_mb for p in self.processes)

    @property
    def libtorch(self) -> bool:
        return any(p.libtorch for p in self.processes)

    def libtorch_pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.libtorch]

    def per_process(self) -> str:
        """One line: ``name pid: PSS / RSS MiB[, libtorch]`` per process, ``;``-separated."""
        return "; ".join(
            f"{p.name} ({p.pid}): {p.pss_mb:.0f} / {p.rss_mb:.0f}{', libtorch' if p.libtorch else ''}"
            for p in self.processes
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "pss_mb": self.pss_mb,
            "rss_mb": self.rss_mb,
            "libtorch": self.libtorch,
            "processes": [asdict(p) for p in self.processes],
        }


def tree_memory(pid: int) -> TreeMemory:
    """PSS, RSS, peak RSS and libtorch of ``pid`` and each of its descendants (one that ends meanwhile is left
    out)."""
    processes = []
    for p in process_tree(pid):
        try:
            processes.append(
                ProcessMemory(
                    pid=p,
                    ppid=_parent_pid(p),
                    name=describe_process(p),
                    pss_mb=pss_mb(p),
                    rss_mb=rss_mb(p),
                    peak_rss_mb=peak_rss_mb(p),
                    libtorch=maps_libtorch(p),
                )
            )
        except (OSError, RuntimeError):
            continue  # ended between the listing and the reads
    if not processes:
        raise RuntimeError(f"process {pid} is not running")
    return TreeMemory(tuple(processes))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of ``pid`` and its descendants alive now (one that ended took its count with it)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            total += cpu_seconds(p)
        except (OSError, IndexError):
            continue
    return total


def machine() -> str:
    import platform

    return f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}"


# --- data and artifacts ------------------------------------------------------------------------------------


def normal_signal(
    t: npt.NDArray[np.float64], phases: npt.NDArray[np.float64], seed: int = 0
) -> npt.NDArray[np.float64]:
    """Normal operation: [len(t), len(phases), 8] values at times ``t`` for units with the given phases."""
    rng = np.random.default_rng(seed)
    tt = t[:, None, None] + phases[None, :, None]  # [T, U, 1]
    sensor = np.arange(len(SENSORS))[None, None, :]
    base = np.sin(2 * np.pi * tt / 60.0 + 0.3 * sensor) + 0.5 * np.cos(2 * np.pi * tt / 23.0 - 0.2 * sensor)
    noise = _NOISE * rng.standard_normal(base.shape)
    return _LEVEL + _AMP * (base + noise)


def unit_names(n: int) -> list[str]:
    return [f"u{i:04d}" for i in range(n)]


def unit_phases(n: int) -> npt.NDArray[np.float64]:
    return (np.arange(n) * 7.31) % 60.0


def train_artifacts(root: Path, window: int = 50, epochs: int = 2, rows: int = 2000) -> dict[str, Path]:
    """The default detector (lstm_ae) and an LSTM forecaster at the seed's sizes, trained briefly (the kit's recipe);
    one already in ``root`` is reused.

    A couple of epochs is enough for the benchmarks: speed and memory do not depend on how well a model is
    trained, and the alert latency run injects faults far above the calibrated threshold (POT at 1e-5).
    """
    data = normal_signal(np.arange(rows, dtype=np.float64), np.zeros(1))[:, 0, :]
    recipe = {"window": window, "epochs": epochs, "patience": epochs, "train_step": 2, "target_far": 1e-5}
    out: dict[str, Path] = {}
    for name, kind in (("det", "lstm_ae"), ("fc", "lstm")):
        path = root / name
        if not (path / "manifest.json").exists():
            threads = os.cpu_count() or 1  # training is not what is measured: every core
            train_tiny(data, SENSORS, path, kind, name=name, threads=threads, **recipe, **SEED_SIZES)
        out[name] = path
    return out


# --- configuration ----------------------------------------------------------------------------------------------


def config_dict(
    broker: Broker,
    artifacts: dict[str, Path],
    units: Sequence[str],
    prefix: str = "bench",
    forecaster: bool = True,
    **sections: Any,
) -> dict[str, Any]:
    """A `plantwatch run` config for ``units`` on ``broker`` (topics under ``prefix``); sections update it."""
    unit_list = []
    for unit in units:
        u: dict[str, Any] = {
            "name": unit,
            "sensors": list(SENSORS),
            "period_s": 1.0,
            "max_lateness_s": 2.0,
            "detector": {"name": "det", "artifact": str(artifacts["det"])},
            "alerts": {"fire_hits": 3, "fire_window": 5, "resolve_hits": 5, "min_duration_s": 0},
        }
        if forecaster:
            u["forecaster"] = {"name": "fc", "artifact": str(artifacts["fc"])}
        unit_list.append(u)
    data: dict[str, Any] = {
        "units": unit_list,
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": f"pw-bench-{uuid.uuid4().hex[:8]}",
            "qos": 1,
            "topics": {"readings": f"{prefix}/plant/{{unit}}/readings", "sensor": None, "prefix": f"{prefix}/pw"},
        },
        "metrics": {"host": "127.0.0.1", "port": 0},
        "scheduler": {"device": "cpu"},
        "limits": {"max_units": max(5000, len(units))},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def settled(port: int, published: int, timeout_s: float) -> Samples:
    """The last scrape once the service has taken every published reading (received or dropped at its queue)
    and its queues are empty; a service that stops taking readings for 10 s counts as settled (the figures then
    show received < published)."""
    progress = [-1.0, time.monotonic()]  # readings taken at the last change, and when

    def done() -> bool:
        last = scrape(port)
        taken = last.total("plantwatch_readings_received_total") + last.total("plantwatch_queue_dropped_total")
        if taken != progress[0]:
            progress[:] = [taken, time.monotonic()]
        stalled = time.monotonic() - progress[1] > 10.0
        return (taken >= published or stalled) and last.value("plantwatch_queue_depth") == 0.0

    wait_until(done, timeout_s, 1.0)
    time.sleep(2.0)  # the scorer's last batch after the queues emptied
    return scrape(port)


# --- the publisher process ---------------------------------------------------------------------------------


def start_publisher(spec: dict[str, Any]) -> subprocess.Popen[str]:
    """Start the publisher process for ``spec`` (see the module docstring); read its result with publisher_result."""
    # As a module from the repository root, as every benchmark runs: `benchmarks._rawmqtt` imports from there.
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks._harness", "publish", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def stop_publisher(proc: subprocess.Popen[str], timeout_s: float | None = 60.0) -> dict[str, Any]:
    """Ask a paced publisher to stop after the tick it is sending (SIGTERM) and read its result."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return publisher_result(proc, timeout_s)


def publisher_result(proc: subprocess.Popen[str], timeout_s: float | None = None) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"publisher failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


_STOP = threading.Event()  # set by SIGTERM in the publisher process: paced mode ends after the current tick

# A fixed template: the publisher must not be the bottleneck (json.dumps of a dict is about 3x slower).
_TEMPLATE = (
    '{{"ts": {:.3f}, "values": {{"reactor_temp_K": {:.4f}, "jacket_temp_K": {:.4f}, '
    '"concentration_kmol_m3": {:.5f}, "feed_flow_m3_h": {:.4f}, "feed_temp_K": {:.4f}, '
    '"coolant_flow_m3_h": {:.4f}, "pressure_bar": {:.5f}, "level_m": {:.5f}}}}}'
)


def _payload(ts: float, row: Sequence[float]) -> bytes:
    return _TEMPLATE.format(ts, *row).encode()


class _Client:
    """A paho publisher with a bounded number of unacknowledged QoS 1 messages. The publisher process uses
    RawPublisher; this one is for faults.py, whose runs stop and kill the broker under it (paho reconnects)."""

    def __init__(self, host: str, port: int, qos: int, inflight: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.qos = qos
        self.inflight = inflight
        self._cond = threading.Condition()
        self._pending = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pw-bench-pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(host, port, keepalive=60)
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if self.qos > 0:
            with self._cond:
                self._pending -= 1
                self._cond.notify()

    def publish(self, topic: str, payload: bytes) -> None:
        if self.qos > 0:
            with self._cond:
                self._cond.wait_for(lambda: self._pending < self.inflight, 30)
                self._pending += 1
        self.client.publish(topic, payload, qos=self.qos)

    def drain(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        if self.qos > 0:
            with self._cond:
                self._cond.wait_for(lambda: self._pending <= 0, timeout_s)
        # QoS 0: wait until paho's socket buffer is written out
        while self.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def arrival_offsets(n_units: int, period_s: float, arrival: str) -> npt.NDArray[np.float64]:
    """Seconds after each tick at which each unit samples, stamps and sends its row.

    burst: all at the tick (one gateway polling every PLC at once). spread: unit i of n at ``i / n`` of the period
    (independent gateways, each on its own phase), so the messages of a tick are evenly spread over the period.
    """
    if arrival == "burst":
        return np.zeros(n_units, dtype=np.float64)
    if arrival == "spread":
        return np.asarray(period_s * np.arange(n_units) / max(n_units, 1), dtype=np.float64)
    raise ValueError(f"arrival must be 'burst' or 'spread', got {arrival!r}")


def _send_tick(
    client: RawPublisher, topics: list[bytes], due: npt.NDArray[np.float64], payload_of: Callable[[int], bytes]
) -> list[float]:
    """Publish unit u's ``payload_of(u)`` at wall time due[u] (ascending); returns how late each group went out."""
    lags: list[float] = []
    n = len(topics)
    j = 0
    while j < n:
        now = time.time()
        wait = float(due[j]) - now
        if wait > 0:
            # Sleep at least 1 ms: at thousands of units the next message is due within microseconds, and a group
            # of the few due by then costs less CPU than a wake-up per message.
            time.sleep(max(wait, 0.001))
            now = time.time()
        k = max(j + 1, int(np.searchsorted(due, now, side="right")))
        client.publish_many([(topics[u], payload_of(u)) for u in range(j, k)])
        lags.append(time.time() - float(due[j]))
        j = k
    return lags


def _publish_main(spec: dict[str, Any]) -> dict[str, Any]:
    all_units = unit_names(int(spec["units"]))
    # A shard of the units (several publisher processes for more messages per second than one Python process
    # sends); phases and arrival offsets stay those of the whole fleet.
    first = int(spec.get("first_unit", 0))
    count = int(spec.get("shard_units", len(all_units) - first))
    shard = slice(first, first + count)
    units = all_units[shard]
    topic = str(spec.get("topic", "bench/plant/{unit}/readings"))
    topics = [topic.format(unit=u).encode() for u in units]
    phases = unit_phases(len(all_units))[shard]
    client = RawPublisher(
        spec.get("host", "127.0.0.1"),
        int(spec["port"]),
        int(spec.get("qos", 1)),
        int(spec.get("inflight", 1000)),
        client_id=f"pw-bench-pub-{uuid.uuid4().hex[:8]}",
    )
    published = 0
    result: dict[str, Any] = {}
    if spec["mode"] == "flood":
        rows = int(spec["rows"])
        t0 = float(spec.get("t0", time.time() - rows - 10))
        values = normal_signal(np.arange(rows, dtype=np.float64), phases).tolist()  # [rows][U][S]
        payloads = [[_payload(t0 + r, values[r][u]) for u in range(len(units))] for r in range(rows)]
        rate = float(spec.get("rate", 0.0))  # messages/s; 0: as fast as the broker takes them
        start = time.perf_counter()
        group = 50 if rate > 0 else len(units)  # paced in groups of 50 messages
        for r in range(rows):
            for g in range(0, len(units), group):
                client.publish_many(list(zip(topics[g : g + group], payloads[r][g : g + group], strict=True)))
                published += len(payloads[r][g : g + group])
                if rate > 0:
                    ahead = start + published / rate - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
        client.drain()
        result = {"published": published, "seconds": time.perf_counter() - start}
    elif spec["mode"] == "paced":
        period = float(spec.get("period_s", 1.0))
        seconds = float(spec["seconds"])
        backfill = int(spec.get("backfill", 0))
        arrival = str(spec.get("arrival", "burst"))
        offsets = arrival_offsets(len(all_units), period, arrival)[shard]
        faults = [tuple(f) for f in spec.get("faults", [])]
        # The first live tick (a whole second) continues the backfill without a gap; if the backfill takes longer
        # than estimated, the first ticks go out late (reported in late_ticks; the benchmarks skip a warm-up).
        # A caller running several shards gives t_start, so that they share one clock.
        if "t_start" in spec:
            t_start = float(spec["t_start"])
        else:
            rate_guess = float(spec.get("backfill_rate", 8000.0))
            t_start = math.ceil(time.time() + backfill * len(all_units) / rate_guess + 1.0)
        began_backfill = time.time()
        if backfill:
            past = t_start - period * np.arange(backfill, 0, -1)
            values = normal_signal(past, phases).tolist()
            for r in range(backfill):
                if _STOP.is_set():
                    break
                row_payloads = [_payload(float(past[r] + offsets[u]), values[r][u]) for u in range(len(units))]
                client.publish_many(list(zip(topics, row_payloads, strict=True)))
                published += len(units)
        backfill_s = time.time() - began_backfill
        n_ticks = int(seconds / period)
        late = 0
        bursts: list[float] = []  # seconds from a tick to its last message handed to paho (QoS 1: in-flight gated)
        lags: list[float] = []  # seconds each group of messages went out after its due time
        sent_ticks = 0
        for tick in range(n_ticks):
            if _STOP.is_set():
                break  # SIGTERM (stop_publisher): whole ticks only, so every unit sent as many rows
            ts = t_start + tick * period
            rows = normal_signal(np.array([ts]), phases, seed=tick + 1)[0]  # [U, S]
            for f_first, f_count, f_start, f_end, sensor, offset in faults:
                if f_start <= tick * period < f_end:
                    lo, hi = max(int(f_first) - first, 0), max(int(f_first) + int(f_count) - first, 0)
                    rows[lo:hi, int(sensor)] += offset
            values_t = rows.tolist()
            due = ts + offsets
            if arrival == "burst":
                # built before the tick: the burst is then only the sending
                ready = [_payload(float(due[u]), values_t[u]) for u in range(len(units))]
                payload_of: Callable[[int], bytes] = ready.__getitem__
            else:
                # built as each group falls due: the whole tick's formatting would delay its first units
                def payload_of(u: int, due: npt.NDArray[np.float64] = due, values: list[Any] = values_t) -> bytes:
                    return _payload(float(due[u]), values[u])

            if ts - time.time() < -0.05:
                late += 1
            lags.extend(_send_tick(client, topics, due, payload_of))
            published += len(units)
            sent_ticks += 1
            bursts.append(time.time() - ts)
        client.drain()
        result = {
            "published": published,
            "ticks": sent_ticks,
            "late_ticks": late,
            "t_start": t_start,
            "arrival": arrival,
            "backfill_s": backfill_s,
            "burst_mean_s": float(np.mean(bursts)) if bursts else 0.0,
            "burst_max_s": float(np.max(bursts)) if bursts else 0.0,
            "send_lag_p99_s": percentile(lags, 99) if lags else 0.0,
            "send_lag_max_s": float(np.max(lags)) if lags else 0.0,
        }
    else:
        raise SystemExit(f"unknown publisher mode {spec['mode']!r}")
    client.close()
    return result


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "publish":
        raise SystemExit("usage: python -m benchmarks._harness publish SPEC_JSON")
    signal.signal(signal.SIGTERM, lambda signum, frame: _STOP.set())
    print(json.dumps(_publish_main(json.loads(sys.argv[2]))), flush=True)
