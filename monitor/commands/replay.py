"""`plantwatch replay FILE.csv --broker HOST:PORT --unit U --speed X`: publish a recorded CSV over MQTT, in order.

Any CSV with a time column works (monitor.wire.csvfile, the reader every command shares): this project's
(``timestamp`` epoch seconds, optional ``unit``) or SKAB's (``;``-separated, ``datetime`` ISO text, read as UTC).
SKAB's ``anomaly`` and ``changepoint`` columns are labels and are not published unless named in ``--sensors``.
A cell that is not a number is not published (the sensor is missing for that row).
Exit codes: 0 ok, 1 broker or publish failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

from monitor.commands.simulate import add_progress_argument, follow, stop_on_signal
from monitor.wire.csvfile import TIME_COLUMNS, CsvError, read_table
from simulators.broker import add_broker_arguments, broker_options

HELP = "Replay a CSV file (any file with a time column, e.g. SKAB) over MQTT, in order, at a chosen speed."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", help=f"CSV with a time column ({', '.join(TIME_COLUMNS)}; ',' or ';' separated), optionally unit"
    )
    parser.add_argument(
        "--unit", help="unit name to publish as (required when the file has no unit column; else selects one unit)"
    )
    parser.add_argument("--sensors", help="comma-separated columns to publish (default: all numeric, non-label)")
    parser.add_argument("--speed", type=float, default=1.0, help="recorded seconds per wall second (0 = max)")
    parser.add_argument(
        "--retime", action="store_true", help="shift timestamps so the first row is stamped 'now' (keeps spacing)"
    )
    add_broker_arguments(parser, required=True)
    add_progress_argument(parser)


def _fail(message: str, code: int) -> int:
    print(f"plantwatch replay: error: {message}", file=sys.stderr)
    return code


def main(args: argparse.Namespace) -> int:
    from simulators.live import LivePublisher
    from simulators.replay import table_rows

    try:
        if args.speed < 0:
            raise ValueError(f"--speed must be >= 0, got {args.speed}")
        options = broker_options(args)
        table = read_table(args.file)
        if table.timestamps.shape[0] == 0:
            raise ValueError(f"{args.file}: no data rows")
        sensors = [s.strip() for s in args.sensors.split(",")] if args.sensors else None
        offset = time.time() - float(table.timestamps[0]) if args.retime else 0.0
        rows = table_rows(table, args.unit, sensors, offset)
        first = next(rows, None)  # surfaces bad --unit/--sensors before connecting
    except (CsvError, ValueError) as exc:
        return _fail(str(exc), 2)
    if first is None:
        return _fail(f"{args.file}: no rows for unit {args.unit!r}", 2)

    publisher = LivePublisher(
        itertools.chain([first], rows), options=options, speed=args.speed, qos=args.qos, payload=args.payload
    )
    stop_on_signal(publisher.stop)
    print(f"replaying {args.file} to {options.host}:{options.port} at {args.speed:g}x; Ctrl-C stops", flush=True)
    publisher.start()
    follow(publisher, args.progress_every)
    print(f"replayed {publisher.published} messages from {args.file}, {publisher.acked} acknowledged")
    if publisher.error is not None:
        return _fail(publisher.error, 1)
    return 0
