"""Ingest: one MQTT message (topic, payload bytes) -> a validated Reading, or Rejected with a reason.

API:
    parser = Parser.from_config(cfg)        # or Parser(units={"R1": ("a", "b")}, limits={"R1": {"a": (0, 9)}}, ...)
    parser.parse(topic, payload, received_at) -> Reading | Rejected    # Reading.out_of_range: values refused

The format is monitor.wire's (topics: the templates and their matching; payloads: the shapes; timestamps: the
ISO 8601 rule); this module is its validation. Pure and O(payload): the paho network thread calls it for every
message, so it never raises (any unexpected error becomes Rejected("malformed")) and never blocks. Checks,
cheapest first:
size (before decoding), topic (known unit, known sensor), UTF-8, strict JSON (NaN/Infinity/1e999
-> non_finite; deep nesting -> malformed), shape, value types (bool, string, null, list, object
-> type), magnitude (beyond float32, e.g. 1e39 or 1e300, which the float32 buffers would hold as inf ->
non_finite: messages.storable, the one value rule), timestamp (epoch seconds or ISO 8601 with a zone;
missing -> received_at; too far ahead of the receive clock -> future). A message with any such bad value is
refused whole, so a buffer only ever sees complete, finite, float32-representable, known values. An optional
``sent`` (the publisher's wall clock) becomes ``Reading.sent_at`` when it is a positive finite number and is ignored
otherwise: only the publish-to-score latency reads it.

Last, physical limits (``limits``, from ``units[].limits``; monitor.validation, the rule the backtest shares): a
value outside its sensor's ``[min, max]`` is taken out of ``Reading.values`` into ``Reading.out_of_range``, and the
rest of the message goes on. Unlike the checks above, this refuses a value, not the message: the other sensors of
a readings message are genuine, and the out-of-range sensor must reach the buffers as "missing, out of range" so
its hold-over applies and the sensor detector names it. The buffer stage counts each such value in
``values_rejected{reason="out_of_range"}`` when the message is otherwise placed, or the message in
``readings_rejected{reason="out_of_range"}`` when every value of it was out of range (``values`` is then empty).
Late and duplicate readings, and readings off the unit's own timeline (``clock``, monitor.timeline), are judged by
the buffers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.config import PlantwatchConfig
from monitor.messages import Reading, Rejected, RejectReason, storable
from monitor.validation import Bounds, split_by_limits, unit_limits
from monitor.wire.timestamps import NoZoneError, epoch_from_iso
from monitor.wire.topics import READINGS_TOPIC, SENSOR_TOPIC, topic_pattern


class _Refused(Exception):
    """Raised inside the JSON decoder hooks to stop decoding early."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RejectReason = reason
        self.detail = detail


def _refuse_constant(name: str) -> float:
    raise _Refused("non_finite", f"non-finite constant {name}")


# The C scanner parses numbers itself; only NaN / Infinity / -Infinity reach Python (and are refused).
# 1e999 parses to inf and is caught by the finiteness check in _value; integers beyond Python's
# int-string limit (4300 digits) make the decoder raise ValueError (malformed).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _sent(raw: Any) -> float:
    """The optional ``sent`` (publication wall clock, epoch seconds): a positive finite number, else NaN. It feeds a
    latency metric only, never the data, so a bad one is ignored rather than refusing the readings."""
    if (type(raw) is float or type(raw) is int) and 0.0 < raw < math.inf:
        return float(raw)
    return math.nan


def _value(sensor: str, raw: Any) -> float:
    """A JSON number as a float the float32 buffers can hold; bool, str, None, list and dict are refused (bool is
    not an int here). Beyond float32's range counts as ``non_finite``: that is what the buffer would store (inf)."""
    kind = type(raw)
    if kind is float:
        value = raw
    elif kind is int:
        try:
            value = float(raw)
        except OverflowError:
            raise _Refused("non_finite", f"{sensor}: integer out of range") from None
    else:
        raise _Refused("type", f"{sensor}: value is {kind.__name__}, not a number")
    if not storable(value):  # also nan and +-inf
        raise _Refused("non_finite", f"{sensor}: {value!r} is not a finite float32")
    return float(value)


class Parser:
    """Validates messages against the configured units, sensors and topic templates."""

    def __init__(
        self,
        units: Mapping[str, Sequence[str]],
        readings_template: str = READINGS_TOPIC,
        sensor_template: str | None = SENSOR_TOPIC,
        max_payload_bytes: int = 65536,
        max_clock_skew_s: float = 120.0,
        limits: Mapping[str, Bounds] | None = None,
    ) -> None:
        self._sensors: dict[str, frozenset[str]] = {unit: frozenset(s) for unit, s in units.items()}
        # unit -> sensor -> (min, max); only units with limits, so the common case costs one dict miss
        self._limits: dict[str, Bounds] = {u: b for u, b in (limits or {}).items() if b}
        self._readings = topic_pattern(readings_template)
        self._sensor = topic_pattern(sensor_template) if sensor_template is not None else None
        self._max_payload_bytes = max_payload_bytes
        self._max_clock_skew_s = max_clock_skew_s

    @classmethod
    def from_config(cls, cfg: PlantwatchConfig) -> Parser:
        return cls(
            units={u.name: tuple(u.sensors) for u in cfg.units},
            readings_template=cfg.mqtt.topics.readings,
            sensor_template=cfg.mqtt.topics.sensor,
            max_payload_bytes=cfg.limits.max_payload_bytes,
            max_clock_skew_s=cfg.limits.max_clock_skew_s,
            limits=unit_limits(cfg),
        )

    def parse(self, topic: str, payload: bytes, received_at: float) -> Reading | Rejected:
        """Validate one message; never raises."""
        try:
            return self._parse(topic, payload, received_at)
        except _Refused as exc:
            return Rejected(exc.reason, exc.detail, self._unit_of(topic))
        except Exception as exc:  # a bug must not kill the paho thread; the reading is refused and counted
            return Rejected("malformed", f"unexpected {type(exc).__name__}: {exc}", self._unit_of(topic))

    def _unit_of(self, topic: str) -> str | None:
        match = self._readings.match(topic) or (self._sensor.match(topic) if self._sensor else None)
        unit = match.group("unit") if match else None
        return unit if unit in self._sensors else None  # only configured ids ever reach a label or a log

    def _parse(self, topic: str, payload: bytes, received_at: float) -> Reading | Rejected:
        if len(payload) > self._max_payload_bytes:
            return Rejected("too_large", f"{len(payload)} bytes > {self._max_payload_bytes}")
        sensor: str | None = None
        match = self._readings.match(topic)
        if match is None and self._sensor is not None:
            match = self._sensor.match(topic)
            if match is not None:
                sensor = match.group("sensor")
        if match is None:
            return Rejected("malformed", "topic matches no input template")
        unit = match.group("unit")
        known = self._sensors.get(unit)
        if known is None:
            return Rejected("unknown_unit", "unit not configured")
        if sensor is not None and sensor not in known:
            return Rejected("unknown_sensor", f"sensor {sensor[:64]!r} not configured", unit)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return Rejected("malformed", "payload is not UTF-8", unit)
        try:
            doc = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            return Rejected("malformed", f"invalid JSON: {str(exc)[:80]}", unit)

        if sensor is None:
            if not isinstance(doc, dict) or "values" not in doc:
                return Rejected("malformed", "readings payload must be an object with 'values'", unit)
            raw_values = doc["values"]
            if not isinstance(raw_values, dict):
                return Rejected("malformed", "'values' must be an object", unit)
            if not raw_values:
                return Rejected("schema", "'values' is empty", unit)
            values: dict[str, float] = {}
            for name, raw in raw_values.items():
                if name not in known:
                    return Rejected("unknown_sensor", f"sensor {str(name)[:64]!r} not configured", unit)
                values[name] = _value(name, raw)
        elif isinstance(doc, dict):
            if "value" not in doc:
                return Rejected("malformed", "sensor payload must be a number or an object with 'value'", unit)
            values = {sensor: _value(sensor, doc["value"])}
        elif type(doc) is float or type(doc) is int:
            values = {sensor: _value(sensor, doc)}
            doc = {}
        elif isinstance(doc, list):
            return Rejected("malformed", "sensor payload must be a number or an object", unit)
        else:
            values = {sensor: _value(sensor, doc)}  # raises "type" for strings, bools and nulls

        ts = self._timestamp(doc.get("ts"), received_at)
        if ts > received_at + self._max_clock_skew_s:
            return Rejected("future", f"ts {ts:.3f} is {ts - received_at:.1f} s ahead of the clock", unit)
        sent = _sent(doc.get("sent"))
        bounds = self._limits.get(unit)
        if bounds is not None:
            values, out_of_range = split_by_limits(values, bounds)
            if out_of_range:
                return Reading(unit, ts, values, received_at, out_of_range=out_of_range, sent_at=sent)
        return Reading(unit=unit, ts=ts, values=values, received_at=received_at, sent_at=sent)

    @staticmethod
    def _timestamp(raw: Any, received_at: float) -> float:
        if raw is None:
            return received_at
        kind = type(raw)
        if kind is float or kind is int:
            try:
                ts = float(raw)
            except OverflowError:
                raise _Refused("schema", "ts out of range") from None
            if not (0.0 < ts < math.inf):  # also refuses nan
                raise _Refused("schema", "ts must be positive finite epoch seconds")
            return ts
        if kind is str:
            try:
                return epoch_from_iso(raw, naive_is_utc=False)
            except NoZoneError:
                raise _Refused("schema", "ISO ts needs a zone (Z or +hh:mm)") from None
            except ValueError:
                raise _Refused("schema", f"ts {raw[:40]!r} is not ISO 8601") from None
        raise _Refused("schema", f"ts is {type(raw).__name__}")
