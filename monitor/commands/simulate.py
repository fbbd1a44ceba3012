"""`plantwatch simulate`: run a scenario offline to CSV, or live to an MQTT broker.

Offline:  plantwatch simulate --scenario S --out data.csv --labels labels.csv --duration 2d [--seed N] [--start T]
Live:     plantwatch simulate --scenario S --broker HOST:PORT --speed X [--payload readings|per-sensor] [--qos 1]
          [--stagger] [--progress-every 10s]

A live run says what it publishes where, then every ``--progress-every`` of wall time (10 s; 0: never) one line:
messages sent and acknowledged, and the event time reached (the readings' ``ts``, which runs ``--speed`` times
the wall clock) with how far it is from the wall clock.

``--scenario`` is a YAML file, the name of a file in config/scenarios (``demo``), or
``random:SEED[:UNITS]`` for a generated one. Exit codes: 0 ok, 1 broker or publish failure,
2 bad input (scenario, arguments, unwritable output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from monitor.wire.durations import format_duration
from monitor.wire.labels import LABEL_HEADER, write_labels
from monitor.wire.timestamps import parse_time
from simulators.broker import add_broker_arguments, broker_options
from simulators.csvio import write_csv
from simulators.scenario import Scenario, ScenarioError, load_scenario, parse_duration, random_scenario
from simulators.simulation import DEFAULT_START_EPOCH, Simulation, simulate

if TYPE_CHECKING:
    from simulators.live import LivePublisher

HELP = "Simulate reactor units with injected faults: offline to CSV (--out) or live to MQTT (--broker)."
# Named scenarios: the checkout's config/scenarios, else ./config/scenarios (an installed package has none of its
# own; the image copies them to /app/config/scenarios, its working directory).
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "config" / "scenarios"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", required=True, help="YAML file, a name in config/scenarios (e.g. demo), or random:SEED[:UNITS]"
    )
    parser.add_argument("--duration", help="simulated time, e.g. 3600, 90m, 2d (offline: required; live: endless)")
    parser.add_argument("--seed", type=int, help="random seed (default: the scenario's seed, else 0)")
    parser.add_argument(
        "--start",
        help="first timestamp, epoch seconds or ISO 8601 (offline default 2026-01-01T00:00:00Z; live default: "
        "chosen so the last reading is stamped 'now' at the end of the run, never in the future)",
    )
    offline = parser.add_argument_group("offline")
    offline.add_argument("--out", metavar="CSV", help="write measurements here (timestamp,unit,<sensors>)")
    offline.add_argument("--labels", metavar="CSV", help=f"write ground-truth labels here ({','.join(LABEL_HEADER)})")
    add_broker_arguments(parser, required=False)
    live = parser.add_argument_group("live")
    live.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (0 = max)")
    live.add_argument(
        "--stagger",
        action="store_true",
        help="spread the units over each sampling period (independent gateways) instead of sending all at once",
    )
    add_progress_argument(live)


def add_progress_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--progress-every",
        type=progress_interval,
        default=10.0,
        metavar="DURATION",
        help="a progress line every this much wall time (default 10s; 0: none)",
    )


def progress_interval(text: str) -> float:
    try:
        return parse_duration(text, "--progress-every")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def resolve_scenario(text: str) -> Scenario:
    """A scenario from a path, a name in config/scenarios (SCENARIO_DIR, then the working directory's), or
    ``random:SEED[:UNITS]``."""
    if text.startswith("random:"):
        parts = text.split(":")
        try:
            seed = int(parts[1])
            units = int(parts[2]) if len(parts) > 2 else 4
        except (IndexError, ValueError):
            raise ScenarioError(f"--scenario {text!r}: expected random:SEED or random:SEED:UNITS") from None
        return random_scenario(seed, n_units=units)
    path = Path(text)
    if not path.exists() and not path.suffix:
        for directory in (SCENARIO_DIR, Path("config") / "scenarios"):
            if (directory / f"{text}.yaml").exists():
                path = directory / f"{text}.yaml"
                break
    if not path.exists():
        raise ScenarioError(f"scenario file {text} not found")
    return load_scenario(path)


def _fail(message: str, code: int) -> int:
    print(f"plantwatch simulate: error: {message}", file=sys.stderr)
    return code


def main(args: argparse.Namespace) -> int:
    try:
        scenario = resolve_scenario(args.scenario)
        duration_s = parse_duration(args.duration, "--duration") if args.duration is not None else None
        if duration_s is not None and duration_s <= 0:
            raise ValueError("--duration must be positive")
        start = parse_time(args.start) if args.start is not None else None
    except (ScenarioError, ValueError) as exc:
        return _fail(str(exc), 2)
    if args.broker is not None:
        return _live(args, scenario, duration_s, start)
    if args.out is None and args.labels is None:
        return _fail("give --out CSV (offline) or --broker HOST:PORT (live)", 2)
    if duration_s is None:
        return _fail("offline runs need --duration (e.g. 1d)", 2)
    return _offline(args, scenario, duration_s, DEFAULT_START_EPOCH if start is None else start)


def _offline(args: argparse.Namespace, scenario: Scenario, duration_s: float, start: float) -> int:
    began = time.perf_counter()
    result = simulate(scenario, duration_s, seed=args.seed, start_epoch=start)
    try:
        if args.out is not None:
            rows = write_csv(result, args.out)
            print(
                f"wrote {rows} rows ({len(result.units)} units x {result.timestamps.shape[0]} samples, "
                f"{len(result.sensors)} sensors) to {args.out}"
            )
        if args.labels is not None:
            count = write_labels(result.labels, args.labels)
            print(f"wrote {count} fault labels to {args.labels}")
    except OSError as exc:
        return _fail(f"cannot write output: {exc.strerror or exc}: {exc.filename}", 2)
    log.info("simulated %s in %.2f s", scenario.name, time.perf_counter() - began)
    return 0


def _live(args: argparse.Namespace, scenario: Scenario, duration_s: float | None, start: float | None) -> int:
    from simulators.live import LivePublisher  # paho only when publishing

    try:
        options = broker_options(args)
        if args.speed < 0:
            raise ValueError(f"--speed must be >= 0, got {args.speed}")
    except ValueError as exc:
        return _fail(str(exc), 2)
    if start is None:
        start = default_live_start(time.time(), duration_s, args.speed)
        if duration_s is None and args.speed != 1.0:
            log.warning(
                "an endless run at speed %g drifts away from the wall clock; give --duration so event times "
                "end at 'now' (the service refuses readings stamped in the future)",
                args.speed,
            )
    sim = Simulation(scenario, seed=args.seed, start_epoch=start)
    publisher = LivePublisher(
        sim,
        options=options,
        speed=args.speed,
        qos=args.qos,
        payload=args.payload,
        duration_s=duration_s,
        stagger=args.stagger,
    )
    stop_on_signal(publisher.stop)
    print(
        f"publishing {scenario.name} ({len(scenario.units)} unit(s), {args.payload} payloads) to "
        f"{options.host}:{options.port} at {args.speed:g}x real time"
        + ("" if args.speed == 1 else " (event time runs that much faster than the wall clock)")
        + f", from event time {_utc(start)}"
        + (f" for {format_duration(duration_s)} of it" if duration_s is not None else ", endless")
        + "; Ctrl-C stops",
        flush=True,
    )
    publisher.start()
    follow(publisher, args.progress_every)
    print(
        f"published {publisher.published} messages, {publisher.acked} acknowledged, "
        f"{publisher.events_published} fault events"
    )
    if publisher.error is not None:
        return _fail(publisher.error, 1)
    return 0


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def progress_line(publisher: LivePublisher, wall_elapsed_s: float, now: float) -> str:
    """One progress line: wall time running, messages sent / acknowledged, the event time reached vs ``now``."""
    sent = f"[{format_duration(wall_elapsed_s)} wall] {publisher.published:,} messages sent, {publisher.acked:,} acked"
    ts = publisher.last_ts
    if ts != ts:
        return sent + "; nothing published yet"
    offset = now - ts
    if abs(offset) < 1.0:
        where = "at the wall clock"
    else:
        where = f"{format_duration(abs(offset))} {'behind' if offset > 0 else 'ahead of'} the wall clock"
    return f"{sent}; event time {_utc(ts)} ({where})"


def follow(publisher: LivePublisher, every_s: float, out: TextIO | None = None) -> None:
    """Wait for the publisher to finish, with a progress line every ``every_s`` of wall time (0: none)."""
    out = out if out is not None else sys.stdout
    started = time.monotonic()
    next_line = started + every_s
    while not publisher.wait(0.5 if every_s <= 0 else min(0.5, every_s)):
        now = time.monotonic()
        if every_s > 0 and now >= next_line:
            next_line += every_s * max(1, int((now - next_line) // every_s) + 1)
            print(progress_line(publisher, now - started, time.time()), file=out, flush=True)


def default_live_start(now: float, duration_s: float | None, speed: float) -> float:
    """A start time that keeps every event timestamp at or before the wall clock when it is sent.

    At speed 1 (or an endless run) the simulation starts now; faster runs start in the past by
    ``duration * (1 - 1/speed)``, so the last reading is stamped about when it is published.
    """
    if duration_s is None or speed == 1.0:
        return now
    if speed == 0:
        return now - duration_s
    return now - duration_s * max(0.0, 1.0 - 1.0 / speed)


def stop_on_signal(stop: object) -> None:
    """SIGINT / SIGTERM only ask the publisher to stop (it then drains and exits cleanly)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if callable(stop):
            stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
