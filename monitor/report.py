"""Report pictures: per unit, the signals, each detector's score against its threshold, alert and fault spans.

API::

    scores = read_scores("out/scores.csv")            # monitor.result_files: {unit: {detector: ScoreSeries}}
    events = read_alerts("out/alerts.jsonl")          # monitor.result_files: [AlertEvent] (what backtest/demo write)
    signals = read_signals("data.csv", units)         # {unit: Signals}; optional (the backtest's --data CSV)
    labels = read_labels("labels.csv")                # monitor.wire.labels; optional ground truth
    render_report(scores, events, "report.png", labels=labels, signals=signals, units="raw") -> Path
    fig = draw_report(...same arguments but out...)   # the matplotlib Figure, unsaved (tests look inside it)

One block per unit, headed by the unit and its counts. First the signals, with ``units="raw"`` (the default) one
small panel per sensor in the CSV's own engineering units under the sensor's name (the binned mean and each bin's
min-max, so a spike shows; the sensors the alerts name first, in another colour), with ``units="z"`` every
sensor standardised on one axis (shapes, not values). Then one panel per detector: its score on a log axis against
the threshold in force (the calibrated one as adapted online: what the alert compared the score with; a fault's
scores are often 100x the threshold, normal ones well under it: a linear axis shows either, never both), with
several labelled ticks whatever the span. Red: an alert episode from firing to resolved, with a box at the
episode naming its top sensors (and, against a known fault, how long after the fault's start it fired and after
its end it resolved); hatched grey: a known fault (labels). Each panel has its legend (monitor.report_panels).

An episode outlives its fault, and the footer says why: a window is the newest W rows, so for W periods after a
fault ends every window still holds faulty rows and scores high; then the alert needs ``resolve_hits`` windows in a
row under its resolve level (and ``min_duration_s``) before it resolves.

Long runs are reduced to at most MAX_POINTS points per score line (each bin's maximum, so a short spike in a
day-long backtest still shows). matplotlib runs with the Agg backend (no display needed); it is imported when a
report is drawn, so the `report` command's module stays cheap to import.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from monitor.evaluation.episodes import Episode, episodes_from_events
from monitor.messages import MODEL_DETECTORS, AlertEvent
from monitor.report_panels import (
    dates,
    mean_points,
    merged_spans,
    note_episodes,
    plot_scores,
    plot_sensor,
    plot_signals_z,
    reduce_points,
    shade,
    span_legend,
)
from monitor.result_files import ScoreSeries
from monitor.wire.csvfile import read_table
from monitor.wire.labels import Label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

__all__ = ["Signals", "draw_report", "mean_points", "read_signals", "reduce_points", "render_report"]

SignalUnits = Literal["raw", "z"]
SIGNAL_UNITS: tuple[SignalUnits, ...] = ("raw", "z")
SENSOR_COLUMNS = 4  # sensor panels per row
MAX_SENSOR_PANELS = 16  # per unit; more sensors: the alerted ones and the first others, the rest said
SENSOR_ROW_IN = 1.35  # figure inches per row of sensor panels
SCORE_ROW_IN = 1.9  # per detector panel
Z_ROW_IN = 2.3  # the z-score panel
WIDTH_IN = 15.0
SCORE_PANEL_PT = (WIDTH_IN - 2.6) * 72.0  # a detector panel's width: the figure's less its labels and legend
FOOTER = (
    "Red: an alert episode, firing to resolved (sensor panels: any detector's, merged); hatched grey: a known fault. "
    "An episode outlives its fault: a window is the newest W rows, so for a window's length after the fault ends "
    "every window still holds faulty rows; then the alert needs resolve_hits windows in a row under its resolve "
    "level (and min_duration_s) to resolve."
)


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


@dataclass(frozen=True)
class _UnitBlock:
    """What one unit's block draws."""

    unit: str
    sensors: tuple[str, ...]  # the sensor panels, alerted first (raw units); () without signals or in z
    hidden_sensors: int  # sensors not drawn (beyond MAX_SENSOR_PANELS)
    z_panel: bool
    detectors: tuple[str, ...]

    @property
    def sensor_rows(self) -> int:
        return math.ceil(len(self.sensors) / SENSOR_COLUMNS)

    @property
    def height_in(self) -> float:
        signals = self.sensor_rows * SENSOR_ROW_IN + (Z_ROW_IN if self.z_panel else 0.0)
        return signals + len(self.detectors) * SCORE_ROW_IN + 0.45


def _blocks(
    units: Sequence[str],
    scores: Mapping[str, Mapping[str, ScoreSeries]],
    signals: Mapping[str, Signals],
    alerted: Mapping[str, list[str]],
    signal_units: SignalUnits,
) -> list[_UnitBlock]:
    blocks = []
    for unit in units:
        detectors: list[str] = [d for d in MODEL_DETECTORS if d in scores.get(unit, {})]
        detectors += sorted(set(scores.get(unit, {})) - set(detectors))
        sensors: tuple[str, ...] = ()
        hidden = 0
        if unit in signals and signal_units == "raw":
            named = [s for s in alerted.get(unit, []) if s in signals[unit].sensors]
            ordered = list(dict.fromkeys([*named, *signals[unit].sensors]))
            sensors, hidden = tuple(ordered[:MAX_SENSOR_PANELS]), max(0, len(ordered) - MAX_SENSOR_PANELS)
        z_panel = unit in signals and signal_units == "z"
        if sensors or z_panel or detectors:
            blocks.append(_UnitBlock(unit, sensors, hidden, z_panel, tuple(detectors)))
    return blocks


def _alerted_sensors(events: Sequence[AlertEvent]) -> dict[str, list[str]]:
    """Per unit, the sensors the alerts name first, most often named first."""
    counts: dict[str, dict[str, int]] = {}
    for e in events:
        if e.sensors:
            per_unit = counts.setdefault(e.unit, {})
            per_unit[e.sensors[0][0]] = per_unit.get(e.sensors[0][0], 0) + 1
    return {unit: sorted(c, key=lambda s: -c[s]) for unit, c in counts.items()}


def draw_report(
    scores: Mapping[str, Mapping[str, ScoreSeries]],
    events: Sequence[AlertEvent],
    *,
    labels: Sequence[Label] = (),
    signals: Mapping[str, Signals] | None = None,
    title: str | None = None,
    dpi: int = 100,
    units: SignalUnits = "raw",
) -> Figure:
    """The report's Figure (module docstring); ValueError if there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if units not in SIGNAL_UNITS:
        raise ValueError(f"units must be one of {', '.join(SIGNAL_UNITS)}, got {units!r}")
    unit_names = sorted(set(scores) | {e.unit for e in events})
    if not unit_names:
        raise ValueError("nothing to draw: no scores and no alerts")
    signals = signals or {}
    episodes = episodes_from_events(events)
    alerted = _alerted_sensors(events)
    blocks = _blocks(unit_names, scores, signals, alerted, units)
    if not blocks:
        raise ValueError("nothing to draw: no scores or signals for the alerted units")
    all_ts = [s.ts for by_det in scores.values() for s in by_det.values() if s.ts.size]
    all_ts += [s.ts for s in signals.values() if s.ts.size]
    end_ts = float(max(float(t[-1]) for t in all_ts)) if all_ts else max(e.ts for e in events)
    start_ts = float(min(float(t[0]) for t in all_ts)) if all_ts else min(e.started_at for e in events)

    height = sum(b.height_in for b in blocks) + 1.3
    fig = plt.figure(figsize=(WIDTH_IN, height), dpi=dpi, layout="constrained")
    subfigs = fig.subfigures(len(blocks), 1, height_ratios=[b.height_in for b in blocks], squeeze=False)[:, 0]
    for subfig, block in zip(subfigs, blocks, strict=True):
        unit_episodes = [e for e in episodes if e.unit == block.unit]
        unit_labels = [lab for lab in labels if lab.unit == block.unit]
        _draw_unit(subfig, block, scores, signals, events, unit_episodes, unit_labels, (start_ts, end_ts))
        faults = f", {len(unit_labels)} known fault(s)" if labels else ""
        subfig.suptitle(
            f"{block.unit}: {len({e.alert_id for e in unit_episodes})} alert episode(s){faults}",
            x=0.01,
            ha="left",
            fontsize=11,
            fontweight="bold",
        )
    start = dt.datetime.fromtimestamp(start_ts, tz=dt.UTC)
    fig.suptitle((title or "plantwatch report") + f" from {start:%Y-%m-%d %H:%M:%S} UTC (event time)", fontsize=11)
    fig.supxlabel(_wrap(FOOTER, 190), fontsize=8, color="0.25")
    return fig


def _draw_unit(
    subfig: SubFigure,
    block: _UnitBlock,
    scores: Mapping[str, Mapping[str, ScoreSeries]],
    signals: Mapping[str, Signals],
    events: Sequence[AlertEvent],
    episodes: Sequence[Episode],
    labels: Sequence[Label],
    span: tuple[float, float],
) -> None:
    """One unit's panels in ``subfig``, over the report's whole time ``span`` (every unit the same).

    The panels of a unit share their time axis; units do not (an axis shared across subfigures makes matplotlib
    redraw the whole figure at every change of limits: minutes for a two-unit report), they get the same limits.
    """
    import matplotlib.dates as mdates

    rows = block.sensor_rows + (1 if block.z_panel else 0) + len(block.detectors)
    ratios = [SENSOR_ROW_IN] * block.sensor_rows + [Z_ROW_IN] * block.z_panel + [SCORE_ROW_IN] * len(block.detectors)
    grid = subfig.add_gridspec(rows, SENSOR_COLUMNS, height_ratios=ratios)
    start_ts, end_ts = span
    any_alert = merged_spans(episodes, end_ts)
    span_name = "alert, any detector" if episodes else None
    axes: list[Axes] = []

    def panel(row: int, col: slice | int) -> Axes:
        ax = subfig.add_subplot(grid[row, col], sharex=axes[0] if axes else None)
        ax.grid(True, alpha=0.3)
        axes.append(ax)
        return ax

    alerted = set(_alerted_sensors(events).get(block.unit, []))
    for i, sensor in enumerate(block.sensors):
        ax = panel(i // SENSOR_COLUMNS, i % SENSOR_COLUMNS)
        unit_signals = signals[block.unit]
        plot_sensor(
            ax, unit_signals.ts, unit_signals.values[:, unit_signals.sensors.index(sensor)], sensor, sensor in alerted
        )
        shade(ax, any_alert, labels)
        if i == min(len(block.sensors), SENSOR_COLUMNS) - 1:  # the first row's last panel: the legend beside it
            span_legend(ax, span_name, bool(labels))
    if block.hidden_sensors:
        axes[-1].annotate(
            f"{block.hidden_sensors} more sensor(s) not drawn (--units z draws every sensor)",
            xy=(1.0, -0.3),
            xycoords="axes fraction",
            ha="right",
            fontsize=8,
            color="0.3",
        )
    row = block.sensor_rows
    if block.z_panel:
        ax = panel(row, slice(None))
        plot_signals_z(ax, signals[block.unit], alerted)
        shade(ax, any_alert, labels)
        span_legend(ax, span_name, bool(labels))
        row += 1
    for detector in block.detectors:
        ax = panel(row, slice(None))
        own = [e for e in episodes if e.detector == detector]
        plot_scores(ax, detector, scores[block.unit][detector])
        shade(ax, merged_spans(own, end_ts), labels)
        note_episodes(ax, own, events, labels, span, SCORE_PANEL_PT)
        span_legend(ax, f"{detector} alert" if own else None, bool(labels))
        row += 1
    axes[0].set_xlim(dates(start_ts), dates(end_ts))
    bottom = axes[-1]
    for ax in axes:
        if ax is not bottom:
            ax.tick_params(axis="x", labelbottom=False)
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    bottom.set_xlabel("time (UTC, event time)", fontsize=9)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def render_report(
    scores: Mapping[str, Mapping[str, ScoreSeries]],
    events: Sequence[AlertEvent],
    out: str | Path,
    *,
    labels: Sequence[Label] = (),
    signals: Mapping[str, Signals] | None = None,
    title: str | None = None,
    dpi: int = 100,
    units: SignalUnits = "raw",
) -> Path:
    """Draw the report (module docstring) to a PNG at ``out``; returns the path. ValueError if there is nothing."""
    import matplotlib.pyplot as plt

    fig = draw_report(scores, events, labels=labels, signals=signals, title=title, dpi=dpi, units=units)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out
