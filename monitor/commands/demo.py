"""`plantwatch demo`: an embedded broker, simulated reactors with a scripted fault, small trained models, the
service and a live view; Ctrl-C (or --duration) stops everything and writes report.png (monitor.demo).

Exit codes: 0 ok, 1 the simulator failed or the service did not stop cleanly, 2 bad options or the demo could
not start, 130 interrupted while training.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

HELP = "Run the newcomer's demo: broker, simulator with a fault, small models, the service, a live view, a report."


def _duration(text: str) -> float:
    """Seconds from ``90``, ``4m``, ``1h30m`` (monitor.wire.durations, the one duration rule)."""
    from monitor.wire.durations import parse_duration

    try:
        return parse_duration(text, "duration")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir",
        default="demo-run",
        help="the models' cache; each run's records, config and report go to a new run-<UTC stamp> directory in it",
    )
    parser.add_argument(
        "--broker", metavar="HOST:PORT", help="use this MQTT broker (3.1.1) instead of the embedded one"
    )
    parser.add_argument("--broker-port", type=int, default=1883, help="embedded broker port (taken: any free one)")
    parser.add_argument("--metrics-port", type=int, default=9108, help="service metrics port (taken: any free one)")
    parser.add_argument(
        "--duration", type=_duration, help="stop by itself after this much wall time of streaming (240, 4m, 1h30m)"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    parser.add_argument("--fault-at", type=_duration, default=60.0, help="simulated time to the fault (default 60s)")
    parser.add_argument("--fault-duration", type=_duration, default=120.0, help="simulated fault time (default 2m)")
    parser.add_argument("--train-hours", type=float, default=2.0, help="simulated hours of training data per reactor")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs per model (default 8)")
    parser.add_argument("--window", type=int, default=30, help="model window in rows (default 30)")
    parser.add_argument("--hidden-size", type=int, default=32, help="LSTM hidden size (default 32)")
    parser.add_argument("--no-forecaster", action="store_true", help="train and run the detector only")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="training and scoring")
    parser.add_argument("--retrain", action="store_true", help="train even if the work dir has matching models")
    parser.add_argument("--plain", action="store_true", help="print lines instead of redrawing the screen")


def main(args: argparse.Namespace) -> int:
    from monitor.demo import DemoError, DemoOptions, run_demo, summary
    from simulators.broker import parse_host_port

    try:
        broker = parse_host_port(args.broker) if args.broker else None
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("--duration must be > 0", file=sys.stderr)
        return 2
    opts = DemoOptions(
        workdir=Path(args.workdir),
        broker=broker,
        broker_port=args.broker_port,
        metrics_port=args.metrics_port,
        duration_s=args.duration,
        speed=args.speed,
        fault_at_s=args.fault_at,
        fault_duration_s=args.fault_duration,
        train_hours=args.train_hours,
        epochs=args.epochs,
        window=args.window,
        hidden_size=args.hidden_size,
        forecaster=not args.no_forecaster,
        device=args.device,
        retrain=args.retrain,
        interactive=sys.stdout.isatty() and not args.plain,
        progress=True,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGTERM stops the demo cleanly at any point; Ctrl-C interrupts training (KeyboardInterrupt) and, once the
    # service runs, is switched to a clean stop by the handler below.
    signal.signal(signal.SIGTERM, on_signal)
    previous = signal.getsignal(signal.SIGINT)
    try:
        result = run_demo(opts, stop, on_streaming=lambda: signal.signal(signal.SIGINT, on_signal))
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    print(summary(result))
    if result.publisher_error is not None:
        return 1
    return result.stop_code
