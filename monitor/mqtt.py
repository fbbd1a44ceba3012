"""The broker link: a paho-mqtt 2.x client with a persistent session, a retained status and a bounded outbox.

API:
    link = MqttLink(cfg.mqtt, subscriptions=["plant/+/readings"], handler=fn, metrics=metrics)
    link.start()                                 # connect_async + loop_start: never blocks, retries forever
    link.connected.wait(10)                      # threading.Event, set between CONNACK and a disconnect
    link.publish(topic, payload, qos=1, retain=False) -> bool    # False: refused by the bounded outbox
    link.close_intake()                          # stop acknowledging: later messages are redelivered next session
    link.stop(timeout_s) -> bool                 # retained `offline`, wait for it, disconnect, join the loop
    read_retained(cfg.mqtt, "plantwatch/alerts/+/state", timeout_s) -> {topic: payload}
    client_settings_problem(cfg.mqtt) -> str | None   # password file and TLS files as the client loads them

``handler(topic, payload, received_at)`` runs on paho's network thread for every message: it must be
O(1) and must not block (size check, parse, put_nowait). It is wrapped so that nothing it raises
reaches paho (an exception there would kill the network thread).

Why these settings:
- Fixed client id, clean_start False + session expiry (v5) / clean_session False (3.1.1): the broker
  keeps our subscriptions and queues QoS 1 readings while the service restarts.
- Manual acknowledgement: a reading is acknowledged once it is in the ingest queue; after
  close_intake() (clean stop) nothing more is acknowledged, so the broker redelivers those readings
  to the next session instead of us dropping them during the drain.
- Subscribe in on_connect (survives reconnects); MQTT 5 retain handling 1 so a resubscription does
  not replay retained readings as duplicates.
- `<prefix>/status`: will `offline` (retained, QoS 1); `online` retained on every connect (topics and
  payloads: monitor.wire).
- reconnect_delay_set(min, max) with jitter on both bounds, re-drawn at each disconnect, so a fleet
  of instances does not reconnect in lockstep; max_queued_messages_set bounds the outbox.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from monitor.config import MqttConfig
from monitor.metrics import Metrics
from monitor.wire import topics as wire_topics
from monitor.wire.payloads import STATUS_OFFLINE, STATUS_ONLINE

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, float], bool]  # returns whether the message was taken (then it is acked)


def status_topic(cfg: MqttConfig) -> str:
    return wire_topics.status_topic(cfg.topics.prefix)


def _protocol(cfg: MqttConfig) -> MQTTProtocolVersion:
    return mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311


def _new_client(cfg: MqttConfig, client_id: str, persistent: bool, manual_ack: bool) -> mqtt.Client:
    protocol = _protocol(cfg)
    if protocol == mqtt.MQTTv5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, manual_ack=manual_ack)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=not persistent,
            manual_ack=manual_ack,
        )
    password = cfg.resolved_password()
    if cfg.username is not None or password is not None:
        client.username_pw_set(cfg.username, password)
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
            certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
            keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if cfg.tls.insecure:
            log.warning("mqtt.tls.insecure is set: the broker's host name is not verified")
            client.tls_insecure_set(True)
    return client


def _connect_properties(cfg: MqttConfig, persistent: bool) -> Properties | None:
    if cfg.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = cfg.session_expiry_s if persistent else 0
    return props


class MqttLink:
    """One broker connection for the service's input and output."""

    def __init__(
        self,
        cfg: MqttConfig,
        subscriptions: Sequence[str],
        handler: MessageHandler | None,
        metrics: Metrics | None = None,
        publisher_only: bool = False,
    ) -> None:
        """``publisher_only``: the scorer process's link (monitor/scorer.py): client id ``<client_id>-scorer``, no
        subscriptions, no session kept (paho retries its own unacknowledged QoS 1 messages), and no status or will:
        the front's link owns ``<prefix>/status``."""
        self._cfg = cfg
        self._publisher_only = publisher_only
        self._subscriptions = list(subscriptions)
        self._handler = handler
        self._metrics = metrics
        self._status_topic = status_topic(cfg)
        self._intake_open = True
        self._stopping = False
        self.connected = threading.Event()
        # Set once the broker acknowledged our subscriptions: on a new session, a reading published between CONNACK
        # and SUBACK is not routed to us, so readiness waits for this, not for `connected`.
        self.subscribed = threading.Event()
        if publisher_only:
            self._client = _new_client(cfg, f"{cfg.client_id}-scorer", persistent=False, manual_ack=False)
        else:
            self._client = _new_client(cfg, cfg.client_id, persistent=True, manual_ack=True)
            self._client.will_set(self._status_topic, STATUS_OFFLINE, qos=1, retain=True)
        self._client.max_queued_messages_set(cfg.max_queued_messages)
        self._set_backoff()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_connect_fail = self._on_connect_fail

    def _clean_start(self) -> Any:
        if self._publisher_only:
            return True
        return False if self._cfg.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY

    def _set_backoff(self) -> None:
        low = self._cfg.reconnect_min_s * random.uniform(1.0, 1.5)
        high = max(low, self._cfg.reconnect_max_s * random.uniform(0.75, 1.0))
        self._client.reconnect_delay_set(max(1, round(low)), max(1, round(high)))

    def start(self) -> None:
        log.info(
            "connecting to MQTT %s:%d (protocol %s, client id %s)",
            self._cfg.host,
            self._cfg.port,
            self._cfg.protocol,
            self._cfg.client_id,
        )
        self._client.connect_async(
            self._cfg.host,
            self._cfg.port,
            keepalive=self._cfg.keepalive_s,
            clean_start=self._clean_start(),
            properties=_connect_properties(self._cfg, persistent=not self._publisher_only),
        )
        self._client.loop_start()

    # paho callbacks: all on the network thread; none may raise or block.

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self._cfg.host, self._cfg.port, reason_code)
            return
        log.info("MQTT connected (session present: %s)", flags.session_present)
        if self._subscriptions:
            if self._cfg.protocol == "5":
                opts = SubscribeOptions(qos=self._cfg.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
                client.subscribe([(f, opts) for f in self._subscriptions])
            else:
                client.subscribe([(f, int(self._cfg.qos)) for f in self._subscriptions])
        else:
            self.subscribed.set()
        if not self._publisher_only:
            client.publish(self._status_topic, STATUS_ONLINE, qos=1, retain=True)
        self.connected.set()
        if self._metrics is not None:
            self._metrics.mqtt_connected.set(1)
            self._metrics.mqtt_connects.inc()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("MQTT broker refused subscriptions %s: %s", self._subscriptions, ", ".join(refused))
            return
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if self._metrics is not None:
            self._metrics.mqtt_connected.set(0)
        if not self._stopping:
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)
            if self._metrics is not None:
                self._metrics.mqtt_disconnects.inc()
            self._set_backoff()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.warning("MQTT broker %s:%d unreachable; retrying", self._cfg.host, self._cfg.port)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if not self._intake_open or self._handler is None:
                return  # not acknowledged: the broker redelivers it to our next session
            if self._handler(msg.topic, bytes(msg.payload), time.time()):
                client.ack(msg.mid, msg.qos)
        except Exception:
            log.exception("MQTT message handler failed on %r", msg.topic[:128])
            if self._metrics is not None:
                self._metrics.stage_errors.labels("ingest").inc()
            try:
                client.ack(msg.mid, msg.qos)  # a message that breaks the handler must not be redelivered forever
            except Exception:
                log.exception("MQTT ack failed")

    # publishing (any thread)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Queue a message for the broker; False (and counted) if the bounded outbox refused it."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            if self._metrics is not None:
                self._metrics.queue_dropped.labels("publish").inc()
            return False
        # MQTT_ERR_NO_CONN: QoS > 0 stays queued and is sent after the reconnect; QoS 0 is gone.
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or qos > 0

    def close_intake(self) -> None:
        """Stop taking messages: from now on they are not acknowledged (redelivered to the next session)."""
        self._intake_open = False

    def stop(self, timeout_s: float) -> bool:
        """Publish retained `offline`, wait for it, disconnect and join the network thread."""
        deadline = time.monotonic() + timeout_s
        self._intake_open = False
        ok = True
        if self._publisher_only:
            ok = self._flush(deadline)
        elif self.connected.is_set():
            info = self._client.publish(self._status_topic, STATUS_OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except RuntimeError as exc:
                log.warning("could not publish offline status: %s", exc)
            ok = info.is_published()
            if not ok:
                log.warning("offline status not confirmed by the broker before the deadline")
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        if self._metrics is not None:
            self._metrics.mqtt_connected.set(0)
        return ok

    def _flush(self, deadline: float) -> bool:
        """Wait until paho holds no unacknowledged QoS 1 message (the last batches' alerts), or the deadline."""
        while self.connected.is_set() and time.monotonic() < deadline:
            if not self._client._out_messages:  # paho's in-flight and queued outgoing messages
                return True
            time.sleep(0.02)
        return not self._client._out_messages


def sync_topic(cfg: MqttConfig) -> str:
    """A fresh end-of-retained marker topic, outside every tree the service publishes to (alerts, scores...)."""
    return wire_topics.sync_topic(cfg.topics.prefix, uuid.uuid4().hex)


def read_retained(cfg: MqttConfig, topic_filter: str, timeout_s: float = 5.0) -> dict[str, bytes] | None:
    """Every retained message under ``topic_filter`` ({topic: payload}); None if the broker was unreachable.

    MQTT has no "end of retained messages" signal, so a short-lived clean-session client subscribes, in one
    SUBSCRIBE, to the filter and to a fresh marker topic of its own (``<prefix>/_sync/<uuid>``), then, once
    SUBACK is in, publishes an empty non-retained QoS 1 message on the marker topic: when it comes back, every
    retained message is in.

    Why the marker lives outside the alert tree: an earlier marker on a topic the filter matched
    (``<prefix>/alerts/.sync-XXXX/state``) was seen by every subscriber of the alert topics, an unexplained
    "state" of a unit that does not exist. Under ``<prefix>/_sync/`` only a subscriber of the whole prefix
    (``<prefix>/#``) sees it, as an empty message on a topic that names its purpose.

    Why the marker comes after the retained messages: the broker queues the retained messages for this client
    while it handles the SUBSCRIBE, before it reads the marker PUBLISH that follows SUBACK on the same
    connection, and it sends one client's QoS 1 messages from one queue in that order. The MQTT spec only
    promises order per topic, so this rests on the broker (mosquitto does so; the old marker, also on a topic
    of its own, rested on the same). If a broker did reorder, a retained state arriving after the marker is
    missed: that unit's alert state starts fresh, as if nothing had been retained; the timeout bounds the wait.
    Rejected alternatives: waiting for a quiet period after SUBACK (a guess that is slow when idle and wrong
    under load); MQTT 5 request/response (not in 3.1.1, and it still needs a topic to answer on).
    """
    marker_topic = sync_topic(cfg)
    found: dict[str, bytes] = {}
    done = threading.Event()
    subscribed = threading.Event()
    client = _new_client(cfg, f"{cfg.client_id}-state-{uuid.uuid4().hex[:6]}", persistent=False, manual_ack=False)

    def on_connect(c: mqtt.Client, u: Any, f: mqtt.ConnectFlags, rc: ReasonCode, p: Properties | None) -> None:
        if not rc.is_failure:
            c.subscribe([(topic_filter, 1), (marker_topic, 1)])

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode], p: Properties | None) -> None:
        subscribed.set()
        c.publish(marker_topic, b"", qos=1)

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == marker_topic:
            done.set()
        elif msg.retain:
            found[msg.topic] = bytes(msg.payload)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(cfg.host, cfg.port, keepalive=max(cfg.keepalive_s, 10))
    except OSError as exc:
        log.warning("cannot read retained alert state from %s:%d: %s", cfg.host, cfg.port, exc)
        return None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            log.warning("retained alert state: no end marker within %.1f s (%d topics read)", timeout_s, len(found))
            if not subscribed.is_set():
                return None
        return dict(found)
    finally:
        client.disconnect()
        client.loop_stop()


def client_settings_problem(cfg: MqttConfig) -> str | None:
    """Why the MQTT client cannot be built from ``cfg`` (password file, TLS files), as "field.path: message".

    Builds the client exactly as the service does (nothing connects), so that `check-config` and `run` refuse
    the same unreadable password file or unloadable certificate; the password itself is never in the message.
    """
    if cfg.password_file is not None:
        try:
            cfg.resolved_password()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            return f"mqtt.password_file: cannot read {cfg.password_file}: {reason}"
    try:
        _new_client(cfg, f"{cfg.client_id}-preflight", persistent=False, manual_ack=False)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return f"mqtt.tls: cannot load the TLS settings: {exc}"
    return None
