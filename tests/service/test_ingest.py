"""Ingest: every bad input is refused under its reason; good inputs become Readings (RELIABILITY B1-B4, B6, B9, B11)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.ingest import Parser
from monitor.messages import Reading, Rejected
from monitor.wire.topics import topic_filter

NOW = 1_732_590_000.0


@pytest.fixture
def parser() -> Parser:
    return Parser(units={"R1": ("temp", "pressure")}, max_payload_bytes=256, max_clock_skew_s=120.0)


def _reading(parser: Parser, topic: str, payload: bytes | str) -> Reading:
    raw = payload.encode() if isinstance(payload, str) else payload
    result = parser.parse(topic, raw, NOW)
    assert isinstance(result, Reading), result
    return result


def test_readings_payload(parser: Parser) -> None:
    r = _reading(parser, "plant/R1/readings", json.dumps({"ts": NOW - 1.5, "values": {"temp": 351.2, "pressure": 5}}))
    assert r.unit == "R1"
    assert r.ts == NOW - 1.5
    assert r.values == {"temp": 351.2, "pressure": 5.0}
    assert r.received_at == NOW


def test_sensor_payloads(parser: Parser) -> None:
    assert _reading(parser, "plant/R1/temp", '{"ts": 1732589999.5, "value": 350}').values == {"temp": 350.0}
    bare = _reading(parser, "plant/R1/pressure", "5.25")
    assert bare.values == {"pressure": 5.25}
    assert bare.ts == NOW  # no ts: the receive time


def test_iso_timestamp_with_zone(parser: Parser) -> None:
    r = _reading(parser, "plant/R1/temp", '{"ts": "2024-11-26T03:00:00Z", "value": 1}')
    assert r.ts == 1732590000.0
    r2 = _reading(parser, "plant/R1/temp", '{"ts": "2024-11-26T04:00:00+01:00", "value": 1}')
    assert r2.ts == 1732590000.0


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("plant/R1/readings", b"x" * 257, "too_large"),
        ("plant/R1/readings", b"{not json", "malformed"),
        ("plant/R1/readings", b"\xff\xfe\x00", "malformed"),
        ("plant/R1/readings", b"", "malformed"),
        ("plant/R1/readings", b"[" * 200, "malformed"),
        ("plant/R1/readings", b"[1, 2]", "malformed"),
        ("plant/R1/readings", b'{"ts": 1}', "malformed"),
        ("plant/R1/readings", b'{"values": {}}', "schema"),
        ("plant/R1/readings", b'{"values": {"temp": NaN}}', "non_finite"),
        ("plant/R1/readings", b'{"values": {"temp": Infinity}}', "non_finite"),
        ("plant/R1/readings", b'{"values": {"temp": -Infinity}}', "non_finite"),
        ("plant/R1/readings", b'{"values": {"temp": 1e999}}', "non_finite"),
        # Issue 11 item 2: finite in JSON, inf in the float32 buffer.
        ("plant/R1/readings", b'{"values": {"temp": 1e39}}', "non_finite"),
        ("plant/R1/readings", b'{"values": {"temp": 3.5e38}}', "non_finite"),
        ("plant/R1/readings", b'{"values": {"temp": 1e300}}', "non_finite"),
        ("plant/R1/readings", b'{"values": {"temp": -1e39}}', "non_finite"),
        (
            "plant/R1/readings",
            b'{"values": {"temp": 1, "pressure": 1000000000000000000000000000000000000000}}',
            "non_finite",
        ),
        ("plant/R1/temp", b"1e39", "non_finite"),
        ("plant/R1/readings", b'{"values": {"temp": "12.3"}}', "type"),
        ("plant/R1/readings", b'{"values": {"temp": true}}', "type"),
        ("plant/R1/readings", b'{"values": {"temp": null}}', "type"),
        ("plant/R1/readings", b'{"values": {"temp": [1]}}', "type"),
        ("plant/R1/readings", b'{"values": {"temp": {"v": 1}}}', "type"),
        ("plant/R1/readings", b'{"values": {"colour": 1}}', "unknown_sensor"),
        ("plant/R1/readings", b'{"ts": "2024-11-26T03:00:00", "values": {"temp": 1}}', "schema"),
        ("plant/R1/readings", b'{"ts": "yesterday", "values": {"temp": 1}}', "schema"),
        ("plant/R1/readings", b'{"ts": true, "values": {"temp": 1}}', "schema"),
        ("plant/R1/readings", b'{"ts": 1732590300.0, "values": {"temp": 1}}', "future"),
        ("plant/R9/readings", b'{"values": {"temp": 1}}', "unknown_unit"),
        ("plant/R1/colour", b"1", "unknown_sensor"),
        ("plant/R1/temp", b"true", "type"),
        ("plant/R1/temp", b'"1"', "type"),
        ("plant/R1/temp", b"null", "type"),
        ("plant/R1/temp", b"NaN", "non_finite"),
        ("plant/R1/temp", b"[1]", "malformed"),
        ("other/R1/x/y", b"1", "malformed"),
    ],
)
def test_bad_input_is_refused_with_reason(parser: Parser, topic: str, payload: bytes, reason: str) -> None:
    result = parser.parse(topic, payload, NOW)
    assert isinstance(result, Rejected), result
    assert result.reason == reason, result.detail


def test_unknown_unit_ids_never_echoed(parser: Parser) -> None:
    result = parser.parse("plant/../../etc/readings", b'{"values": {"temp": 1}}', NOW)
    assert isinstance(result, Rejected) and result.unit is None
    result = parser.parse("plant/R1/readings", b'{"values": {"temp": NaN}}', NOW)
    assert isinstance(result, Rejected) and result.unit == "R1"


def test_huge_integers_are_refused(parser: Parser) -> None:
    big = Parser(units={"R1": ("temp",)}, max_payload_bytes=65536)
    result = big.parse("plant/R1/temp", ("9" * 400).encode(), NOW)  # beyond a float
    assert isinstance(result, Rejected) and result.reason == "non_finite"
    result = big.parse("plant/R1/temp", ("9" * 5000).encode(), NOW)  # beyond Python's int-string limit
    assert isinstance(result, Rejected) and result.reason == "malformed"


def test_the_float32_range_is_accepted_to_its_edge(parser: Parser) -> None:
    # Every accepted value is what the float32 buffer stores: finite, to float32 rounding.
    edge = float(np.finfo(np.float32).max)
    for value in (edge, -edge, 3.4e38, 1e-45, 0.0):
        r = _reading(parser, "plant/R1/temp", json.dumps(value))
        stored = np.float32(r.values["temp"])
        assert np.isfinite(stored) and stored == pytest.approx(value, rel=1e-6)
    for value in (np.nextafter(edge, np.inf), -np.nextafter(edge, np.inf)):
        result = parser.parse("plant/R1/temp", json.dumps(float(value)).encode(), NOW)
        assert isinstance(result, Rejected) and result.reason == "non_finite", value


def test_integers_are_numbers(parser: Parser) -> None:
    r = _reading(parser, "plant/R1/readings", '{"ts": 1732590000, "values": {"temp": 350, "pressure": -2}}')
    assert r.values == {"temp": 350.0, "pressure": -2.0}
    assert r.ts == 1732590000.0 and isinstance(r.ts, float)


def test_custom_templates_and_filters() -> None:
    parser = Parser(units={"U": ("s",)}, readings_template="site/a/{unit}/all", sensor_template=None)
    assert isinstance(parser.parse("site/a/U/all", b'{"values": {"s": 1}}', NOW), Reading)
    rejected = parser.parse("plant/U/s", b"1", NOW)
    assert isinstance(rejected, Rejected) and rejected.reason == "malformed"
    assert topic_filter("plant/{unit}/{sensor}") == "plant/+/+"


# --- physical limits (units[].limits): a value outside is refused as a value, reason out_of_range (B5) --------


@pytest.fixture
def limited() -> Parser:
    return Parser(
        units={"R1": ("temp", "pressure"), "R2": ("temp", "pressure")},
        limits={"R1": {"pressure": (0.0, 40.0)}},  # R2: none
        max_clock_skew_s=120.0,
    )


def test_values_within_the_limits_are_accepted_to_their_edges(limited: Parser) -> None:
    for value in (0.0, 5.1, 40.0):
        r = _reading(limited, "plant/R1/readings", json.dumps({"values": {"temp": 1e6, "pressure": value}}))
        assert r.values == {"temp": 1e6, "pressure": value} and r.out_of_range == ()  # temp has no limits
    assert _reading(limited, "plant/R1/pressure", "40").out_of_range == ()


def test_a_value_outside_its_limits_is_refused_alone_and_the_rest_of_the_message_kept(limited: Parser) -> None:
    r = _reading(limited, "plant/R1/readings", json.dumps({"ts": NOW - 1, "values": {"temp": 351.2, "pressure": -1e6}}))
    assert r.values == {"temp": 351.2} and r.out_of_range == (("pressure", -1e6),)
    assert r.ts == NOW - 1 and r.unit == "R1"
    just_over = float(np.nextafter(40.0, np.inf))
    r = _reading(limited, "plant/R1/readings", json.dumps({"values": {"temp": 1, "pressure": just_over}}))
    assert r.values == {"temp": 1.0} and r.out_of_range == (("pressure", just_over),)
    # The other unit has no limits: the same value is a value.
    assert _reading(limited, "plant/R2/pressure", "-1e6").values == {"pressure": -1e6}


def test_a_message_whose_every_value_is_out_of_range_is_refused_as_out_of_range(limited: Parser) -> None:
    from monitor.buffers.ring_buffers import RingBuffers
    from monitor.buffers.unit_spec import UnitSpec

    single = _reading(limited, "plant/R1/pressure", '{"ts": 1732589999, "value": -1e6}')
    assert single.values == {} and single.out_of_range == (("pressure", -1e6),)
    # It reaches the buffers as a message with nothing to place (so its sensor is marked out of range there) and
    # is refused whole under out_of_range: what BufferStage counts in readings_rejected{reason="out_of_range"}.
    buffers = RingBuffers({"R1": UnitSpec(("temp", "pressure"), window_rows=1)})
    buffers.add(_reading(limited, "plant/R1/readings", '{"ts": 1732589998, "values": {"temp": 1, "pressure": 2}}'))
    res = buffers.add(single)
    assert res.accepted == [] and [r.reason for r in res.refused] == ["out_of_range"]
    # The door's own refusals come first: a message out of range and unparseable otherwise keeps that reason.
    for payload, reason in (
        (b'{"values": {"pressure": -1e6, "temp": NaN}}', "non_finite"),
        (b'{"ts": 1732590300.0, "values": {"pressure": -1e6}}', "future"),
        (b'{"values": {"pressure": -1e6, "colour": 1}}', "unknown_sensor"),
    ):
        result = limited.parse("plant/R1/readings", payload, NOW)
        assert isinstance(result, Rejected) and result.reason == reason


def test_from_config_takes_the_units_limits() -> None:
    from monitor.config import PlantwatchConfig

    unit = {"sensors": ["temp", "pressure"], "detector": {"name": "d", "artifact": "/nonexistent"}}
    cfg = PlantwatchConfig.model_validate(
        {"units": [{**unit, "name": "R1", "limits": {"pressure": {"min": 0, "max": 40}}}, {**unit, "name": "R2"}]}
    )
    parser = Parser.from_config(cfg)
    r = _reading(parser, "plant/R1/readings", '{"values": {"temp": 1, "pressure": 41}}')
    assert r.values == {"temp": 1.0} and r.out_of_range == (("pressure", 41.0),)
    assert _reading(parser, "plant/R2/pressure", "41").values == {"pressure": 41.0}


def test_sent_is_the_publication_time_and_a_bad_one_is_ignored(parser: Parser) -> None:
    # `sent` (the publisher's wall clock) feeds only the publish-to-score latency: an unusable one leaves it unset
    # (NaN, the event time stands in) and never refuses the readings.
    r = _reading(
        parser, "plant/R1/readings", json.dumps({"ts": NOW - 3600, "values": {"temp": 1.0}, "sent": NOW - 0.2})
    )
    assert r.sent_at == NOW - 0.2 and r.source_time == NOW - 0.2 and r.ts == NOW - 3600
    per_sensor = _reading(parser, "plant/R1/temp", json.dumps({"ts": NOW - 60, "value": 2.0, "sent": NOW}))
    assert per_sensor.source_time == NOW
    for bad in ('"soon"', "true", "-1", "0", "1e999", "null", "[1]"):
        payload = f'{{"ts": {NOW - 5}, "values": {{"temp": 1.0}}, "sent": {bad}}}'
        r = _reading(parser, "plant/R1/readings", payload)
        assert np.isnan(r.sent_at) and r.source_time == NOW - 5, bad
