"""Shared pieces of the service benchmarks: a private broker, tiny artifacts, configs, the service, a publisher.

Import from a benchmark script (run as ``.venv/bin/python benchmarks/NAME.py``)::

    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]   # benchmarks/models.py
    sys.path.insert(0, str(REPO))                                                    # shadows `models`
    from benchmarks._harness import Broker, train_artifacts, service_config, InProcessService, ...

API:
    Broker(workdir, max_queued=0, extra_conf=()).start() / .stop()   # private mosquitto on a free loopback port
    train_artifacts(root, window=50) -> {"det": Path, "fc": Path}   # default-size lstm_ae + lstm, few epochs
    SENSORS                                            # the reactor's 8 sensor names (shared facts)
    unit_names(n) -> ["u0000", ...]
    config_dict(broker, artifacts, units, prefix, **sections) -> dict   # a valid `plantwatch run` config
    write_config(path, data)                           # YAML for a subprocess service
    InProcessService(cfg)                              # context manager: App started and ready, stopped on exit
    SpawnedService(config_path)                        # context manager: `plantwatch run` subprocess, .pid
    rss_mb(pid) -> float                               # resident set size from /proc (peak_rss_mb: VmHWM)
    scrape(metrics_port) -> {name: value summed over labels}; labelled(port, name) -> {labels: value}
    start_publisher(spec) -> Popen; publisher_result(proc) -> dict   # publisher in its own process
    percentile(values, q) -> float

The publisher runs in its own process (``python benchmarks/_harness.py publish SPEC_JSON``) so that it
competes with the service for a core, not for the GIL. Modes (``spec["mode"]``):
    "flood": ``rows`` rows of each of ``units`` units, as fast as the broker takes them (QoS 1: at most
             ``inflight`` unacknowledged; at most ``rate`` messages/s if given), event times ``t0 + row``;
             prints {"published", "seconds"}.
    "paced": the live case: every ``period_s`` (wall clock), one `readings` message per unit for the row with
             event time = that tick (a burst per tick, like a gateway polling its PLCs), ``seconds`` long,
             after ``backfill`` rows published as fast as possible with past event times (fills the windows).
             ``faults``: [[first_unit, n_units, start_s, end_s, sensor_index, offset]] adds ``offset`` to one
             sensor of those units for ticks in [start_s, end_s) after the paced start.
             Prints {"published", "ticks", "late_ticks", "t_start", "burst_mean_s", "burst_max_s"} (late_ticks:
             bursts that started > 50 ms after their tick, i.e. the publisher itself fell behind; burst: time to
             send one tick's messages).
Payload values: a smooth periodic signal per sensor (unit-specific phase) plus small noise, the same
family the artifacts are trained on (``normal_signal``), so fault-free units stay below threshold.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from simulators.reactor import REACTOR_SENSORS

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

SENSORS: tuple[str, ...] = REACTOR_SENSORS  # the simulator's eight signals, the shared wire fact
# Operating points and amplitudes per sensor (plausible reactor magnitudes; only the shape matters).
_LEVEL = np.array([350.0, 300.0, 0.5, 6.0, 295.0, 12.0, 2.0, 1.5])
_AMP = np.array([2.0, 1.5, 0.02, 0.3, 0.5, 0.6, 0.05, 0.05])
_NOISE = 0.05


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(condition: Any, timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


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


def machine() -> str:
    import platform

    return f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}"


# --- broker ------------------------------------------------------------------------------------------------


class Broker:
    """A private mosquitto on a free loopback port (like tests/conftest.py's, without pytest)."""

    def __init__(self, workdir: Path | None = None, max_queued: int = 0, extra_conf: Sequence[str] = ()) -> None:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.host = "127.0.0.1"
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="pw-bench-broker-") if workdir is None else None
        self.workdir = Path(self._tmp.name) if self._tmp is not None else Path(workdir)
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        if os.geteuid() == 0:
            lines.append("user root")
        # mosquitto's default keeps at most 1,000 QoS 1 messages queued per subscriber beyond its 20 in flight and
        # drops the rest: a flood of a few seconds would lose readings at the broker, before the service sees them.
        # 0 = unbounded here, so a loss the benchmarks count is the consumer's own.
        lines += [f"max_queued_messages {max_queued}", *extra_conf]
        lines += [f"log_dest file {self.workdir / 'mosquitto.log'}", "log_type error", "log_type warning"]
        (self.workdir / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.workdir / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def up() -> bool:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        if not wait_until(up, 10):
            raise RuntimeError(f"mosquitto did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    """The default detector (lstm_ae, default sizes) and an LSTM forecaster (seed sizes), trained briefly.

    A couple of epochs is enough for the benchmarks: speed and memory do not depend on how well a model is
    trained, and the alert latency run injects faults far above the calibrated threshold (POT at 1e-5).
    """
    import torch

    from models.train import TrainConfig, train_model

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    data = normal_signal(np.arange(rows, dtype=np.float64), np.zeros(1))[:, 0, :]
    out: dict[str, Path] = {}
    for name, kind in (("det", "lstm_ae"), ("fc", "lstm")):
        path = root / name
        if not (path / "manifest.json").exists():
            config = TrainConfig(
                kind=kind,
                name=name,
                window=window,
                epochs=epochs,
                patience=epochs,
                train_step=2,
                progress=False,
                device="cpu",
                calibration="pot",
                target_far=1e-5,
            )
            train_model(data, SENSORS, path, config)
        out[name] = path
    return out


# --- configuration and the service -------------------------------------------------------------------------


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


def write_config(path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class InProcessService:
    """``plantwatch run`` in this process (monitor.app.App): started, ready, stopped on exit."""

    def __init__(self, data: dict[str, Any]) -> None:
        from monitor.app import App
        from monitor.config import parse_config

        self.app = App(parse_config(data))

    def __enter__(self) -> InProcessService:
        self.app.start()
        if not self.app.link.subscribed.wait(15):
            raise RuntimeError("the service did not connect to the broker")
        return self

    def __exit__(self, *exc: object) -> None:
        self.app.stop(10.0)


class SpawnedService:
    """``plantwatch run --config FILE`` as a subprocess (its own RSS, its own GIL)."""

    def __init__(self, config_path: Path, log_path: Path | None = None) -> None:
        self.config_path = config_path
        self.log_path = log_path or config_path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> SpawnedService:
        exe = Path(sys.executable).with_name("plantwatch")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "monitor"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*cmd, "run", "--config", str(self.config_path)], stdout=self._log, stderr=self._log
        )
        return self

    def wait_ready(self, metrics_url: str | None = None, timeout_s: float = 60.0) -> None:
        """Wait for the log line that says MQTT connected (the service logs it once subscribed)."""

        def connected() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            return "MQTT connected" in self.log_path.read_text(errors="replace")

        if not wait_until(connected, timeout_s, 0.1):
            raise RuntimeError(f"service not connected after {timeout_s} s: {self.log_path.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def scrape(port: int, host: str = "127.0.0.1", timeout_s: float = 30.0) -> dict[str, float]:
    """The service's /metrics, each sample name summed over its labels (``name{a="x"}`` -> ``name``)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as resp:
        text = resp.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals


def labelled(port: int, name: str, host: str = "127.0.0.1") -> dict[str, float]:
    """Samples of one metric by their label text, e.g. ``{'reason="gap"': 3.0}``."""
    import urllib.request

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) + 1 :].rpartition("} ")
            out[labels] = float(value)
    return out


# --- the publisher process ---------------------------------------------------------------------------------


def start_publisher(spec: dict[str, Any]) -> subprocess.Popen[str]:
    """Start the publisher process for ``spec`` (see the module docstring); read its result with publisher_result."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "publish", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
    )


def publisher_result(proc: subprocess.Popen[str], timeout_s: float | None = None) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"publisher failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# A fixed template: the publisher must not be the bottleneck (json.dumps of a dict is about 3x slower).
_TEMPLATE = (
    '{{"ts": {:.3f}, "values": {{"reactor_temp_K": {:.4f}, "jacket_temp_K": {:.4f}, '
    '"concentration_kmol_m3": {:.5f}, "feed_flow_m3_h": {:.4f}, "feed_temp_K": {:.4f}, '
    '"coolant_flow_m3_h": {:.4f}, "pressure_bar": {:.5f}, "level_m": {:.5f}}}}}'
)


def _payload(ts: float, row: Sequence[float]) -> bytes:
    return _TEMPLATE.format(ts, *row).encode()


class _Client:
    """A paho publisher with a bounded number of unacknowledged QoS 1 messages."""

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


def _publish_main(spec: dict[str, Any]) -> dict[str, Any]:
    units = unit_names(int(spec["units"]))
    topic = str(spec.get("topic", "bench/plant/{unit}/readings"))
    topics = [topic.format(unit=u) for u in units]
    phases = unit_phases(len(units))
    client = _Client(
        spec.get("host", "127.0.0.1"), int(spec["port"]), int(spec.get("qos", 1)), int(spec.get("inflight", 200))
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
        for r in range(rows):
            for u, payload in enumerate(payloads[r]):
                client.publish(topics[u], payload)
                published += 1
                if rate > 0 and published % 50 == 0:
                    ahead = start + published / rate - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
        client.drain()
        result = {"published": published, "seconds": time.perf_counter() - start}
    elif spec["mode"] == "paced":
        period = float(spec.get("period_s", 1.0))
        seconds = float(spec["seconds"])
        backfill = int(spec.get("backfill", 0))
        faults = [tuple(f) for f in spec.get("faults", [])]
        # The first live tick (a whole second) continues the backfill without a gap; if the backfill takes longer
        # than estimated, the first ticks go out late (reported in late_ticks; the benchmarks skip a warm-up).
        t_start = math.ceil(time.time() + backfill * len(units) / float(spec.get("backfill_rate", 8000.0)) + 1.0)
        if backfill:
            past = t_start - period * np.arange(backfill, 0, -1)
            values = normal_signal(past, phases).tolist()
            for r in range(backfill):
                for u in range(len(units)):
                    client.publish(topics[u], _payload(float(past[r]), values[r][u]))
                    published += 1
        n_ticks = int(seconds / period)
        late = 0
        bursts: list[float] = []  # seconds to hand one tick's messages to paho (QoS 1: gated by the in-flight window)
        for tick in range(n_ticks):
            ts = t_start + tick * period
            rows = normal_signal(np.array([ts]), phases, seed=tick + 1)[0]  # [U, S]
            for first, count, f_start, f_end, sensor, offset in faults:
                if f_start <= tick * period < f_end:
                    rows[int(first) : int(first) + int(count), int(sensor)] += offset
            values_t = rows.tolist()
            payloads = [_payload(ts, values_t[u]) for u in range(len(units))]
            delay = ts - time.time()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                late += 1
            began = time.time()
            for u in range(len(units)):
                client.publish(topics[u], payloads[u])
                published += 1
            bursts.append(time.time() - began)
        client.drain()
        result = {
            "published": published,
            "ticks": n_ticks,
            "late_ticks": late,
            "t_start": t_start,
            "burst_mean_s": float(np.mean(bursts)) if bursts else 0.0,
            "burst_max_s": float(np.max(bursts)) if bursts else 0.0,
        }
    else:
        raise SystemExit(f"unknown publisher mode {spec['mode']!r}")
    client.close()
    return result


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "publish":
        raise SystemExit("usage: _harness.py publish SPEC_JSON")
    print(json.dumps(_publish_main(json.loads(sys.argv[2]))), flush=True)
