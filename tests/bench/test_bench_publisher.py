"""The benchmark publisher over a real mosquitto: the raw MQTT client, the spread and burst arrivals, shards, stop.

What the pipeline and memory benchmarks assume of it: every message arrives, at QoS 1 each is acknowledged, a
spread tick stamps unit i at i/N of the period and sends the units in that order, a burst tick stamps every unit
with the tick, shards cover the fleet with the fleet's offsets, and SIGTERM ends a paced run on a whole tick.
No timings are asserted beyond the offsets the publisher writes into the payloads itself.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks._harness import (
    arrival_offsets,
    publisher_result,
    start_publisher,
    stop_publisher,
    unit_names,
)
from benchmarks._rawmqtt import RawPublisher, remaining_length
from tests.kit import Broker


def test_remaining_length_is_mqtts_variable_length_encoding() -> None:
    assert remaining_length(0) == b"\x00"
    assert remaining_length(127) == b"\x7f"
    assert remaining_length(128) == b"\x80\x01"
    assert remaining_length(16_383) == b"\xff\x7f"
    assert remaining_length(16_384) == b"\x80\x80\x01"
    assert remaining_length(268_435_455) == b"\xff\xff\xff\x7f"


@pytest.mark.parametrize("qos", [0, 1])
def test_raw_publisher_delivers_in_order_through_a_small_window(
    mosquitto: Broker, mqtt_recorder, unique_prefix: str, qos: int
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/#")
    pub = RawPublisher(mosquitto.host, mosquitto.port, qos=qos, inflight=3, client_id=f"{unique_prefix}-pub")
    try:
        pub.publish_many([(f"{unique_prefix}/a".encode(), str(i).encode()) for i in range(40)])
        pub.publish(f"{unique_prefix}/b".encode(), b"x" * 300)  # a remaining length of two bytes
        pub.drain(10)
        assert pub.pending == 0
    finally:
        pub.close()
    got = recorder.wait_for(count=41, timeout_s=10)
    assert [m.payload for m in got if m.topic.endswith("/a")] == [str(i).encode() for i in range(40)]
    assert [m.payload for m in got if m.topic.endswith("/b")] == [b"x" * 300]


def test_raw_publisher_refuses_qos_2(mosquitto: Broker) -> None:
    with pytest.raises(ValueError, match="qos"):
        RawPublisher(mosquitto.host, mosquitto.port, qos=2, inflight=1, client_id="never")


def test_arrival_offsets() -> None:
    assert np.array_equal(arrival_offsets(4, 1.0, "burst"), np.zeros(4))
    assert np.allclose(arrival_offsets(4, 2.0, "spread"), [0.0, 0.5, 1.0, 1.5])
    with pytest.raises(ValueError, match="arrival"):
        arrival_offsets(4, 1.0, "sideways")


def _paced(broker: Broker, prefix: str, arrival: str, **extra: object) -> dict[str, object]:
    return {
        "mode": "paced",
        "port": broker.port,
        "units": 4,
        "seconds": 2,
        "backfill": 2,
        "arrival": arrival,
        "qos": 1,
        "topic": f"{prefix}/plant/{{unit}}/readings",
        **extra,
    }


def _stamps(messages: list, prefix: str) -> dict[str, list[float]]:
    return {
        unit: [m.json()["ts"] for m in messages if m.topic == f"{prefix}/plant/{unit}/readings"]
        for unit in unit_names(4)
    }


@pytest.mark.parametrize("arrival", ["spread", "burst"])
def test_paced_arrival_stamps_each_unit_at_its_offset(
    mosquitto: Broker, mqtt_recorder, unique_prefix: str, arrival: str
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/plant/+/readings")
    t_start = float(int(time.time()) + 2)
    result = publisher_result(start_publisher(_paced(mosquitto, unique_prefix, arrival, t_start=t_start)), 60)
    assert result["published"] == 4 * (2 + 2)
    assert result["ticks"] == 2 and result["arrival"] == arrival and result["t_start"] == t_start
    messages = recorder.wait_for(count=16, timeout_s=20)
    offsets = arrival_offsets(4, 1.0, arrival)
    for i, stamps in enumerate(_stamps(messages, unique_prefix).values()):
        # two back-fill rows before the first tick, then the two ticks, each at the unit's own offset
        assert stamps == pytest.approx([t_start + k + offsets[i] for k in (-2, -1, 0, 1)], abs=1e-3)
    if arrival == "spread":  # within a live tick the units go out in the order of their offsets
        live = [m.topic.split("/")[2] for m in messages if m.json()["ts"] >= t_start + 1]
        assert live == unit_names(4)


def test_shards_cover_the_fleet_with_its_offsets(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/plant/+/readings")
    t_start = float(int(time.time()) + 2)
    procs = [
        start_publisher(_paced(mosquitto, unique_prefix, "spread", t_start=t_start, first_unit=lo, shard_units=2))
        for lo in (0, 2)
    ]
    assert [publisher_result(p, 60)["published"] for p in procs] == [8, 8]
    stamps = _stamps(recorder.wait_for(count=16, timeout_s=20), unique_prefix)
    for i, unit in enumerate(unit_names(4)):
        assert stamps[unit] == pytest.approx([t_start + k + i / 4 for k in (-2, -1, 0, 1)], abs=1e-3)


def test_stop_ends_a_paced_run_on_a_whole_tick(mosquitto: Broker, mqtt_recorder, unique_prefix: str) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/plant/+/readings")
    proc = start_publisher(_paced(mosquitto, unique_prefix, "spread", seconds=600, t_start=float(int(time.time()) + 2)))
    recorder.wait_for(count=4 * 3, timeout_s=30)  # the back-fill and the first tick
    result = stop_publisher(proc, 30)
    assert 1 <= result["ticks"] < 600
    assert result["published"] == 4 * (2 + result["ticks"])
    got = recorder.wait_for(count=result["published"], timeout_s=20)
    assert all(len(s) == 2 + result["ticks"] for s in _stamps(got, unique_prefix).values())
