"""UnitTable: the per-unit series exported from numpy arrays, sample for sample as one prometheus_client child each."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from monitor.messages import DETECTORS, Forecast, Score
from monitor.metrics import Metrics

UNITS = {"R1": ("a", "b"), "R2": ("c",)}  # unequal sensor counts: R2's row has a pad column
HORIZONS = (5, 1, 5)  # unsorted, repeated: exported as steps 1 and 5

# The contract the per-child code had (name in the exposition, type, HELP, label names).
FAMILIES = {
    "plantwatch_readings_received": (
        "counter",
        "Readings messages accepted: at least one value placed in the unit's buffer.",
        ("unit",),
    ),
    "plantwatch_anomaly_score": ("gauge", "Latest anomaly score.", ("unit", "detector")),
    "plantwatch_anomaly_threshold": (
        "gauge",
        "Threshold in force: the calibrated one, adapted online to normal scores.",
        ("unit", "detector"),
    ),
    "plantwatch_anomaly_threshold_calibrated": (
        "gauge",
        "Threshold the model was calibrated with at training.",
        ("unit", "detector"),
    ),
    "plantwatch_anomaly_score_normalized": (
        "gauge",
        "Latest score / threshold in force: above 1 is anomalous, for every detector alike.",
        ("unit", "detector"),
    ),
    "plantwatch_sensor_error": (
        "gauge",
        "Latest per-sensor contribution to the anomaly score.",
        ("unit", "detector", "sensor"),
    ),
    "plantwatch_sensor_value": (
        "gauge",
        "Latest aligned reading, raw sensor units: the newest row of the unit's last window (forecast vs actual).",
        ("unit", "sensor"),
    ),
    "plantwatch_forecast_value": (
        "gauge",
        "Latest forecast, raw sensor units, `horizon` periods after the newest row.",
        ("unit", "sensor", "horizon"),
    ),
    "plantwatch_alerts_fired": ("counter", "Alert episodes fired.", ("unit", "detector")),
    "plantwatch_alerts_active": ("gauge", "1 while an alert is firing.", ("unit", "detector")),
    "plantwatch_buffer_fill_ratio": ("gauge", "Share of the unit's ring buffer holding rows.", ("unit",)),
    "plantwatch_outside_envelope": (
        "gauge",
        "1 while the unit's latest model score has a sensor outside the model's training envelope.",
        ("unit",),
    ),
}


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def score(
    unit: str, detector: str, value: float, errors: dict[str, float], ts: float = 100.0, outside: tuple[str, ...] = ()
) -> Score:
    return Score(unit, detector, "m", ts, value, 2.0 * value, errors, ts, ts, outside_envelope=outside)  # type: ignore[arg-type]


def per_unit_samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in registry.collect():
        if family.name in FAMILIES:
            for s in family.samples:
                k = key(s.name, **s.labels)
                assert k not in out, f"sample {k} twice"
                out[k] = s.value
    return out


def expected_zeros() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every series the per-child code created at start, value 0 (the `_created` samples are checked apart)."""
    out = {}
    for unit, sensors in UNITS.items():
        out[key("plantwatch_readings_received_total", unit=unit)] = 0.0
        out[key("plantwatch_buffer_fill_ratio", unit=unit)] = 0.0
        out[key("plantwatch_outside_envelope", unit=unit)] = 0.0
        for d in DETECTORS:
            for name in (
                "anomaly_score",
                "anomaly_threshold",
                "anomaly_threshold_calibrated",
                "anomaly_score_normalized",
                "alerts_fired_total",
                "alerts_active",
            ):
                out[key(f"plantwatch_{name}", unit=unit, detector=d)] = 0.0
            for s in sensors:
                out[key("plantwatch_sensor_error", unit=unit, detector=d, sensor=s)] = 0.0
        for s in sensors:
            out[key("plantwatch_sensor_value", unit=unit, sensor=s)] = 0.0
            for h in ("1", "5"):
                out[key("plantwatch_forecast_value", unit=unit, sensor=s, horizon=h)] = 0.0
    return out


def test_exposition_equals_the_per_child_series() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, units=UNITS, models={"m": "detector"}, horizons=HORIZONS)
    table = metrics.per_unit
    created = {k: v for k, v in per_unit_samples(registry).items() if k[0].endswith("_created")}
    samples = {k: v for k, v in per_unit_samples(registry).items() if not k[0].endswith("_created")}
    assert samples == expected_zeros()
    counter_series = [k for k in samples if k[0].endswith("_total")]
    assert set(created) == {(name.replace("_total", "_created"), labels) for name, labels in counter_series}
    assert set(created.values()) == {table.created}

    r1, r2 = table.index["R1"], table.index["R2"]
    for _ in range(3):
        table.count_received(r1)
    table.set_fill(r2, 0.25)
    table.set_sensor_values(r1, np.array([350.5, 5.25], dtype=np.float32))
    table.set_sensor_values(r2, np.array([7.0], dtype=np.float32))
    table.set_scores(
        [
            score("R1", "reconstruction", 0.5, {"b": 0.75, "a": 0.25}),  # model order differs from config order
            score("R2", "forecast", 9.0, {"c": 9.0}),
            score("R1", "forecast", 0.125, {"a": 0.0625, "b": 0.1875}),
            score("R2", "forecast", 1.5, {"c": 1.5}, ts=101.0),  # the later row of the same series wins
            score("R2", "reconstruction", 3.0, {"c": 3.0, "zz": 8.0}),  # a name the unit lacks: ignored
        ]
    )
    table.set_scores([score("R1", "reconstruction", 0.5, {"a": 0.375})])  # b not named: keeps 0.75
    horizon10 = np.arange(20, dtype=np.float32).reshape(10, 2)  # [H, S]: steps 1 and 5 are rows 0 and 4
    table.set_forecasts(
        [
            Forecast("R1", "f", 99.0, 1.0, -horizon10, 99.0),  # the later forecast of the unit wins
            Forecast("R2", "f", 100.0, 1.0, np.array([[4.5], [5.5]], dtype=np.float32), 100.0),  # H 2 < step 5
            Forecast("R1", "f", 100.0, 1.0, horizon10, 100.0),
        ]
    )
    table.set_alert_active(r2, "forecast", True)
    table.count_alert_fired(r2, "forecast")
    table.count_alert_fired(r2, "forecast")
    table.set_alert_active(r1, "reconstruction", True)
    table.set_alert_active(r1, "reconstruction", False)

    expected = expected_zeros()
    expected |= {
        key("plantwatch_readings_received_total", unit="R1"): 3.0,
        key("plantwatch_buffer_fill_ratio", unit="R2"): 0.25,
        key("plantwatch_sensor_value", unit="R1", sensor="a"): 350.5,
        key("plantwatch_sensor_value", unit="R1", sensor="b"): 5.25,
        key("plantwatch_sensor_value", unit="R2", sensor="c"): 7.0,
        key("plantwatch_anomaly_score", unit="R1", detector="reconstruction"): 0.5,
        key("plantwatch_anomaly_threshold", unit="R1", detector="reconstruction"): 1.0,
        key("plantwatch_sensor_error", unit="R1", detector="reconstruction", sensor="a"): 0.375,
        key("plantwatch_sensor_error", unit="R1", detector="reconstruction", sensor="b"): 0.75,
        key("plantwatch_anomaly_score", unit="R1", detector="forecast"): 0.125,
        key("plantwatch_anomaly_threshold", unit="R1", detector="forecast"): 0.25,
        key("plantwatch_sensor_error", unit="R1", detector="forecast", sensor="a"): 0.0625,
        key("plantwatch_sensor_error", unit="R1", detector="forecast", sensor="b"): 0.1875,
        key("plantwatch_anomaly_score", unit="R2", detector="forecast"): 1.5,
        key("plantwatch_anomaly_threshold", unit="R2", detector="forecast"): 3.0,
        key("plantwatch_sensor_error", unit="R2", detector="forecast", sensor="c"): 1.5,
        key("plantwatch_anomaly_score", unit="R2", detector="reconstruction"): 3.0,
        key("plantwatch_anomaly_threshold", unit="R2", detector="reconstruction"): 6.0,
        key("plantwatch_sensor_error", unit="R2", detector="reconstruction", sensor="c"): 3.0,
    }
    # No adapted thresholds given: the threshold in force is the calibrated one, the normalized score half of it.
    for unit, detector, threshold in (
        ("R1", "reconstruction", 1.0),
        ("R1", "forecast", 0.25),
        ("R2", "forecast", 3.0),
        ("R2", "reconstruction", 6.0),
    ):
        expected[key("plantwatch_anomaly_threshold_calibrated", unit=unit, detector=detector)] = threshold
        expected[key("plantwatch_anomaly_score_normalized", unit=unit, detector=detector)] = 0.5
    expected |= {
        key("plantwatch_forecast_value", unit="R1", sensor="a", horizon="1"): 0.0,
        key("plantwatch_forecast_value", unit="R1", sensor="b", horizon="1"): 1.0,
        key("plantwatch_forecast_value", unit="R1", sensor="a", horizon="5"): 8.0,
        key("plantwatch_forecast_value", unit="R1", sensor="b", horizon="5"): 9.0,
        key("plantwatch_forecast_value", unit="R2", sensor="c", horizon="1"): 4.5,  # horizon 5 > H 2: stays 0
        key("plantwatch_alerts_active", unit="R2", detector="forecast"): 1.0,
        key("plantwatch_alerts_fired_total", unit="R2", detector="forecast"): 2.0,
    }
    assert {k: v for k, v in per_unit_samples(registry).items() if not k[0].endswith("_created")} == expected

    # Names, types, HELP and label names; the text formats render it (with `_created` as prometheus_client does).
    families = {f.name: f for f in registry.collect() if f.name in FAMILIES}
    assert {name: (f.type, f.documentation) for name, f in families.items()} == {
        name: (kind, doc) for name, (kind, doc, _) in FAMILIES.items()
    }
    for name, (_, _, label_names) in FAMILIES.items():
        assert all(set(s.labels) == set(label_names) for s in families[name].samples), name
    text = generate_latest(registry).decode()
    assert 'plantwatch_readings_received_total{unit="R1"} 3.0\n' in text
    assert "# TYPE plantwatch_alerts_fired_created gauge\n" in text
    assert 'plantwatch_forecast_value{horizon="5",sensor="b",unit="R1"} 9.0\n' in text
    assert 'plantwatch_alerts_fired_total{detector="forecast",unit="R2"} 2.0' in generate_openmetrics(registry).decode()
    assert registry.get_sample_value("plantwatch_anomaly_score", {"unit": "R2", "detector": "forecast"}) == 1.5


def test_outside_envelope_is_one_while_a_latest_model_score_names_a_sensor() -> None:
    registry = CollectorRegistry()
    table = Metrics(registry, units=UNITS, models={}).per_unit

    def gauge(unit: str) -> float | None:
        return registry.get_sample_value("plantwatch_outside_envelope", {"unit": unit})

    table.set_scores(
        [
            score("R1", "reconstruction", 1.0, {}, outside=("a",)),
            score("R2", "forecast", 1.0, {}, outside=("c",)),
            score("R2", "forecast", 1.0, {}, ts=101.0),  # the later score of the series wins: inside again
        ]
    )
    assert (gauge("R1"), gauge("R2")) == (1.0, 0.0)
    table.set_scores([score("R1", "sensor", 0.0, {})])  # the sensor detector's score does not clear it
    assert gauge("R1") == 1.0
    table.set_scores([score("R1", "forecast", 1.0, {}, ts=102.0)])  # still the reconstruction score's
    assert gauge("R1") == 1.0
    table.set_scores([score("R1", "reconstruction", 1.0, {}, ts=103.0)])
    assert gauge("R1") == 0.0


def test_a_second_metric_of_a_table_name_is_refused() -> None:
    registry = CollectorRegistry()
    Metrics(registry, units=UNITS, models={})
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Gauge("plantwatch_sensor_error", "again", ["unit"], registry=registry)


def test_scrape_during_concurrent_writes() -> None:
    """One writer thread per array, as in the service, while the HTTP thread's scrape runs: never raises."""
    units = {f"u{i:03d}": ("a", "b", "c", "d") for i in range(40)}
    registry = CollectorRegistry()
    table = Metrics(registry, units=units, models={}, horizons=(1, 10)).per_unit
    stop = threading.Event()
    errors: list[BaseException] = []

    def ingest() -> None:  # paho's thread
        while not stop.is_set():
            for i in range(len(units)):
                table.count_received(i)

    def buffers() -> None:
        row = np.ones(4, dtype=np.float32)
        while not stop.is_set():
            for i in range(len(units)):
                table.set_sensor_values(i, row * i)
                table.set_fill(i, i / len(units))

    def scheduler() -> None:
        ts = 0.0
        values = np.ones((10, 4), dtype=np.float32)
        while not stop.is_set():
            ts += 1.0
            batch = [
                score(u, d, ts, dict.fromkeys("abcd", ts), ts) for u in units for d in ("reconstruction", "forecast")
            ]
            table.set_scores(batch)
            table.set_forecasts([Forecast(u, "f", ts, 1.0, values * ts, ts) for u in units])
            table.set_alert_active(0, "forecast", int(ts) % 2 == 0)
            table.count_alert_fired(1, "reconstruction")

    def guarded(body: object) -> None:
        try:
            body()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(f,)) for f in (ingest, buffers, scheduler)]
    for t in threads:
        t.start()
    try:
        last_received = 0.0
        for _ in range(8):
            text = generate_latest(registry).decode()
            received = {
                s.labels["unit"]: s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "plantwatch_readings_received_total"
            }
            assert len(received) == len(units)
            assert received["u000"] >= last_received  # a counter never goes back between scrapes
            last_received = received["u000"]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors
    assert last_received > 0


def test_publish_to_score_is_measured_from_the_newest_reading_not_the_row_time() -> None:
    from monitor.alerts.board import AlertBoard
    from monitor.alerts.policy import AlertPolicy
    from monitor.mqtt_sink import MqttSink
    from monitor.outputs import OutputStage
    from monitor.scoring_records import ScoringOutput

    registry = CollectorRegistry()
    metrics = Metrics(registry, units={"R1": ("a",)}, models={"m": "detector"})
    sink = MqttSink(lambda *_: True, publish_scores=False)
    stage = OutputStage(AlertBoard({"R1": AlertPolicy()}), [sink], metrics)
    now = time.time()
    # Row time 3 s ago, but its reading left the source (off the row grid) only 0.2 s ago.
    on_time = Score("R1", "reconstruction", "m", now - 3.0, 0.1, 1.0, {"a": 0.1}, now - 0.1, now - 0.2)
    stage.handle(ScoringOutput(scores=[on_time], forecasts=[], non_finite=0))
    assert registry.get_sample_value("plantwatch_publish_to_score_seconds_bucket", {"le": "1.0"}) == 1.0
