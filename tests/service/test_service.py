"""End to end, in process: publisher -> real mosquitto -> App -> alerts, scores, metrics an independent client sees."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from monitor.app import App
from monitor.config import PlantwatchConfig
from tests.kit import Broker, scrape, wait_until
from tests.service.conftest import (
    FAULT_SENSOR,
    SENSORS,
    WINDOW,
    Publisher,
    epoch_base,
    normal_rows,
    sample,
    scored,
    stop,
    with_fault,
)


@pytest.mark.parametrize("scorer", ["thread", "process"])
def test_fault_fires_then_resolves_and_normal_unit_stays_quiet(
    scorer: str,
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., object],
    unique_prefix: str,
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/pw/#")
    app = run_app(service_config(scheduler={"scorer": scorer}))
    pub = publisher()
    t0 = epoch_base()
    normal = normal_rows(400, seed=1)
    faulty = np.concatenate([normal[:200], with_fault(normal[200:260]), normal[260:]])
    pub.rows("R1", faulty, t0)
    pub.rows("R2", normal, t0)
    n_rows = 2 * (400 - WINDOW + 1)
    assert wait_until(lambda: scored(app) == n_rows, timeout_s=60), scored(app)

    alerts = [m.json() for m in recorder.wait_for(f"{unique_prefix}/pw/alerts/R1", count=2, timeout_s=10)]
    recon = [a for a in alerts if a["detector"] == "reconstruction"]
    firing = [a for a in recon if a["state"] == "firing"]
    resolved = [a for a in recon if a["state"] == "resolved"]
    # One episode: later firing events of it are the escalation from warning to critical (the same alert_id).
    assert len({a["alert_id"] for a in firing}) == 1 and len(resolved) == 1, recon
    assert [a["severity"] for a in firing] in (["warning"], ["critical"], ["warning", "critical"]), recon
    assert firing[0]["unit"] == "R1"
    assert firing[0]["sensors"][0]["sensor"] == FAULT_SENSOR  # the top contributor
    assert t0 + 200 <= firing[0]["ts"] <= t0 + 210  # within a few rows of the onset
    assert resolved[0]["alert_id"] == firing[0]["alert_id"]
    assert resolved[0]["ts"] >= t0 + 260
    assert firing[0]["score"] > firing[0]["threshold"]
    assert firing[0]["model"] == "det" and firing[0]["schema"] == 1
    assert recorder.matching(f"{unique_prefix}/pw/alerts/R2") == []
    state = recorder.wait_for(f"{unique_prefix}/pw/alerts/R1/state", count=2)[-1].json()
    assert state["unit"] == "R1" and state["state"] in ("ok", "firing")
    # Recorded from before the start: the alert tree holds the units' alerts and states and nothing else (the
    # retained-state read-back's marker once showed up there as the state of a unit ".sync-XXXX").
    alert_topics = {
        m.topic.removeprefix(f"{unique_prefix}/pw/alerts/") for m in recorder.matching(f"{unique_prefix}/pw/alerts/#")
    }
    assert alert_topics <= {"R1", "R1/state", "R2", "R2/state"}, alert_topics
    assert recorder.matching(f"{unique_prefix}/pw/_sync/#")  # the read-back ran while recording

    scores = [m.json() for m in recorder.wait_for(f"{unique_prefix}/pw/scores/R2", count=400 - WINDOW + 1)]
    assert set(scores[-1]["scores"]) == {"reconstruction", "forecast", "sensor"}
    forecasts = recorder.wait_for(f"{unique_prefix}/pw/forecast/R2", count=400 - WINDOW + 1)
    assert forecasts[-1].json()["sensors"] == list(SENSORS)
    assert sample(app, "plantwatch_alerts_fired_total", unit="R1", detector="reconstruction") == 1
    assert sample(app, "plantwatch_alerts_active", unit="R1", detector="reconstruction") == 0


@pytest.mark.parametrize("scorer", ["thread", "process"])
def test_metrics_over_http_show_what_was_published(
    scorer: str,
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    artifacts: dict[str, Path],
) -> None:
    from models.artifacts import load_artifact

    app = run_app(service_config(scheduler={"scorer": scorer}))
    rows = normal_rows(60, seed=2)
    pub = publisher()
    pub.rows("R1", rows, epoch_base())
    assert wait_until(lambda: scored(app) == 60 - WINDOW + 1, timeout_s=30)
    samples = scrape(app.metrics_port)
    assert samples.value("plantwatch_readings_received_total", unit="R1") == 60
    assert samples.value("plantwatch_readings_received_total", unit="R2") == 0
    threshold = load_artifact(artifacts["det"]).threshold
    assert samples.value("plantwatch_anomaly_threshold", detector="reconstruction", unit="R1") == pytest.approx(
        threshold
    )
    assert samples.value("plantwatch_anomaly_score", detector="reconstruction", unit="R1") > 0
    assert samples.value("plantwatch_windows_scored_total", detector="forecast") == 60 - WINDOW
    assert samples.value("plantwatch_mqtt_connected") == 1
    assert samples.value("process_resident_memory_bytes") > 50e6
    assert samples.value("plantwatch_model_info", device="cpu", kind="lstm_ae", model="det", role="detector") == 1
    assert samples.value("plantwatch_inference_seconds_count", model="det") >= 1
    if scorer == "process":  # the scorer's own process figures beside the front's, in the same scrape
        assert samples.value("plantwatch_scorer_process_resident_memory_bytes") > 20e6
        assert len(list(samples.matching("plantwatch_mqtt_connected"))) == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{app.metrics_port}/readyz", timeout=5) as response:
        assert response.status == 200


def test_bad_inputs_are_counted_and_do_not_change_the_scores(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., object],
    unique_prefix: str,
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/pw/scores/#")
    app = run_app(service_config())
    pub = publisher()
    t0 = epoch_base()
    rows = normal_rows(80, seed=3)
    pub.rows("R1", rows[:40], t0)
    pub.rows("R2", rows[:40], t0)
    assert wait_until(lambda: scored(app) == 2 * (40 - WINDOW + 1), timeout_s=30)
    good = json.dumps({"ts": t0 + 40, "values": {"s0": 1.0}})

    def with_s0(text: str) -> bytes:  # only the value: the ts may hold "1.0" too (t0 + 40 = ...1.0)
        return good.replace('"s0": 1.0', f'"s0": {text}').encode()

    bad: dict[str, list[tuple[str, bytes]]] = {
        "malformed": [
            ("plant/R1/readings", b"{oops"),
            ("plant/R1/readings", b"\xff\xfe"),
            ("plant/R1/readings", b"[1]"),
        ],
        "non_finite": [
            ("plant/R1/readings", with_s0("NaN")),
            ("plant/R1/readings", with_s0("Infinity")),
            ("plant/R1/s0", b"-Infinity"),
        ],
        "type": [
            ("plant/R1/readings", with_s0('"1.0"')),
            ("plant/R1/readings", with_s0("true")),
            ("plant/R1/readings", with_s0("null")),
        ],
        "too_large": [("plant/R1/readings", b" " * 4096)],
        "unknown_unit": [("plant/R9/readings", good.encode())],
        "unknown_sensor": [("plant/R1/readings", good.replace("s0", "s99").encode()), ("plant/R1/s99", b"1")],
        "future": [("plant/R1/readings", good.replace(str(t0 + 40), str(t0 + 10**7)).encode())],
        # older than the watermark, for a row the unit never had (a second value for a row it had is a duplicate)
        "late": [("plant/R1/readings", good.replace(str(t0 + 40), str(t0 - 100)).encode())],
        # row 30 of R1 again (first value wins; a QoS 1 redelivery looks like this)
        "duplicate": [
            (
                "plant/R1/readings",
                json.dumps({"ts": t0 + 30, "values": {s: 0.0 for s in SENSORS}}).encode(),
            )
        ],
    }
    for messages in bad.values():
        for topic, payload in messages:
            pub.raw(topic, payload)
    # One count per message, whoever refused it (the parser, or the buffers for late and duplicate).
    expected = {reason: len(messages) for reason, messages in bad.items()}
    for reason in bad:
        assert wait_until(
            lambda r=reason, n=expected[reason]: sample(app, "plantwatch_readings_rejected_total", reason=r) == n,
            timeout_s=30,
        ), (reason, sample(app, "plantwatch_readings_rejected_total", reason=reason))
    pub.rows("R1", rows[40:], t0, first_index=40)
    pub.rows("R2", rows[40:], t0, first_index=40)
    assert wait_until(lambda: scored(app) == 2 * (80 - WINDOW + 1), timeout_s=30), scored(app)
    by_unit: dict[str, dict[float, dict[str, float]]] = {"R1": {}, "R2": {}}
    for message in recorder.wait_for(f"{unique_prefix}/pw/scores/+", count=2 * (80 - WINDOW + 1), timeout_s=30):
        body = message.json()
        by_unit[body["unit"]][body["ts"]] = {d: v["score"] for d, v in body["scores"].items()}
    assert len(by_unit["R1"]) == 80 - WINDOW + 1
    # Identical streams, bad input or not (to float32 rounding: the two units may share a batch or not).
    assert by_unit["R1"].keys() == by_unit["R2"].keys()
    for ts, scores in by_unit["R1"].items():
        assert scores == pytest.approx(by_unit["R2"][ts], rel=1e-5), ts
    assert app.link.connected.is_set() and not app.failed.is_set()


def test_broker_restart_mid_stream_loses_nothing(
    broker_factory: Callable[..., Broker],
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    broker = broker_factory(persistence=True)
    # The second publisher is another MQTT client: the broker owes no order between its messages and the queued
    # ones (MQTT orders per publishing client), so the lateness covers the whole run. What is asserted is loss.
    base = service_config(broker=broker)
    units = [{**u.model_dump(mode="json"), "max_lateness_s": 600} for u in base.units]
    app = run_app(service_config(broker=broker, units=units))
    rows = normal_rows(300, seed=4)
    t0 = epoch_base()
    pub = publisher(broker)
    pub.rows("R1", rows[:150], t0)
    pub.close()
    broker.stop()  # SIGTERM: mosquitto saves its queues
    assert wait_until(lambda: sample(app, "plantwatch_mqtt_connected") == 0, timeout_s=10)
    broker.start()
    assert wait_until(lambda: app.ready()[0], timeout_s=20)
    pub = publisher(broker)
    pub.rows("R1", rows[150:], t0, first_index=150)
    assert wait_until(lambda: scored(app) == 300 - WINDOW + 1, timeout_s=30), scored(app)
    assert sample(app, "plantwatch_readings_rejected_total", reason="late") == 0
    assert sample(app, "plantwatch_windows_skipped_total", reason="gap") == 0
    assert sample(app, "plantwatch_mqtt_disconnects_total") == 1


def test_clean_restart_scores_readings_published_meanwhile(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., object],
    unique_prefix: str,
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/pw/status")
    cfg = service_config()
    app = run_app(cfg)
    rows = normal_rows(120, seed=5)
    t0 = epoch_base()
    pub = publisher()
    pub.rows("R1", rows[:50], t0)
    assert wait_until(lambda: scored(app) == 50 - WINDOW + 1, timeout_s=30)
    assert stop(app) == 0
    recorder.wait_for(f"{unique_prefix}/pw/status", lambda m: m.payload == b"offline")
    pub.rows("R1", rows[50:], t0, first_index=50)  # the broker queues these for the service's session
    app2 = run_app(cfg)
    # The new process starts with empty buffers: the first WINDOW - 1 rows of its stream only warm up.
    assert wait_until(lambda: scored(app2) == 70 - WINDOW + 1, timeout_s=30), scored(app2)
    assert sample(app2, "plantwatch_readings_received_total", unit="R1") == 70


@pytest.mark.parametrize("protocol", ["3.1.1"])
def test_mqtt_311(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    protocol: str,
) -> None:
    cfg = service_config(mqtt={**service_config().mqtt.model_dump(mode="json"), "protocol": protocol})
    app = run_app(cfg)
    publisher().rows("R2", normal_rows(30, seed=6), epoch_base())
    assert wait_until(lambda: scored(app) == 30 - WINDOW + 1, timeout_s=30)


def test_sighup_reload_keeps_old_models_when_the_new_artifact_is_invalid(
    tmp_path: Path,
    artifacts: dict[str, Path],
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    import shutil

    det = tmp_path / "det"
    shutil.copytree(artifacts["det"], det)
    base = service_config()
    units = [{**u.model_dump(mode="json"), "detector": {"name": "det", "artifact": str(det)}} for u in base.units]
    cfg = service_config(units=units)
    app = run_app(cfg)
    pub = publisher()
    rows = normal_rows(60, seed=7)
    t0 = epoch_base()
    pub.rows("R1", rows[:30], t0)
    assert wait_until(lambda: scored(app) == 30 - WINDOW + 1, timeout_s=30)
    assert app.reload() is True
    weights = det / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")  # sha256 no longer matches the manifest
    assert app.reload() is False
    assert sample(app, "plantwatch_model_reloads_total", result="ok") == 1
    assert sample(app, "plantwatch_model_reloads_total", result="error") == 1
    pub.rows("R1", rows[30:], t0, first_index=30)
    assert wait_until(lambda: scored(app) == 60 - WINDOW + 1, timeout_s=30)  # the buffers were kept


def test_readiness_names_a_model_scoring_nan_and_a_reload_whose_probe_is_not_finite_is_refused(
    tmp_path: Path,
    artifacts: dict[str, Path],
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    import shutil
    import urllib.error

    import torch

    from models.hostile import build_case, without_onnx

    det = tmp_path / "det"
    shutil.copytree(artifacts["det"], det)
    # Served by torch (an artifact without its ONNX graph): the test corrupts the torch module's weights in place.
    without_onnx(det)
    base = service_config()
    units = [{**u.model_dump(mode="json"), "detector": {"name": "det", "artifact": str(det)}} for u in base.units]
    app = run_app(service_config(units=units))
    pub = publisher()
    rows = normal_rows(90, seed=9)
    t0 = epoch_base()
    pub.rows("R1", rows[:30], t0)
    assert wait_until(lambda: scored(app) == 30 - WINDOW + 1, timeout_s=30)

    # The served detector's weights go bad (memory corruption, a bug): its scores are NaN, so it is not ready.
    head = app.engine.models["det"].wrapped.module.head  # type: ignore[attr-defined]
    saved = head.bias.detach().clone()
    with torch.no_grad():
        head.bias.fill_(float("nan"))
    pub.rows("R1", rows[30:40], t0, first_index=30)
    assert wait_until(lambda: not app.ready()[0], timeout_s=30)
    assert app.ready() == (False, "model(s) det score NaN or inf")
    assert sample(app, "plantwatch_ready") == 0
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{app.metrics_port}/readyz", timeout=5)
    assert info.value.code == 503 and b"det score NaN or inf" in info.value.read()
    assert scored(app) == 30 - WINDOW + 1  # nothing scored meanwhile: the NaN scores were dropped
    with torch.no_grad():
        head.bias.copy_(saved)
    pub.rows("R1", rows[40:50], t0, first_index=40)
    assert wait_until(lambda: app.ready()[0], timeout_s=30)  # finite scores again: ready again
    assert wait_until(lambda: scored(app) == 50 - WINDOW + 1 - 10, timeout_s=30)

    # A new artifact whose weights are finite but overflow: its probe scores inf, so the reload is refused.
    build_case("weights_overflowing_output", artifacts["det"], det)
    assert app.reload() is False
    assert sample(app, "plantwatch_model_reloads_total", result="error") == 1
    pub.rows("R1", rows[50:90], t0, first_index=50)
    assert wait_until(lambda: scored(app) == 90 - WINDOW + 1 - 10, timeout_s=30)  # the old model kept scoring
    assert app.ready() == (True, "ready")


def _own_detector(
    tmp_path: Path, artifacts: dict[str, Path], service_config: Callable[..., PlantwatchConfig], **sections: object
) -> tuple[Path, PlantwatchConfig]:
    """A copy of the detector artifact the test can rewrite before a reload, and a config serving it."""
    import shutil

    det = tmp_path / "det"
    shutil.copytree(artifacts["det"], det)
    base = service_config()
    units = [{**u.model_dump(mode="json"), "detector": {"name": "det", "artifact": str(det)}} for u in base.units]
    return det, service_config(units=units, **sections)


def test_a_reload_scoring_inf_on_live_windows_is_rolled_back_and_the_old_model_scores_every_window(
    tmp_path: Path,
    artifacts: dict[str, Path],
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., object],
    unique_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import math

    from models.hostile import overflowing_off_the_mean

    det, cfg = _own_detector(tmp_path, artifacts, service_config)
    app = run_app(cfg)
    old = app.engine.models["det"]
    recorder = mqtt_recorder(f"{unique_prefix}/pw/scores/R1")
    pub = publisher()
    rows = normal_rows(90, seed=13)
    t0 = epoch_base()
    pub.rows("R1", rows[:30], t0)
    assert wait_until(lambda: scored(app) == 30 - WINDOW + 1, timeout_s=30)

    # Passes every load check, the probe at the training mean included; scores inf on every real window.
    overflowing_off_the_mean(artifacts["det"], det)
    assert app.reload() is True
    assert sample(app, "plantwatch_model_reloads_total", result="ok") == 1
    assert app.scheduler.probation is not None
    with caplog.at_level("ERROR", logger="monitor.scheduler"):
        pub.rows("R1", rows[30:60], t0, first_index=30)
        assert wait_until(lambda: sample(app, "plantwatch_model_reloads_total", result="rolled_back") == 1, 30)
        # No window lost: the batch the new model scored inf was scored again by the old one.
        assert wait_until(lambda: scored(app) == 60 - WINDOW + 1, timeout_s=30), scored(app)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "reloaded model det scored inf" in errors[0] and "rolled back" in errors[0], errors
    assert app.engine.models["det"] is old and app.scheduler.probation is None
    assert sample(app, "plantwatch_stage_errors_total", stage="scheduler") == 0  # nothing was dropped
    assert wait_until(lambda: app.ready() == (True, "ready"), timeout_s=10), app.ready()
    pub.rows("R1", rows[60:90], t0, first_index=60)  # and the old model keeps scoring
    assert wait_until(lambda: scored(app) == 90 - WINDOW + 1, timeout_s=30), scored(app)
    messages = recorder.wait_for(f"{unique_prefix}/pw/scores/R1", count=90 - WINDOW + 1)
    recon = [m.json()["scores"]["reconstruction"]["score"] for m in messages if "reconstruction" in m.json()["scores"]]
    assert len(recon) == 90 - WINDOW + 1 and all(math.isfinite(v) for v in recon)
    assert sample(app, "plantwatch_model_reloads_total", result="rolled_back") == 1
    assert sample(app, "plantwatch_model_reloads_total", result="error") == 0


def test_a_good_reload_passes_probation_and_the_previous_model_is_released(
    tmp_path: Path,
    artifacts: dict[str, Path],
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    import gc
    import weakref

    _, cfg = _own_detector(
        tmp_path, artifacts, service_config, scheduler={"reload_probation_windows": 20, "reload_probation_s": 0}
    )
    app = run_app(cfg)
    gone = weakref.ref(app.engine.models["det"].wrapped)  # type: ignore[attr-defined]
    pub = publisher()
    rows = normal_rows(80, seed=14)
    t0 = epoch_base()
    pub.rows("R1", rows[:30], t0)
    assert wait_until(lambda: scored(app) == 30 - WINDOW + 1, timeout_s=30)
    assert app.reload() is True  # the same, good artifact: a new model object on trial
    assert app.scheduler.probation is not None
    pub.rows("R1", rows[30:80], t0, first_index=30)
    assert wait_until(lambda: scored(app) == 80 - WINDOW + 1, timeout_s=30), scored(app)
    assert wait_until(lambda: app.scheduler.probation is None, timeout_s=10)
    assert sample(app, "plantwatch_model_reloads_total", result="rolled_back") == 0
    gc.collect()
    assert gone() is None  # the previous detector is freed
    assert app.ready() == (True, "ready")


@pytest.mark.slow
def test_fault_free_hours_raise_no_alert(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., object],
    unique_prefix: str,
) -> None:
    """Three simulated hours of normal operation (event time, published as fast as the broker takes them)."""
    recorder = mqtt_recorder(f"{unique_prefix}/pw/alerts/#")
    cfg = service_config(outputs={"publish_scores": False, "publish_forecasts": False})
    app = run_app(cfg)
    n = 3 * 3600
    rows = normal_rows(n, seed=8, start=5000)
    pub, t0, chunk = publisher(), epoch_base(), 500
    for first in range(0, n, chunk):
        # In chunks: the broker drops what exceeds a client's queue (max_queued_messages, 1000 by default).
        pub.rows("R1", rows[first : first + chunk], t0, first_index=first)
        assert wait_until(
            lambda f=first: sample(app, "plantwatch_readings_received_total", unit="R1") == min(n, f + chunk), 30
        )
    assert wait_until(lambda: scored(app) == n - WINDOW + 1, timeout_s=120), scored(app)
    assert recorder.matching(f"{unique_prefix}/pw/alerts/+") == []
    assert sample(app, "plantwatch_alerts_fired_total", unit="R1", detector="reconstruction") == 0
    assert sample(app, "plantwatch_alerts_fired_total", unit="R1", detector="forecast") == 0


def test_broker_absent_at_start_then_connects(
    broker_factory: Callable[..., Broker],
    service_config: Callable[..., PlantwatchConfig],
    publisher: Callable[..., Publisher],
) -> None:
    broker = broker_factory()
    broker.stop()
    app = App(service_config(broker=broker))
    app.start()  # does not block nor fail: the link keeps retrying
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.metrics_port}/healthz", timeout=5) as response:
            assert response.status == 200
        assert app.ready() == (False, "not connected to the MQTT broker")
        assert sample(app, "plantwatch_mqtt_connected") == 0
        broker.start()
        assert wait_until(lambda: app.ready()[0], timeout_s=20)
        publisher(broker).rows("R1", normal_rows(20, seed=9), epoch_base())
        assert wait_until(lambda: scored(app) == 20 - WINDOW + 1, timeout_s=30)
    finally:
        assert app.stop(10) == 0


def test_a_reading_ahead_of_the_clock_costs_no_genuine_reading(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    """Issue 11 item 1 over MQTT: one reading 105 s ahead (inside max_clock_skew_s) on R1, a first reading at
    ts = 1.0 on R2; then both units' genuine streams (close to the clock) are placed and scored whole."""
    app = run_app(service_config())
    pub = publisher()
    t0 = float(int(time.time()) - 60)  # the genuine rows end about now: a live gateway catching up
    rows = normal_rows(60, seed=11)
    ahead = {"ts": time.time() + 105.0, "values": {s: 0.0 for s in SENSORS}}
    pub.raw("plant/R2/readings", json.dumps({"ts": 1.0, "values": {s: 0.0 for s in SENSORS}}).encode())
    pub.rows("R1", rows[:20], t0)
    pub.raw("plant/R1/readings", json.dumps(ahead).encode())
    pub.rows("R1", rows[20:], t0, first_index=20)
    pub.rows("R2", rows, t0)
    n_windows = 2 * (60 - WINDOW + 1)
    assert wait_until(lambda: scored(app) == n_windows, timeout_s=60), scored(app)
    assert wait_until(lambda: sample(app, "plantwatch_readings_rejected_total", reason="clock") == 2, timeout_s=10)
    assert sample(app, "plantwatch_readings_received_total", unit="R1") == 60
    assert sample(app, "plantwatch_readings_received_total", unit="R2") == 60
    assert sample(app, "plantwatch_readings_rejected_total", reason="late") == 0
    assert sample(app, "plantwatch_readings_rejected_total", reason="future") == 0
    assert sample(app, "plantwatch_windows_skipped_total", reason="gap") == 0  # ts = 1.0 was never the origin
    # Still on the genuine timeline: the next live rows are scored too.
    pub.rows("R1", normal_rows(5, seed=11, start=60), t0, first_index=60)
    assert wait_until(lambda: scored(app) == n_windows + 5, timeout_s=30), scored(app)


def test_received_and_rejected_count_messages_and_add_up(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    """Issue 11 items 2 and 6 over MQTT: N good messages, M redelivered duplicates of them, values beyond float32
    and other bad messages; each message is counted once, and the rejection rule's ratio is M+bad / all."""
    app = run_app(service_config())
    pub = publisher()
    t0 = epoch_base()
    n_good = 40
    rows = normal_rows(n_good, seed=12)
    pub.rows("R1", rows, t0)
    assert wait_until(lambda: scored(app) == n_good - WINDOW + 1, timeout_s=30), scored(app)
    duplicates = [
        json.dumps({"ts": t0 + i, "values": {s: float(v) for s, v in zip(SENSORS, rows[i], strict=True)}}).encode()
        for i in (10, 11, 12, 39)
    ]
    for body in duplicates:
        pub.raw("plant/R1/readings", body)
    beyond_float32 = ["1e39", "3.5e38", "1e300", "-1e39"]
    for text in beyond_float32:
        values = ", ".join(f'"{s}": {text if s == "s0" else "1.0"}' for s in SENSORS)
        pub.raw("plant/R1/readings", f'{{"ts": {t0 + n_good}, "values": {{{values}}}}}'.encode())
    pub.raw("plant/R1/s0", b"1e39")
    pub.raw("plant/R1/readings", b"{oops")
    expected = {"duplicate": len(duplicates), "non_finite": len(beyond_float32) + 1, "malformed": 1}
    for reason, n in expected.items():
        assert wait_until(
            lambda r=reason, n=n: sample(app, "plantwatch_readings_rejected_total", reason=r) == n, timeout_s=30
        ), (reason, sample(app, "plantwatch_readings_rejected_total", reason=reason))
    samples = scrape(app.metrics_port)
    received = samples.total("plantwatch_readings_received_total")
    rejected = samples.total("plantwatch_readings_rejected_total")
    assert (
        samples.value("plantwatch_readings_received_total", unit="R1") == received == n_good
    )  # duplicates not received
    assert rejected == sum(expected.values())
    assert samples.total("plantwatch_values_rejected_total") == 0  # no message here was partly placed
    # PlantwatchRejectionRateHigh: rejected / (received + rejected), here over increases from a fresh start (what
    # its rate()s over one window are proportional to): exactly the share of refused messages delivered.
    refused = sum(expected.values())  # 4 duplicates + 5 beyond float32 + 1 malformed
    assert rejected / (received + rejected) == refused / (n_good + refused) == 0.2
    # Nothing beyond float32 reached the buffers: no non-finite score, no scoring error, nothing new scored.
    assert samples.value("plantwatch_stage_errors_total", stage="scheduler") == 0
    assert scored(app) == n_good - WINDOW + 1
    assert np.isfinite(samples.value("plantwatch_anomaly_score", detector="forecast", unit="R1"))


def test_a_fast_replay_into_a_fresh_service_is_scored_completely(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    """Issue 11, case 5: 600 historical rows published as fast as the broker takes them. With a freshness limit of
    50 ms every taken window counts as one that waited, yet the unit's windows arrived faster than real time: a
    backlog, scored completely, not dropped as lag."""
    app = run_app(service_config(scheduler={"device": "cpu", "max_batch": 64, "max_delay_ms": 5, "max_lag_s": 0.05}))
    rows = normal_rows(600, seed=21)
    publisher().rows("R1", rows, epoch_base() - 86400)
    assert wait_until(lambda: scored(app) == 600 - WINDOW + 1, timeout_s=60), scored(app)
    assert sample(app, "plantwatch_windows_skipped_total", reason="backlog") == 0


def test_a_value_outside_its_limits_is_a_counted_sensor_fault_and_no_anomaly(
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., object],
    unique_prefix: str,
) -> None:
    """RELIABILITY B5 over MQTT: s3 of R1 reads -1e6 (its limits are [0, 100]) in 20 readings messages, and 5
    more messages on plant/R1/s3 carry only that value. Each bad value is refused as out_of_range: counted per
    value inside the 20 accepted messages, per message for the 5 refused whole; received + rejected is every
    message delivered. s3 is missing for those rows (held over one row, then the windows are skipped); a sensor
    alert names it out_of_range and resolves once it is back, and no model alert fires on the garbage."""
    recorder = mqtt_recorder(f"{unique_prefix}/pw/alerts/#")
    base = service_config()
    # max_gap_periods 1: a single held-over row, so the held value cannot add up to a model alert of its own (a
    # longer hold-over is the unit tests' business).
    units = [
        {**u.model_dump(mode="json"), "max_gap_periods": 1, "limits": {FAULT_SENSOR: {"min": 0, "max": 100}}}
        for u in base.units
        if u.name == "R1"
    ]
    app = run_app(service_config(units=units))
    pub = publisher()
    t0 = epoch_base()
    n_rows, broken = 100, range(40, 60)
    rows = normal_rows(n_rows, seed=13)
    rows[broken.start : broken.stop, SENSORS.index(FAULT_SENSOR)] = -1e6
    pub.rows("R1", rows, t0)
    alone = [json.dumps({"ts": t0 + k, "value": -1e6}).encode() for k in broken[:5]]
    for body in alone:
        pub.raw(f"plant/R1/{FAULT_SENSOR}", body)
    # Windows ending at rows 15..40 (row 40: s3 held over) and 75..99 (none holding rows 41..59) are scored.
    n_scored = (40 - WINDOW + 2) + (n_rows - (broken.stop + WINDOW - 1))
    assert wait_until(lambda: scored(app) == n_scored, timeout_s=60), scored(app)
    assert wait_until(
        lambda: sample(app, "plantwatch_readings_rejected_total", reason="out_of_range") == len(alone), timeout_s=30
    )
    samples = scrape(app.metrics_port)
    assert samples.value("plantwatch_values_rejected_total", reason="out_of_range") == len(broken)
    assert samples.total("plantwatch_values_rejected_total") == len(broken)
    received = samples.total("plantwatch_readings_received_total")
    rejected = samples.total("plantwatch_readings_rejected_total")
    assert samples.value("plantwatch_readings_received_total", unit="R1") == received == n_rows
    assert rejected == len(alone) and received + rejected == n_rows + len(alone)
    # Rows 41..59 past the hold-over, and the windows still holding one of them: skipped, never scored.
    assert samples.value("plantwatch_windows_skipped_total", reason="gap") == broken.stop + WINDOW - 1 - 41
    assert samples.value("plantwatch_stage_errors_total", stage="scheduler") == 0

    sensor = [
        m.json()
        for m in recorder.wait_for(
            f"{unique_prefix}/pw/alerts/R1", lambda m: m.json()["detector"] == "sensor", count=2, timeout_s=30
        )
    ]
    firing, resolved = sensor[0], sensor[-1]
    assert firing["state"] == "firing" and resolved["state"] == "resolved"
    assert firing["alert_id"] == resolved["alert_id"]
    assert firing["reason"] == "out_of_range" and firing["sensors"][0]["sensor"] == FAULT_SENSOR
    assert firing["severity"] == "critical"  # -1e6 is far outside a 100-wide range
    assert firing["started_at"] == t0 + broken.start  # from the first refused value
    assert resolved["ts"] >= t0 + broken.stop
    alerts = [m.json() for m in recorder.matching(f"{unique_prefix}/pw/alerts/R1")]
    assert [a for a in alerts if a["detector"] != "sensor"] == []  # no anomaly alert on garbage
    assert np.isfinite(samples.value("plantwatch_anomaly_score", detector="forecast", unit="R1"))
