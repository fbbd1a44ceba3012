"""Publishes simulated (or replayed) readings to an MQTT broker at a chosen speed, in a thread.

Payloads and topics come from :mod:`monitor.wire` (payloads, topics: the service parses the same format):
``plant/{unit}/readings`` with ``{"ts", "values"}`` or ``plant/{unit}/{sensor}`` with
``{"ts", "value"}``; ``ts`` is the event time. A NaN (dropout) is simply not sent. Ground-truth
fault events go to ``plantwatch-sim/faults/{unit}`` (QoS 1) when the simulated clock passes a
fault's start and end::

    {"event": "start", "unit": "reactor-01", "kind": "bias", "start": ..., "end": ..., "sensors": [...], "ts": ...}

Each readings message also carries ``sent``, the wall clock when it was published (monitor.wire.payloads): the
service measures publish-to-score latency from it, as event time is not the publication time faster than real
time, nor in a replay. Pacing: the row with event time ``ts`` is sent at ``wall_start + (ts - ts_first) / speed``;
``stagger=True`` spreads the units over each sampling period instead of sending every unit's row at
the period's start, as independent plant gateways do: unit ``i`` of ``N`` samples, stamps and sends
``(i / N - 1/2) * period_s`` off its row time (still inside the row the service aligns it to);
``speed=0`` sends as fast as the broker acknowledges. At QoS >= 1 at most ``max_pending``
messages are unacknowledged at any time, so a slow broker slows the publisher instead of
growing paho's queue without bound.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import paho.mqtt.client as mqtt

from monitor.wire.labels import Label
from monitor.wire.payloads import encode_readings, encode_sensor_value
from monitor.wire.topics import READINGS_TOPIC, SENSOR_TOPIC, SIM_FAULTS_TOPIC
from simulators.broker import BrokerOptions
from simulators.simulation import SimResult, Simulation

log = logging.getLogger(__name__)
PayloadShape = Literal["readings", "per-sensor"]


class PublishError(RuntimeError):
    """The publisher could not connect or lost its broker for good; the message says why."""


@dataclass(frozen=True)
class Row:
    """One unit's readings at one event time (NaN-free: missing sensors are absent)."""

    ts: float
    unit: str
    values: dict[str, float]


def result_rows(result: SimResult) -> Iterator[Row]:
    """Rows of a SimResult in time order, units in order within a time."""
    yield from _block_rows(result.timestamps, result.units, result.sensors, result.data)


def simulation_rows(sim: Simulation, duration_s: float | None = None) -> Iterator[Row]:
    """Rows of a running simulation, chunk by chunk; endless when ``duration_s`` is None."""
    end = None if duration_s is None else sim.start_epoch + duration_s
    for timestamps, data in sim.chunks():
        if end is not None and timestamps[0] >= end:
            return
        keep = timestamps.shape[0] if end is None else int(np.searchsorted(timestamps, end, side="left"))
        yield from _block_rows(timestamps[:keep], sim.units, sim.sensors, data[:, :keep])


def _block_rows(
    timestamps: np.ndarray, units: Sequence[str], sensors: Sequence[str], data: np.ndarray
) -> Iterator[Row]:
    values = data.transpose(1, 0, 2).tolist()  # [T][U][S] as Python floats (fast row access)
    for ts, per_unit in zip(timestamps.tolist(), values, strict=True):
        for unit, row in zip(units, per_unit, strict=True):
            yield Row(ts, unit, {s: v for s, v in zip(sensors, row, strict=True) if v == v})  # v == v: not NaN


def fault_events(labels: Iterable[Label]) -> list[tuple[float, str, bytes]]:
    """(event time, unit, JSON payload) for each fault's start and end, in time order."""
    events = []
    for label in labels:
        for event, ts in (("start", label.start), ("end", label.end)):
            body = {
                "event": event,
                "unit": label.unit,
                "kind": label.kind,
                "start": label.start,
                "end": label.end,
                "sensors": list(label.sensors),
                "ts": ts,
            }
            events.append((ts, label.unit, json.dumps(body).encode()))
    events.sort(key=lambda e: e[0])
    return events


class LivePublisher:
    """Publishes rows to a broker from a background thread.

    ``source``: a SimResult, a Simulation (streamed; endless unless ``duration_s``) or any
    iterable of :class:`Row` in time order (replay). ``events``: ground-truth fault events
    (defaults to the source's labels). After :meth:`wait` returns True, ``published`` and
    ``acked`` count reading messages (fault events are counted in ``events_published``), and
    ``error`` is None or the reason the run stopped early. While it runs, ``published`` and ``last_ts`` (the
    event time of the newest row sent) say how far it got.
    """

    def __init__(
        self,
        source: SimResult | Simulation | Iterable[Row],
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        speed: float = 1.0,
        qos: int = 1,
        payload: PayloadShape = "readings",
        options: BrokerOptions | None = None,
        events: Iterable[tuple[float, str, bytes]] | None = None,
        duration_s: float | None = None,
        readings_topic: str = READINGS_TOPIC,
        sensor_topic: str = SENSOR_TOPIC,
        faults_topic: str = SIM_FAULTS_TOPIC,
        max_pending: int = 1000,
        connect_timeout_s: float = 10.0,
        drain_timeout_s: float = 30.0,
        stagger: bool = False,
    ) -> None:
        if speed < 0 or not np.isfinite(speed):
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if payload not in ("readings", "per-sensor"):
            raise ValueError(f"payload must be 'readings' or 'per-sensor', got {payload!r}")
        self.options = options or BrokerOptions(host=host, port=port)
        if isinstance(source, SimResult):
            self._rows: Iterable[Row] = result_rows(source)
            default_events = fault_events(source.labels)
        elif isinstance(source, Simulation):
            self._rows = simulation_rows(source, duration_s)
            end = None if duration_s is None else source.start_epoch + duration_s
            default_events = fault_events(source.labels(end))
        else:
            self._rows = source
            default_events = []
        # Event-time offset per unit (stagger): evenly spaced in unit order, so the row order stays the send order.
        self._offsets: dict[str, float] = {}
        if stagger:
            if not isinstance(source, SimResult | Simulation):
                raise ValueError("stagger needs a SimResult or Simulation source (its units and period)")
            n = len(source.units)
            self._offsets = {u: (i / n - 0.5) * source.period_s for i, u in enumerate(source.units)}
        self._events = sorted(events, key=lambda e: e[0]) if events is not None else default_events
        self.speed = speed
        self.qos = qos
        self.payload = payload
        self.readings_topic = readings_topic
        self.sensor_topic = sensor_topic
        self.faults_topic = faults_topic
        self.max_pending = max_pending
        self.connect_timeout_s = connect_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.published = 0
        self.acked = 0
        self.events_published = 0
        self.last_ts = math.nan  # event time of the newest row sent (progress lines)
        self.error: str | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._connect_refusal: str | None = None
        self._cond = threading.Condition()
        self._event_mids: set[int] = set()
        self._early_acks: set[int] = set()
        self._events_acked = 0
        self._thread = threading.Thread(target=self._run, name="sim-publisher", daemon=True)

    # -- control -------------------------------------------------------------------------------
    def start(self) -> LivePublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to stop after the current message (it still waits for pending acks)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the run to finish; True when it has."""
        return self.done.wait(timeout_s)

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    @property
    def pending(self) -> int:
        with self._cond:
            return self.published + self.events_published - self.acked - self._events_acked

    # -- paho callbacks (network thread: never raise) --------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._connect_refusal = str(reason)
            log.warning("broker refused the connection: %s", reason)
        self._connected.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            if mid in self._event_mids:
                self._event_mids.discard(mid)
                self._events_acked += 1
            else:
                # An ack can arrive before publish() returns its mid; remember it and settle later.
                self._early_acks.add(mid)
            self._cond.notify_all()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        client = self.options.client()
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        try:
            try:
                client.connect(self.options.host, self.options.port, keepalive=self.options.keepalive_s)
            except (OSError, ValueError) as exc:
                raise PublishError(f"cannot connect to broker {self.options.host}:{self.options.port}: {exc}") from exc
            client.loop_start()
            try:
                if not self._connected.wait(self.connect_timeout_s):
                    raise PublishError(f"no answer from broker {self.options.host}:{self.options.port}")
                if self._connect_refusal is not None:
                    raise PublishError(f"broker refused the connection: {self._connect_refusal}")
                self._publish_all(client)
                self._drain()
            finally:
                client.disconnect()
                client.loop_stop()
        except PublishError as exc:
            self.error = str(exc)
            log.error("%s", exc)
        except Exception as exc:  # a publisher thread must report, not die silently
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("publisher failed: %s", self.error, exc_info=True)
        finally:
            self.done.set()

    def _publish_all(self, client: mqtt.Client) -> None:
        events = list(self._events)
        next_event = 0
        wall_start = time.monotonic()
        first_ts: float | None = None
        for row in self._rows:
            if self._stop.is_set():
                return
            if first_ts is None:
                first_ts = row.ts
            ts = row.ts + self._offsets.get(row.unit, 0.0)
            if self.speed > 0:
                delay = wall_start + (ts - first_ts) / self.speed - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            while next_event < len(events) and events[next_event][0] <= row.ts:
                _, unit, body = events[next_event]
                self._send(client, self.faults_topic.format(unit=unit), body, max(self.qos, 1), event=True)
                next_event += 1
            if not row.values:
                continue  # every sensor dropped out: no message at all
            sent = time.time()  # the wall clock at publication: event time is not it, faster than real time
            if self.payload == "readings":
                body = encode_readings(ts, row.values, sent=sent)
                self._send(client, self.readings_topic.format(unit=row.unit), body, self.qos)
            else:
                for sensor, value in row.values.items():
                    topic = self.sensor_topic.format(unit=row.unit, sensor=sensor)
                    self._send(client, topic, encode_sensor_value(ts, value, sent=sent), self.qos)
            self.last_ts = ts
        # Events past the last row (a fault that ends with the run) still go out.
        for _, unit, body in events[next_event:]:
            self._send(client, self.faults_topic.format(unit=unit), body, max(self.qos, 1), event=True)

    def _send(self, client: mqtt.Client, topic: str, body: bytes, qos: int, event: bool = False) -> None:
        with self._cond:
            while self._pending_locked() >= self.max_pending and not self._stop.is_set():
                self._cond.wait(timeout=1.0)
        info = client.publish(topic, body, qos=qos)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        with self._cond:
            if event:
                self.events_published += 1
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                    self._events_acked += 1
                else:
                    self._event_mids.add(info.mid)
            else:
                self.published += 1
            self._settle_locked()

    def _settle_locked(self) -> None:
        # Every early ack that is not an event is a reading ack.
        self.acked += len(self._early_acks)
        self._early_acks.clear()

    def _pending_locked(self) -> int:
        self._settle_locked()
        return self.published + self.events_published - self.acked - self._events_acked

    def _drain(self) -> None:
        """Wait (bounded) until the broker has acknowledged everything sent."""
        deadline = time.monotonic() + self.drain_timeout_s
        with self._cond:
            while self._pending_locked() > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishError(f"{self._pending_locked()} message(s) still unacknowledged after drain timeout")
                self._cond.wait(timeout=min(remaining, 0.5))
