"""The demo's live view: a Sink that draws, per unit, the state, score against threshold and top sensor, and the
alerts as they fire and resolve.

API::

    view = LiveView(units, out, interactive, speed=1.0)   # a monitor.sinks.Sink: alert(event), scored(rows)
    view.render(header)                         # a redrawn screen (interactive) or the new alert lines
    view.status_lines(); view.events; view.scores_seen

Two ways to draw. On a terminal (``interactive``) the screen is redrawn in place: ``header`` (the caller keeps in
it what must stay visible, such as the training summary: the redraw clears the screen), the units, the newest
alerts. Otherwise (a pipe, a file, a CI log) each alert event is printed once, as one ``ALERT`` line, when it
arrives; nothing is redrawn.

Times. An alert's ``ts`` is event time: the plant's clock, the ``ts`` its readings were stamped with. Faster than
real time (``speed`` above 1) the simulated clock is not the wall clock, so a line then shows both, labelled
(``event 17:01:53 (wall 17:05:11)``: wall = when the view received the event); at 1x they agree and a line shows
the event time alone.

It takes the same objects the OutputStage hands its sinks. The service scores in its scorer process (the default
`plantwatch run` deploys), so the demo feeds the view from the broker through monitor.output_feed.OutputFeed,
which decodes the payloads with monitor.wire.payloads, as an alarm gateway reading the topics would; the view itself
parses nothing. Its methods are called on the feed's thread and read on the demo's main thread: a lock guards
its state.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from monitor.messages import MODEL_DETECTORS, AlertEvent
from monitor.sinks import Sink
from monitor.wire.payloads import ScoredRow

LOG_LINES = 12  # alert lines on the redrawn screen, newest last


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%H:%M:%S")


@dataclass
class UnitView:
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # detector -> (score, threshold)
    top_sensor: str = "-"
    last_ts: float = math.nan
    firing: dict[str, AlertEvent] = field(default_factory=dict)  # detector -> latest firing event


class LiveView(Sink):
    """Draws the service's outputs (see the module docstring)."""

    takes_forecasts = False

    def __init__(self, units: Sequence[str], out: TextIO, interactive: bool, speed: float = 1.0) -> None:
        self._out = out
        self._interactive = interactive
        self._both_clocks = speed != 1.0
        self._lock = threading.Lock()
        self.units = {u: UnitView() for u in units}
        self.events: list[AlertEvent] = []
        self._log: list[str] = []
        self._printed = 0
        self.scores_seen = 0

    def scored(self, rows: Sequence[ScoredRow]) -> None:
        with self._lock:
            for row in rows:
                view = self.units.get(row.unit)
                if view is None:
                    continue
                view.last_ts = row.ts
                for detector, s in row.scores.items():
                    view.scores[detector] = (s.score, s.threshold)
                    top = row.top_sensor(detector)
                    if detector == "reconstruction" and top:
                        view.top_sensor = top
                    self.scores_seen += 1

    def alert(self, event: AlertEvent) -> None:
        sensors = ", ".join(f"{s} {share:.0%}" for s, share in event.sensors) or "-"
        when = _clock(event.ts)
        if self._both_clocks:
            when = f"event {when} (wall {_clock(time.time())})"
        line = (
            f"{when} {event.unit} {event.detector} {event.state.upper()} ({event.severity}): "
            f"score {event.score:.3g} / threshold {event.threshold:.3g}; top sensors: {sensors}"
        )
        with self._lock:
            self.events.append(event)
            view = self.units.get(event.unit)
            if view is not None:
                if event.state == "firing":
                    view.firing[event.detector] = event
                else:
                    view.firing.pop(event.detector, None)
            self._log.append(line)

    def render(self, header: Sequence[str]) -> None:
        """Draw the view: a redrawn screen on a terminal, new lines only otherwise."""
        with self._lock:
            rows = [self._unit_line(unit, view) for unit, view in self.units.items()]
            log_lines = list(self._log)
        if self._interactive:
            screen = [*header, "", f"{'unit':<12} {'state':<22} {'score / threshold':<44} top sensor", *rows]
            screen += ["", "alerts (newest last):", *(log_lines[-LOG_LINES:] or ["  none yet"])]
            screen += ["", "Ctrl-C stops everything and writes the report."]
            self._out.write("\x1b[H\x1b[J" + "\n".join(screen) + "\n")
        else:
            for line in log_lines[self._printed :]:
                self._out.write("ALERT " + line + "\n")
            self._printed = len(log_lines)
        self._out.flush()

    def status_lines(self) -> list[str]:
        with self._lock:
            return [self._unit_line(unit, view) for unit, view in self.units.items()]

    @staticmethod
    def _unit_line(unit: str, view: UnitView) -> str:
        if not view.scores:
            state = "warming up"
        elif view.firing:
            state = "FIRING " + max(e.severity for e in view.firing.values())
        else:
            state = "normal"
        parts = []
        for detector in MODEL_DETECTORS:
            if detector in view.scores:
                score, threshold = view.scores[detector]
                parts.append(f"{detector[:5]} {score:8.3g} / {threshold:<6.3g}")
        return f"{unit:<12} {state:<22} {'  '.join(parts):<44} {view.top_sensor}"
