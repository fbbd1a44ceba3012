"""Simulator benchmark: offline unit-steps per second, and live publish rate achieved against the requested rate.

    .venv/bin/python benchmarks/simulator.py                 # starts a private mosquitto on a free port
    .venv/bin/python benchmarks/simulator.py --broker HOST:PORT
    .venv/bin/python benchmarks/simulator.py --skip-live

A unit-step is one unit advanced by one sample period (1 s) with all eight sensors measured.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators import LivePublisher, parse_scenario, simulate
from simulators.broker import parse_host_port
from simulators.simulation import Simulation

# (units, simulated seconds): sized so each case takes about a second or more on a small machine.
OFFLINE_CASES = ((1, 86400), (100, 3 * 3600), (1000, 1800))
# (units, speed, seconds of event time, qos): requested rate = units * speed messages per second; each paced
# case spans 3 s of wall time.
LIVE_CASES = (
    (10, 10.0, 31, 1),
    (10, 100.0, 301, 1),
    (10, 1000.0, 3001, 1),
    (10, 0.0, 3600, 1),
    (10, 0.0, 3600, 0),
)


def offline(repeats: int) -> list[str]:
    rows = [
        f"| units | simulated | integrator | wall s (best of {repeats}) | unit-steps/s |",
        "|---|---|---|---|---|",
    ]
    for units, seconds in OFFLINE_CASES:
        scenario = parse_scenario({"units": units, "seed": 1})
        best = float("inf")
        for _ in range(repeats):
            began = time.perf_counter()
            simulate(scenario, seconds, seed=1)
            best = min(best, time.perf_counter() - began)
        path = "scalar (floats)" if units <= Simulation(scenario).scalar_max_units else "vector (numpy)"
        rows.append(f"| {units} | {seconds / 3600:g} h | {path} | {best:.3f} | {units * seconds / best:,.0f} |")
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, "127.0.0.1", port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def live(host: str, port: int) -> list[str]:
    rows = [
        "| units | speed | qos | requested msg/s | messages | acked | wall s | achieved msg/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for units, speed, seconds, qos in LIVE_CASES:
        result = simulate(parse_scenario({"units": {"count": units, "prefix": "bench-"}}), seconds, seed=1)
        publisher = LivePublisher(result, host, port, speed=speed, qos=qos)
        began = time.perf_counter()
        publisher.start()
        publisher.wait(600)
        wall = time.perf_counter() - began
        requested = f"{units * speed:,.0f}" if speed > 0 else "max"
        note = "" if publisher.error is None else f" ({publisher.error})"
        rows.append(
            f"| {units} | {speed:g} | {qos} | {requested} | {publisher.published} | {publisher.acked} | "
            f"{wall:.2f} | {publisher.published / wall:,.0f}{note} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", help="HOST:PORT of a broker to use instead of a private mosquitto")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("\n## Offline simulation\n")
    print("\n".join(offline(args.repeats)))
    if args.skip_live:
        return 0
    print("\n## Live publishing (readings payload; wall time includes connect and waiting for every ack)\n")
    if args.broker:
        host, port = parse_host_port(args.broker)
        print("\n".join(live(host, port)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        proc, host, port = start_mosquitto(Path(tmp))
        try:
            print("\n".join(live(host, port)))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
