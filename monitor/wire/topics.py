"""MQTT topics: the input templates the service subscribes to and the topics it publishes under its prefix.

Input (the defaults; ``mqtt.topics.readings`` / ``.sensor`` configure them)::

    plant/{unit}/readings       one message per unit and event time (monitor.wire.payloads.encode_readings)
    plant/{unit}/{sensor}       one message per sensor reading (encode_sensor_value), or a bare number

A template holds ``{unit}`` (and ``{sensor}``) placeholders, each one topic level: ``topic_filter`` is its MQTT
subscription filter, ``topic_pattern`` the regex that takes a topic apart.

Output, under ``prefix`` (``mqtt.topics.prefix``, default ``plantwatch``)::

    <prefix>/status                 retained online / offline (the will)
    <prefix>/alerts/{unit}          alert events (monitor.alerts.event_payload.event_to_json)
    <prefix>/alerts/{unit}/state    retained alert state (monitor.alerts.board.AlertBoard.state_payload)
    <prefix>/scores/{unit}          per scored row (monitor.wire.payloads.encode_scores)
    <prefix>/forecast/{unit}        per forecast (monitor.wire.payloads.encode_forecast)
    <prefix>/_sync/{marker}         empty: the end marker of reading the retained states back (monitor.mqtt)

Ground truth from the simulator goes to ``plantwatch-sim/faults/{unit}`` (tests and benchmarks score with it).
"""

from __future__ import annotations

import re

READINGS_TOPIC = "plant/{unit}/readings"
SENSOR_TOPIC = "plant/{unit}/{sensor}"
OUTPUT_PREFIX = "plantwatch"
SIM_FAULTS_TOPIC = "plantwatch-sim/faults/{unit}"
ANY = "+"  # one topic level of any value: status_topic(prefix), alert_state_topic(prefix, ANY) subscribe to all


def topic_filter(template: str) -> str:
    """The MQTT subscription filter of a topic template: each placeholder becomes ``+``."""
    return template.replace("{unit}", ANY).replace("{sensor}", ANY)


def topic_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the topics of ``template``, with groups ``unit`` (and ``sensor``)."""
    pattern = re.escape(template)
    pattern = pattern.replace(re.escape("{unit}"), r"(?P<unit>[^/]+)")
    pattern = pattern.replace(re.escape("{sensor}"), r"(?P<sensor>[^/]+)")
    return re.compile(f"^{pattern}$")


def status_topic(prefix: str) -> str:
    return f"{prefix}/status"


def alerts_topic(prefix: str, unit: str) -> str:
    return f"{prefix}/alerts/{unit}"


def alert_state_topic(prefix: str, unit: str) -> str:
    return f"{prefix}/alerts/{unit}/state"


def scores_topic(prefix: str, unit: str) -> str:
    return f"{prefix}/scores/{unit}"


def forecast_topic(prefix: str, unit: str) -> str:
    return f"{prefix}/forecast/{unit}"


def sync_topic(prefix: str, marker: str) -> str:
    """Outside every tree the service publishes to (alerts, scores...): only a subscriber of ``<prefix>/#`` sees it."""
    return f"{prefix}/_sync/{marker}"


def unit_of_alert_state(prefix: str, topic: str) -> str | None:
    """The unit of an ``<prefix>/alerts/{unit}/state`` topic; None for any other topic."""
    head, tail = f"{prefix}/alerts/", "/state"
    if not (topic.startswith(head) and topic.endswith(tail)):
        return None
    unit = topic[len(head) : -len(tail)]
    return unit if unit and "/" not in unit else None
