"""The demo's closing: report.png from what it recorded, and the lines the command prints.

API::

    path = write_report(run_dir, out, signals=True)  # <run_dir>/report.png, or None when nothing was scored
    text = summary(result)                           # the closing lines of `plantwatch demo`

The picture is monitor.report's (the one `plantwatch report` draws after a backtest), from the demo's
``scores.csv`` and ``alerts.jsonl`` (monitor.result_files), ``data.csv`` (monitor.demo.plant) and ``labels.csv``
(the simulator's ground truth).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from monitor.demo.options import DemoResult
from monitor.result_files import ALERTS_FILE, SCORES_FILE

CONFIG_FILE = "plantwatch.yaml"
DATA_FILE = "data.csv"
LABELS_FILE = "labels.csv"
REPORT_FILE = "report.png"


def write_report(run_dir: Path, out: TextIO, signals: bool) -> Path | None:
    """Draw ``report.png`` in ``run_dir`` from the files the demo wrote there (``signals``: data.csv has rows, draw
    them); None, and a line on ``out``, when nothing was scored."""
    from monitor.report import read_signals, render_report
    from monitor.result_files import read_alerts, read_scores
    from monitor.wire.labels import read_labels

    scores = read_scores(run_dir / SCORES_FILE)
    events = read_alerts(run_dir / ALERTS_FILE)
    if not scores and not events:
        print("no scores were published: no report", file=out)
        return None
    units = sorted(set(scores) | {e.unit for e in events})
    return render_report(
        scores,
        events,
        run_dir / REPORT_FILE,
        labels=read_labels(run_dir / LABELS_FILE),
        signals=read_signals(run_dir / DATA_FILE, units) if signals else None,
        title="plantwatch demo",
    )


def summary(result: DemoResult) -> str:
    """The closing lines the command prints."""
    firing = [e for e in result.events if e.state == "firing"]
    episodes = len({e.alert_id for e in result.events})
    lines = [
        f"published {result.rows_published} readings; the view saw {result.scores_seen} scores and "
        f"{len(result.events)} alert events ({len(firing)} firing, {episodes} episodes)"
    ]
    for e in result.events:
        top = ", ".join(f"{s} {share:.0%}" for s, share in e.sensors) or "-"
        lines.append(f"  {e.unit} {e.detector} {e.state} ({e.severity}), top sensors: {top}")
    if result.publisher_error:
        lines.append(f"simulator stopped early: {result.publisher_error}")
    if result.run_dir is not None:
        lines.append(f"records of this run: {result.run_dir} (config: {result.run_dir / CONFIG_FILE})")
    if result.report is not None:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)
