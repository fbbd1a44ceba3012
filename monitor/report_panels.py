"""The report's panels (monitor.report lays them out): one sensor in its own units, all sensors as z-scores, one
detector's score against its threshold, and what every panel shares (alert and fault spans, episode notes, the
log axis' ticks, the legends).

API (each takes a matplotlib Axes; x is matplotlib date numbers, see ``dates``)::

    reduce_points(ts, values) / mean_points / band_points  # long runs binned to what a picture can show
    plot_sensor(ax, ts, values, sensor, alerted)         # binned mean and min-max band, engineering units
    plot_signals_z(ax, signals, alerted)                 # every sensor standardised, one axis (--units z)
    plot_scores(ax, detector, series)                    # score (log axis) and the threshold in force
    shade(ax, spans, labels)                             # red: alert firing -> resolved; hatched grey: known fault
    note_episodes(ax, episodes, events, labels, span, panel_width_pt)  # a box per episode, inside, at the episode
    span_legend(ax, extra, alerts, faults)               # the panel's legend: its lines and the two span kinds

Colours mean one thing each: blue the measured value or score, orange the threshold, red an alert episode, grey
hatching a known fault. A panel of a detector shades only that detector's episodes; a sensor panel shades the
unit's alert time by any detector, merged, so overlapping episodes never stack into a second, darker red.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from monitor.evaluation.episodes import Episode, merge_episodes
from monitor.messages import AlertEvent
from monitor.result_files import ScoreSeries
from monitor.wire.labels import Label

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from monitor.report import Signals

ALERT_COLOR = "#d62728"
THRESHOLD_COLOR = "#ff7f0e"
VALUE_COLOR = "#1f77b4"
ALERTED_COLOR = "#7b3294"  # a sensor the alerts name as their top one
FAULT_STYLE: dict[str, Any] = {"facecolor": "0.88", "edgecolor": "0.45", "hatch": "//", "alpha": 0.6}
ALERT_ALPHA = 0.16
MAX_POINTS = 4000  # per plotted score line; more than a 1500-px-wide figure can show anyway
SIGNAL_POINTS = 600  # sensor values are binned into this many bins: raw 1 Hz noise would hide the trends
MAX_EPISODE_NOTES = 6  # per panel; more episodes are shaded but not labelled
MIN_SHARE = 0.05  # top sensors listed in a note: at least this share of the score (always the first)
NOTE_FONT_PT = 7.5
NOTE_CHAR_PT = 0.6 * NOTE_FONT_PT  # a generous average character width of the notes' sans-serif font


def dates(ts: npt.NDArray[np.float64] | float) -> Any:
    """Epoch seconds -> matplotlib date numbers (days since 1970-01-01 UTC)."""
    return np.asarray(ts, dtype=np.float64) / 86400.0 if isinstance(ts, np.ndarray) else float(ts) / 86400.0


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


def band_points(
    ts: npt.NDArray[np.float64], values: npt.NDArray[np.float64], max_points: int = SIGNAL_POINTS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One sensor [N] in at most ``max_points`` bins: (bin starts, min, mean, max), NaN where a bin is empty."""
    if ts.shape[0] <= max_points:
        return ts, values, values, values
    starts, binned = _binned(ts, values, max_points)
    missing = np.isnan(binned)
    counts = np.sum(~missing, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(counts > 0, np.min(np.where(missing, np.inf, binned), axis=1), np.nan)
        high = np.where(counts > 0, np.max(np.where(missing, -np.inf, binned), axis=1), np.nan)
        mean = np.where(counts > 0, np.nansum(binned, axis=1) / np.maximum(counts, 1), np.nan)
    return starts, low, mean, high


def plot_sensor(
    ax: Axes,
    ts: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    sensor: str,
    alerted: bool,
) -> None:
    """One sensor in its own units: the mean of each time bin, and the bin's min-max as a band (a spike shows)."""
    from matplotlib.ticker import MaxNLocator

    starts, low, mean, high = band_points(ts, values)
    color = ALERTED_COLOR if alerted else VALUE_COLOR
    x = dates(starts)
    ax.fill_between(x, low, high, color=color, alpha=0.25, linewidth=0, step="post", label="min-max per bin")
    ax.plot(x, mean, color=color, linewidth=1.3 if alerted else 0.9, drawstyle="steps-post", label="mean per bin")
    ax.set_title(
        sensor + ("  (named by the alerts)" if alerted else ""),
        fontsize=9,
        loc="left",
        pad=2,
        fontweight="bold" if alerted else "normal",
        color=color,
    )
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")  # 352.1 K, never "+3.5e2" and offsets
    ax.tick_params(axis="y", labelsize=8)


def plot_signals_z(ax: Axes, signals: Signals, alerted: set[str]) -> None:
    """Every sensor standardised (z-score over the unit's run) on one axis: shapes, not values."""
    values = signals.values
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=0)
        sd = np.nanstd(values, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    ts, z = mean_points(signals.ts, (values - mean) / sd)
    for j, sensor in enumerate(signals.sensors):
        strong = sensor in alerted
        ax.plot(
            dates(ts),
            z[:, j],
            linewidth=1.6 if strong else 0.7,
            alpha=1.0 if strong else 0.55,
            label=sensor + (" (alerted)" if strong else ""),
            zorder=3 if strong else 2,
        )
    ax.set_ylabel("signals, z-score\n(binned means)")


def plot_scores(ax: Axes, detector: str, series: ScoreSeries) -> None:
    """The detector's score on a log axis and the threshold in force, as the alert compared them."""
    ts, score = reduce_points(series.ts, series.score)
    positive = series.threshold[series.threshold > 0]
    floor = float(np.nanmin(positive)) * 1e-3 if positive.size else 1e-9
    # The sensor detector is a fixed rule (silent, stuck, out of range), whatever model name its rows carry.
    name = "score (sensor rules)" if detector == "sensor" else f"score ({series.model})"
    ax.plot(dates(ts), np.clip(score, floor, None), color=VALUE_COLOR, linewidth=0.9, label=name)
    ax.step(
        dates(series.ts),
        series.threshold,
        where="post",
        color=THRESHOLD_COLOR,
        linestyle="--",
        linewidth=1.2,
        label="threshold in force",
    )
    ax.set_yscale("log")
    ax.set_ylabel(f"{detector}\nscore (log)")
    log_ticks(ax)


# Steps per decade for the log axis' labelled ticks, coarse to fine: the first that labels at least MIN_LOG_TICKS
# values inside the axis wins (matplotlib alone labels a single 10^0 on an axis spanning 0.6 to 1.3).
LOG_TICK_STEPS: tuple[tuple[float, ...], ...] = (
    (1.0,),
    (1.0, 3.0),
    (1.0, 2.0, 5.0),
    (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
    (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0),
)
MIN_LOG_TICKS = 4


def log_tick_values(low: float, high: float) -> list[float]:
    """The labelled ticks of a log axis from ``low`` to ``high`` (> 0): the coarsest steps of LOG_TICK_STEPS giving
    at least MIN_LOG_TICKS of them; an axis too narrow for any (0.9 to 1.1) gets evenly spaced round values."""
    from matplotlib.ticker import MaxNLocator

    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for subs in LOG_TICK_STEPS:
        ticks = [s * 10.0**e for e in range(first, last + 1) for s in subs if low <= s * 10.0**e <= high]
        if len(ticks) >= MIN_LOG_TICKS:
            return ticks
    if len(ticks) >= 3:
        return ticks
    return [float(v) for v in MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high) if low <= v <= high]


def log_ticks(ax: Axes) -> None:
    """Several labelled ticks on the log y axis, as plain numbers (``0.7``, ``1``, ``200``), whatever its span;
    the unlabelled minor ticks stay."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    low, high = ax.get_ylim()
    if not (0 < low < high and math.isfinite(high)):
        return
    ax.yaxis.set_major_locator(FixedLocator(log_tick_values(low, high)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="y", labelsize=8)


def merged_spans(episodes: Sequence[Episode], end_ts: float) -> list[tuple[float, float]]:
    """The episodes' [fired, resolved] spans merged where they overlap (monitor.evaluation's "any" view); one still
    firing ends at ``end_ts``."""
    return [(e.detected_at, e.resolved_at if e.resolved_at is not None else end_ts) for e in merge_episodes(episodes)]


def shade(ax: Axes, spans: Sequence[tuple[float, float]], labels: Sequence[Label]) -> None:
    """Red from firing to resolved; hatched grey over a known fault."""
    for label in labels:
        ax.axvspan(dates(label.start), dates(label.end), zorder=0, **FAULT_STYLE)
    for start, end in spans:
        ax.axvspan(dates(start), dates(end), color=ALERT_COLOR, alpha=ALERT_ALPHA, zorder=0, linewidth=0)


def span_legend(ax: Axes, alerts: str | None, faults: bool, outside: bool = True) -> None:
    """The panel's legend: its own lines, then what the red and the hatched spans are (when there are any)."""
    from matplotlib.patches import Patch

    handles, names = ax.get_legend_handles_labels()
    if alerts is not None:
        handles.append(Patch(facecolor=ALERT_COLOR, alpha=ALERT_ALPHA * 2, edgecolor="none"))
        names.append(alerts)
    if faults:
        handles.append(Patch(**FAULT_STYLE))
        names.append("known fault (labels)")
    if outside:
        ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
    else:
        ax.legend(handles, names, loc="upper left", fontsize=7, framealpha=0.85, ncols=min(4, len(names)))


def _note_text(episode: Episode, events: Sequence[AlertEvent], labels: Sequence[Label]) -> str:
    top = next((e.sensors for e in events if e.alert_id == episode.alert_id and e.sensors), ())
    shown = [(s, share) for i, (s, share) in enumerate(top) if i == 0 or share >= MIN_SHARE]
    lines = ["top: " + ", ".join(f"{s} {share:.0%}" for s, share in shown) if shown else "no sensor breakdown"]
    fault = next((lab for lab in labels if lab.start <= episode.detected_at <= lab.end + 600.0), None)
    if fault is not None:
        lines.append(f"fired {episode.detected_at - fault.start:.0f} s after the fault began")
        if episode.resolved_at is not None:
            after = episode.resolved_at - fault.end
            lines.append(f"resolved {abs(after):.0f} s {'after it ended' if after >= 0 else 'before it ended'}")
    return "\n".join(lines)


def note_episodes(
    ax: Axes,
    episodes: Sequence[Episode],
    events: Sequence[AlertEvent],
    labels: Sequence[Label],
    span: tuple[float, float],
    panel_width_pt: float,
) -> None:
    """A box per episode (its top sensors; against a known fault, when it fired and resolved) at the episode,
    near the bottom of the panel, where a firing score leaves room: starting at the episode's start, or, when it
    would cross the panel's right edge (``panel_width_pt`` wide, ``span`` the panel's time range), ending at the
    episode's end (or the panel's, for one still firing)."""
    start_ts, end_ts = span
    width_s = max(end_ts - start_ts, 1e-9)
    for i, episode in enumerate(episodes[:MAX_EPISODE_NOTES]):
        text = _note_text(episode, events, labels)
        box_pt = NOTE_CHAR_PT * max(len(line) for line in text.splitlines()) + 12.0  # text, padding, offset
        fits_right = (episode.detected_at - start_ts) / width_s + box_pt / panel_width_pt <= 1.0
        anchor = episode.detected_at if fits_right else min(episode.resolved_at or end_ts, end_ts)
        note = ax.annotate(
            text,
            xy=(dates(anchor), 0.0),
            xycoords=("data", "axes fraction"),
            xytext=(4 if fits_right else -4, 4 + 36 * (i % 2)),  # alternate heights: neighbours do not overprint
            textcoords="offset points",
            ha="left" if fits_right else "right",
            va="bottom",
            fontsize=NOTE_FONT_PT,
            color=ALERT_COLOR,
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": ALERT_COLOR, "alpha": 0.9},
            annotation_clip=False,
            zorder=5,
        )
        note.set_in_layout(False)  # the layout makes room for the panels, not for boxes inside them
