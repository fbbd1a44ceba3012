"""Simulator benchmark: offline unit-steps per second, and live publish rate achieved against the requested rate.

    .venv/bin/python -m benchmarks.simulator                 # starts a private mosquitto on a free port
    .venv/bin/python -m benchmarks.simulator --broker HOST:PORT
    .venv/bin/python -m benchmarks.simulator --skip-live

A unit-step is one unit advanced by one sample period (1 s) with all eight sensors measured.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from simulators import LivePublisher, parse_scenario, simulate
from simulators.broker import parse_host_port
from simulators.simulation import Simulation
from tests.kit import Broker

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
    with Broker(verbose_log=False) as broker:
        print("\n".join(live(broker.host, broker.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
