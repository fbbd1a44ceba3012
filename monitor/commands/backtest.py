"""`plantwatch backtest --config FILE --data CSV [--labels L] [--out DIR]`: the service's pipeline over a CSV.

Prints the throughput, the skipped windows and the alerts; with labels, event recall, false alarms per
unit-day, detection delay and point-wise figures (monitor.evaluation), for each detector that scored and for the
service as a whole ("any": every detector's alerts merged per unit). A unit's shadow candidate (UnitConfig.shadow)
scores beside its active models: its would-be events are printed apart (and written to shadow-alerts.jsonl), and
with labels its figures follow the active models'. Exit 0 ok, 2 bad config / data / artifact.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.wire.csvfile import TIME_COLUMNS
from monitor.wire.labels import LABEL_HEADER

if TYPE_CHECKING:
    from monitor.backtest import BacktestResult
    from monitor.messages import AlertEvent
    from monitor.wire.labels import Label

HELP = "Run the service's buffers, scoring and alerts over a CSV; with labels, print detection figures."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML configuration (units, models, alert policy)")
    parser.add_argument(
        "--data",
        required=True,
        help=f"CSV: a time column ({', '.join(TIME_COLUMNS)}: epoch seconds or ISO 8601) [, unit], one column per "
        "sensor (monitor/wire/csvfile.py)",
    )
    parser.add_argument("--labels", help=f"ground-truth CSV: {','.join(LABEL_HEADER)}")
    parser.add_argument("--out", help="directory for scores.csv and alerts.jsonl")
    parser.add_argument("--unit", help="unit of every row when the CSV has no unit column (default: the only unit)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's scheduler.device")
    parser.add_argument("--batch-size", type=int, default=1024, help="windows per scoring call (default 1024)")
    parser.add_argument(
        "--tolerance-s",
        type=float,
        default=60.0,
        help="an alert up to this long after a fault's end still counts for it (default 60)",
    )


def main(args: argparse.Namespace) -> int:
    from models.device import serving_device
    from monitor.backtest import run_backtest
    from monitor.commands import load_config_or_report
    from monitor.result_files import SHADOW_ALERTS_FILE
    from monitor.startup import StartupError, load_models, load_shadows
    from monitor.wire.csvfile import read_csv
    from monitor.wire.labels import read_labels

    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    if args.batch_size < 1:
        print("--batch-size must be >= 1", file=sys.stderr)
        return 2
    names = [u.name for u in cfg.units]
    default_unit = args.unit if args.unit is not None else (names[0] if len(names) == 1 else None)
    if default_unit is not None and default_unit not in names:
        print(f"--unit {default_unit!r} is not a configured unit ({', '.join(names)})", file=sys.stderr)
        return 2
    try:
        device = serving_device(args.device or cfg.scheduler.device)  # as the service: "cpu" needs no torch
    except ValueError as exc:
        print(f"backtest: {'--device' if args.device else 'scheduler.device'}: {exc}", file=sys.stderr)
        return 2
    try:
        models = load_models(cfg, device)  # the service's: every artifact once, StartupError names the field path
        shadows = load_shadows(cfg, device, models)  # as the service: a candidate that does not load is left out
        for line in shadows.problems:
            print(f"backtest: shadow left out: {line}", file=sys.stderr)
        models.update(shadows.models)
        data = read_csv(args.data, {u.name: tuple(u.sensors) for u in cfg.units}, default_unit)
        labels = read_labels(args.labels) if args.labels else None
        out_dir = Path(args.out) if args.out else None
        result = run_backtest(cfg, models, data, out_dir=out_dir, batch_size=args.batch_size)
    except (StartupError, ValueError, OSError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2

    model_device = next(iter(models.values())).device if models else "cpu"
    rate = result.rows / result.wall_s if result.wall_s > 0 else float("inf")
    print(
        f"rows: {result.rows} ({data.skipped_rows} of unknown units skipped), windows scored: {result.jobs}, "
        f"scores: {result.scores}, in {result.wall_s:.2f} s = {rate:,.0f} rows/s on {model_device}"
    )
    print(f"windows skipped: {dict(result.skipped) or 0}; readings rejected: {dict(result.rejected) or 0}")
    if result.non_finite:
        print(f"non-finite scores dropped: {result.non_finite}")
    firing = [e for e in result.events if e.state == "firing"]
    print(
        f"alert events: {len(result.events)} ({len(firing)} firing, "
        f"{len(result.events) - len(firing)} resolved), episodes: {len({e.alert_id for e in result.events})}"
    )
    print_events(result.events)
    if result.shadow_scores_by_detector:
        firing = [e for e in result.shadow_events if e.state == "firing"]
        candidates = ", ".join(sorted({e.model for e in result.shadow_events})) or "-"
        print(
            f"shadow alert events (not published; {candidates}): "
            f"{len(result.shadow_events)} ({len(firing)} firing), "
            f"episodes: {len({e.alert_id for e in result.shadow_events})}"
        )
        print_events(result.shadow_events)
    if labels is not None:
        print_evaluation(result.events, result.scores_by_detector, result, labels, args.tolerance_s)
        if result.shadow_scores_by_detector:
            print("shadow candidates:")
            print_evaluation(
                result.shadow_events, result.shadow_scores_by_detector, result, labels, args.tolerance_s, "  "
            )
    if out_dir is not None:
        shadow = f" and {out_dir / SHADOW_ALERTS_FILE}" if result.shadow_scores_by_detector else ""
        print(f"wrote {out_dir / 'scores.csv'} and {out_dir / 'alerts.jsonl'}{shadow}")
    return 0


def print_events(events: Sequence[AlertEvent]) -> None:
    for e in events:
        top = e.sensors[0][0] if e.sensors else "-"
        print(
            f"  {e.ts:.0f} {e.unit} {e.detector} {e.state} {e.severity} "
            f"score {e.score:.3g} / threshold {e.threshold:.3g}, top sensor {top}"
        )


def print_evaluation(
    events: Sequence[AlertEvent],
    detectors: Mapping[str, int],
    result: BacktestResult,
    labels: Sequence[Label],
    tolerance_s: float,
    indent: str = "",
) -> None:
    """The detection figures per detector (those that scored, alerts or not), then for any detector."""
    from monitor.evaluation.episodes import ANY, episodes_from_events
    from monitor.evaluation.judge import evaluate_by_detector

    episodes = episodes_from_events(events)
    reports = evaluate_by_detector(episodes, labels, result.timelines, tolerance_s, detectors=detectors)
    for name, report in reports.items():
        title = "any detector (alert spans merged per unit)" if name == ANY else f"detector {name}"
        print(f"{indent}{title}:")
        print(textwrap.indent(report.format(), indent + "  "))
