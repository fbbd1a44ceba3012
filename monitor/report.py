"""Report pictures: per unit, the signals, each detector's score against its threshold, alert and fault spans.

API::

    scores = read_scores("out/scores.csv")            # monitor.result_files: {unit: {detector: ScoreSeries}}
    events = read_alerts("out/alerts.jsonl")          # monitor.result_files: [AlertEvent] (what backtest/demo write)
    signals = read_signals("data.csv", units)         # {unit: Signals}; optional (the backtest's --data CSV)
    labels = read_labels("labels.csv")                # monitor.wire.labels; optional ground truth
    render_report(scores, events, "report.png", labels=labels, signals=signals) -> Path

One row of panels per unit: the signals standardised (z-score over the unit's whole run, so eight sensors in
different units share one axis; the sensors an alert names are drawn thick), then one panel per detector with
the score on a log axis against the threshold in force (the calibrated one as adapted online: what the alert
compared the score with; scores of a fault are often 100x the threshold, normal ones well under it: a linear axis
shows either the fault or the normal noise, never both). Alert episodes are
shaded red from firing to resolved and labelled with their top sensors and shares; ground-truth faults are
hatched grey. Long runs are reduced to at most MAX_POINTS per line by keeping each bin's maximum, so a short
spike in a day-long backtest still shows.

matplotlib runs with the Agg backend (no display needed); it is imported when a report is rendered, so the
`report` command's module stays cheap to import.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from monitor.evaluation.episodes import Episode, episodes_from_events
from monitor.messages import MODEL_DETECTORS, AlertEvent
from monitor.result_files import ScoreSeries
from monitor.wire.csvfile import read_table
from monitor.wire.labels import Label

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_POINTS = 4000  # per plotted score line; more than a 1400-px-wide figure can show anyway
SIGNAL_POINTS = 600  # signals are averaged into this many bins: raw 1 Hz noise would hide the trends
MAX_SPAN_LABELS = 6  # per panel; more episodes are shaded but not labelled
ALERT_COLOR = "#d62728"
THRESHOLD_COLOR = "#ff7f0e"
SCORE_COLOR = "#1f77b4"


@dataclass(frozen=True, slots=True)
class Signals:
    """One unit's raw signals: ts [T] epoch seconds, values [T, S] (NaN = missing), sensor names [S]."""

    sensors: tuple[str, ...]
    ts: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]


def read_signals(path: str | Path, units: Sequence[str]) -> dict[str, Signals]:
    """The raw signals of ``units`` from a data CSV (monitor.wire.csvfile; sensors: the columns but the labels)."""
    table = read_table(path)
    sensors = table.sensor_columns()
    if not sensors:
        raise ValueError(f"{path}: no sensor columns in {list(table.columns)}")
    default_unit = None if table.units is not None or len(units) != 1 else units[0]
    data = table.for_units(dict.fromkeys(units, sensors), default_unit)
    return {unit: Signals(sensors, data.ts[rows], data.values[unit]) for unit, rows in data.row_of_unit.items()}


def _binned(
    ts: npt.NDArray[np.float64], values: npt.NDArray[np.float64], max_points: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rows grouped into at most ``max_points`` equal bins: (each bin's first ts [M], values [M, bins, ...])."""
    bins = math.ceil(ts.shape[0] / max_points)
    usable = (ts.shape[0] // bins) * bins
    binned = values[:usable].reshape(usable // bins, bins, *values.shape[1:])
    return ts[:usable].reshape(-1, bins)[:, 0], binned


def reduce_points(
    ts: npt.NDArray[np.float64], values: npt.NDArray[np.float64], max_points: int = MAX_POINTS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """At most ``max_points`` points: each bin's maximum (NaN-aware), so short spikes survive; values [N] or [N, S]."""
    if ts.shape[0] <= max_points:
        return ts, values
    starts, binned = _binned(ts, values, max_points)
    with np.errstate(invalid="ignore"):
        all_nan = np.isnan(binned).all(axis=1)
        peak = np.where(all_nan, np.nan, np.nanmax(np.where(np.isnan(binned), -np.inf, binned), axis=1))
    return starts, np.asarray(peak, dtype=np.float64)


def _dates(ts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Epoch seconds -> matplotlib date numbers (days since 1970-01-01 UTC)."""
    return ts / 86400.0


def mean_points(
    ts: npt.NDArray[np.float64], values: npt.NDArray[np.float64], max_points: int = SIGNAL_POINTS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """At most ``max_points`` rows: each bin's mean (NaN-aware); values [N, S]."""
    if ts.shape[0] <= max_points:
        return ts, values
    starts, binned = _binned(ts, values, max_points)
    counts = np.sum(~np.isnan(binned), axis=1)
    sums = np.nansum(binned, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return starts, np.asarray(means, dtype=np.float64)


def _date(ts: float) -> float:
    return ts / 86400.0


def _span_label(episode: Episode, events: Sequence[AlertEvent]) -> str:
    top = next((e.sensors for e in events if e.alert_id == episode.alert_id and e.sensors), ())
    names = ", ".join(f"{s} {share:.0%}" for s, share in top) if top else "no sensor breakdown"
    return f"{episode.detector}: {names}"


def _shade(
    ax: Axes,
    episodes: Sequence[Episode],
    labels: Sequence[Label],
    span: tuple[float, float],
    events: Sequence[AlertEvent] | None,
) -> None:
    start_ts, end_ts = span
    for label in labels:
        ax.axvspan(
            _date(label.start),
            _date(label.end),
            facecolor="0.85",
            edgecolor="0.45",
            hatch="//",
            alpha=0.6,
            zorder=0,
        )
    for i, episode in enumerate(episodes):
        end = episode.resolved_at if episode.resolved_at is not None else end_ts
        ax.axvspan(_date(episode.detected_at), _date(end), color=ALERT_COLOR, alpha=0.15, zorder=0)
        if events is not None and i < MAX_SPAN_LABELS:
            # Stagger the labels downwards so neighbouring episodes do not print over each other, and
            # right-align those in the right part of the plot so they stay inside it.
            right = (episode.detected_at - start_ts) > 0.6 * max(end_ts - start_ts, 1e-9)
            ax.annotate(
                _span_label(episode, events),
                xy=(_date(episode.detected_at), 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(-3 if right else 3, -3 - 13 * (i % 3)),
                ha="right" if right else "left",
                annotation_clip=True,
                textcoords="offset points",
                va="top",
                fontsize=8,
                color=ALERT_COLOR,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": ALERT_COLOR, "alpha": 0.85},
            )


def _plot_signals(ax: Axes, signals: Signals, highlight: set[str]) -> None:
    values = signals.values
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=0)
        sd = np.nanstd(values, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    z = (values - mean) / sd
    ts, z = mean_points(signals.ts, z)
    x = _dates(ts)
    for j, sensor in enumerate(signals.sensors):
        strong = sensor in highlight
        ax.plot(
            x,
            z[:, j],
            linewidth=1.6 if strong else 0.7,
            alpha=1.0 if strong else 0.55,
            label=sensor + (" (alerted)" if strong else ""),
            zorder=3 if strong else 2,
        )
    ax.set_ylabel("signals, z-score\n(binned means)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)


def _plot_scores(ax: Axes, detector: str, series: ScoreSeries) -> None:
    from matplotlib.ticker import NullFormatter

    ts, score = reduce_points(series.ts, series.score)
    x = _dates(ts)
    floor = np.nanmin(series.threshold[series.threshold > 0]) * 1e-3 if np.any(series.threshold > 0) else 1e-9
    ax.plot(
        x, np.clip(score, floor, None), color=SCORE_COLOR, linewidth=0.9, label=f"{detector} score ({series.model})"
    )
    ax.step(
        _dates(series.ts),
        series.threshold,
        where="post",
        color=THRESHOLD_COLOR,
        linestyle="--",
        linewidth=1.2,
        label="threshold",
    )
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks crowd a short log axis
    ax.set_ylabel(f"{detector}\nscore (log)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)


def render_report(
    scores: Mapping[str, Mapping[str, ScoreSeries]],
    events: Sequence[AlertEvent],
    out: str | Path,
    *,
    labels: Sequence[Label] = (),
    signals: Mapping[str, Signals] | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw the report (see the module docstring) to a PNG at ``out``; returns the path. ValueError if no scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    units = sorted(set(scores) | {e.unit for e in events})
    if not units:
        raise ValueError("nothing to draw: no scores and no alerts")
    signals = signals or {}
    episodes = episodes_from_events(events)
    panels: list[tuple[str, str]] = []  # (unit, "signals" | detector)
    for unit in units:
        if unit in signals:
            panels.append((unit, "signals"))
        detectors: list[str] = [d for d in MODEL_DETECTORS if d in scores.get(unit, {})]
        detectors += sorted(set(scores.get(unit, {})) - set(detectors))
        panels.extend((unit, d) for d in detectors)
    if not panels:
        raise ValueError("nothing to draw: no scores or signals for the alerted units")

    fig, axes = plt.subplots(len(panels), 1, figsize=(15, 2.3 * len(panels) + 1.0), sharex=True, squeeze=False, dpi=dpi)
    all_ts = [s.ts for by_det in scores.values() for s in by_det.values() if s.ts.size]
    all_ts += [s.ts for s in signals.values() if s.ts.size]
    end_ts = float(max(float(t[-1]) for t in all_ts)) if all_ts else max(e.ts for e in events)
    start_ts = float(min(float(t[0]) for t in all_ts)) if all_ts else min(e.started_at for e in events)
    previous_unit = None
    for ax, (unit, what) in zip(axes[:, 0], panels, strict=True):
        unit_episodes = [e for e in episodes if e.unit == unit]
        unit_labels = [lab for lab in labels if lab.unit == unit]
        if what == "signals":
            alerted = {s for e in events if e.unit == unit for s, _ in e.sensors[:1]}
            _plot_signals(ax, signals[unit], alerted)
            _shade(ax, unit_episodes, unit_labels, (start_ts, end_ts), None)
        else:
            detector_episodes = [e for e in unit_episodes if e.detector == what]
            _plot_scores(ax, what, scores[unit][what])
            _shade(ax, detector_episodes, unit_labels, (start_ts, end_ts), events)
        if unit != previous_unit:
            fired = len({e.alert_id for e in unit_episodes})
            faults = len(unit_labels)
            ax.set_title(
                f"{unit}: {fired} alert episode(s)" + (f", {faults} known fault(s)" if labels else ""),
                loc="left",
                fontsize=11,
                fontweight="bold",
            )
            previous_unit = unit
        ax.grid(True, alpha=0.3)
    bottom = axes[-1, 0]
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    bottom.set_xlabel("time (UTC)")
    legend_bits = ["red: alert firing -> resolved (top sensors and their share of the score)"]
    if labels:
        legend_bits.append("hatched grey: ground-truth fault")
    start = dt.datetime.fromtimestamp(start_ts, tz=dt.UTC)
    heading = (title or "plantwatch report") + f" from {start:%Y-%m-%d %H:%M:%S} UTC"
    fig.suptitle(heading + "\n" + "; ".join(legend_bits), fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
