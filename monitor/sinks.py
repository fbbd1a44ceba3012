"""The output port: the Sink interface every destination of the output stage implements.

API::

    class MySink(Sink):                       # override what the sink takes; the rest do nothing
        def alert(self, event: AlertEvent) -> None: ...
    recording = RecordingSink(keep_rows=True)   # in memory: recording.events, recording.rows

What a sink is given: AlertEvents (monitor.messages), the unit's alert state payload (monitor.alerts), scored rows
(monitor.wire.payloads.ScoredRow: per detector the score, the threshold in force it was judged against, the
calibrated one, the model and the sensors' errors) and Forecasts. The OutputStage (monitor/outputs.py) calls, on the
scheduler thread, in this order for each batch: ``alert(event)`` and ``alert_state(unit, payload)`` as each score
changes a unit's alert state (``shadow_alert(event)``: a shadow candidate's would-be event, monitor/shadow.py;
the state also when the adapted thresholds are due to be kept), then
``scored(rows)`` once with the batch's rows, then ``forecasts(forecasts)``. A sink that does not take scores
(``takes_scores = False``) or forecasts is not given them, and the OutputStage builds no rows when no sink takes
them (the service with ``outputs.publish_scores: false``).

Sinks (DESIGN.md "outputs"): MQTT (monitor/mqtt_sink.py: the service's topics and payloads), files
(monitor/result_files.py: scores.csv and alerts.jsonl of the backtest and the demo), the demo's live view
(monitor/demo/view.py), and this module's RecordingSink (the backtest's result, tests). Where a sink runs in
another process than the outputs (the demo's view, beside the service's scorer process), monitor/output_feed.py
reads the MQTT payloads back into these same objects and calls the same methods.

A sink's exception propagates: the service's scheduler counts it as a failed batch; the backtest stops with it
(a full disk is an error there, not something to skip).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.messages import AlertEvent, Forecast
from monitor.wire.payloads import ScoredRow


class Sink:
    """Where the OutputStage's results go; every method does nothing here, so a sink overrides only what it takes."""

    takes_scores = True
    takes_forecasts = True

    def alert(self, event: AlertEvent) -> None:
        """An alert event: an episode firing, re-notified, escalated or resolved."""

    def shadow_alert(self, event: AlertEvent) -> None:
        """A shadow candidate's would-be alert event (monitor/shadow.py): recorded, never published."""

    def alert_state(self, unit: str, payload: bytes) -> None:
        """The unit's alert state (monitor.alerts.board.AlertBoard.state_payload): what a restart restores."""

    def scored(self, rows: Sequence[ScoredRow]) -> None:
        """The rows one batch scored, in the order their first score came."""

    def forecasts(self, forecasts: Sequence[Forecast]) -> None:
        """The forecasts one batch made."""


class RecordingSink(Sink):
    """Keeps the alert events (and with ``keep_rows`` the scored rows) in memory, in the order they came."""

    takes_forecasts = False

    def __init__(self, keep_rows: bool = False) -> None:
        self.takes_scores = keep_rows
        self.events: list[AlertEvent] = []
        self.shadow_events: list[AlertEvent] = []
        self.rows: list[ScoredRow] = []

    def alert(self, event: AlertEvent) -> None:
        self.events.append(event)

    def shadow_alert(self, event: AlertEvent) -> None:
        self.shadow_events.append(event)

    def scored(self, rows: Sequence[ScoredRow]) -> None:
        self.rows.extend(rows)
