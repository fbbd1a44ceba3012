"""The MQTT sink: the service's alerts, retained alert state, scores and forecasts on the broker.

API::

    sink = MqttSink(publish, prefix="plantwatch", publish_scores=True, publish_forecasts=True, sensors={"R1": (...)})
    OutputStage(board, [sink], metrics, prefix=...)   # what ScoringSide builds (monitor/scoring_side.py)

``publish(topic, payload, qos, retain) -> bool`` is MqttLink.publish (monitor/mqtt.py): it never raises and never
blocks the scheduler thread (paho queues; a disconnected link counts the message as dropped). Topics and payloads
are monitor.wire's (DESIGN.md wire contract): alerts at QoS 1 (monitor.alerts.event_payload), the unit's state at
QoS 1 retained, scores (monitor.wire.payloads.encode_row) and forecasts (encode_forecast) at QoS 0. A forecast of a
unit whose sensors the sink was not given is not published (its columns would have no names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from monitor.alerts.event_payload import event_to_json
from monitor.messages import AlertEvent, Forecast
from monitor.sinks import Sink
from monitor.wire.payloads import ScoredRow, encode_forecast, encode_row
from monitor.wire.topics import OUTPUT_PREFIX, alert_state_topic, alerts_topic, forecast_topic, scores_topic

Publish = Callable[[str, bytes, int, bool], bool]


class MqttSink(Sink):
    """Publishes the OutputStage's results under ``prefix`` (see the module docstring)."""

    def __init__(
        self,
        publish: Publish,
        prefix: str = OUTPUT_PREFIX,
        publish_scores: bool = True,
        publish_forecasts: bool = True,
        sensors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._publish = publish
        self._prefix = prefix
        self.takes_scores = publish_scores
        self.takes_forecasts = publish_forecasts
        self._sensors = {unit: tuple(names) for unit, names in (sensors or {}).items()}

    def alert(self, event: AlertEvent) -> None:
        self._publish(alerts_topic(self._prefix, event.unit), event_to_json(event), 1, False)

    def alert_state(self, unit: str, payload: bytes) -> None:
        self._publish(alert_state_topic(self._prefix, unit), payload, 1, True)

    def scored(self, rows: Sequence[ScoredRow]) -> None:
        for row in rows:
            self._publish(scores_topic(self._prefix, row.unit), encode_row(row), 0, False)

    def forecasts(self, forecasts: Sequence[Forecast]) -> None:
        for f in forecasts:
            sensors = self._sensors.get(f.unit)
            if sensors is not None:
                payload = encode_forecast(f.unit, f.model, f.ts, f.period_s, sensors, f.values.tolist())
                self._publish(forecast_topic(self._prefix, f.unit), payload, 0, False)
