"""`plantwatch report --scores S --alerts A [--labels L] [--data CSV] --out report.png`: the pictures of a run.

Inputs are what `plantwatch backtest --out DIR` and `plantwatch demo` write (scores.csv, alerts.jsonl); the data
CSV (the backtest's --data, the demo's data.csv) adds the signals: a panel per sensor in its own units, or with
``--units z`` all sensors standardised on one axis. Exit 0 ok, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import sys

from monitor.wire.csvfile import TIME_COLUMNS
from monitor.wire.labels import LABEL_HEADER

HELP = "Draw a PNG report: per unit, the signals, scores against thresholds, alert and fault spans."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scores", required=True, help="scores.csv written by backtest or demo")
    parser.add_argument("--alerts", required=True, help="alerts.jsonl written by backtest or demo")
    parser.add_argument("--labels", help=f"ground-truth CSV: {','.join(LABEL_HEADER)} (hatched spans)")
    parser.add_argument(
        "--data",
        help=f"the data CSV that was scored, time column {' / '.join(TIME_COLUMNS)} (adds a panel of signals per unit)",
    )
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", help="heading of the picture (default: plantwatch report)")
    parser.add_argument(
        "--units",
        choices=("raw", "z"),
        default="raw",
        help="signals with --data: raw = a panel per sensor in the CSV's engineering units (default); "
        "z = every sensor standardised on one axis",
    )


def main(args: argparse.Namespace) -> int:
    from monitor.report import read_signals, render_report
    from monitor.result_files import read_alerts, read_scores
    from monitor.wire.labels import read_labels

    try:
        scores = read_scores(args.scores)
        events = read_alerts(args.alerts)
        labels = read_labels(args.labels) if args.labels else []
        units = sorted(set(scores) | {e.unit for e in events})
        signals = read_signals(args.data, units) if args.data else None
        out = render_report(
            scores, events, args.out, labels=labels, signals=signals, title=args.title, units=args.units
        )
    except (ValueError, OSError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    episodes = len({e.alert_id for e in events})
    print(f"wrote {out}: {len(units)} unit(s), {episodes} alert episode(s), {len(labels)} labelled fault(s)")
    return 0
