"""The service as a process: exit codes, SIGTERM, SIGKILL and restart with the persistent session and alert state."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.kit import Broker, SpawnedService, wait_until
from tests.service.conftest import WINDOW, Publisher, epoch_base, normal_rows, service_config_dict, with_fault


def test_invalid_config_exits_2_naming_the_field(tmp_path: Path, artifacts: dict[str, Path], mosquitto: Broker) -> None:
    config = service_config_dict(mosquitto, artifacts, "x")
    config["mqtt"]["qos"] = 7
    config["units"][0]["colour"] = "red"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "mqtt.qos: Input should be 0, 1 or 2" in result.stderr
    assert "units.0.colour: Extra inputs are not permitted" in result.stderr
    assert config["mqtt"]["client_id"] not in mosquitto.log()  # it never connected


def test_missing_artifact_exits_2(tmp_path: Path, artifacts: dict[str, Path], mosquitto: Broker) -> None:
    config = service_config_dict(mosquitto, {**artifacts, "fc": tmp_path / "nowhere"}, "x")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "units.0.forecaster.artifact: no artifact" in result.stderr


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "metrics.port: cannot listen on 127.0.0.1:{port}: Address already in use"),
        ("192.0.2.1", "metrics.host: cannot listen on 192.0.2.1:{port}: Cannot assign requested address"),
    ],
    ids=["busy port", "address not on this host"],
)
def test_unusable_metrics_port_is_one_line_and_exit_2_before_connecting(
    tmp_path: Path, artifacts: dict[str, Path], mosquitto: Broker, host: str, expected: str
) -> None:
    """Exit 2, which the systemd unit does not restart on (RestartPreventExitStatus=2, tests/deploy), not a
    traceback and exit 1 restarted in a loop; the port is bound before the broker is contacted."""
    import socket

    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # what another process holding the port looks like
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        config = service_config_dict(mosquitto, artifacts, "busy", metrics={"host": host, "port": port})
        path = tmp_path / "plantwatch.yaml"
        path.write_text(yaml.safe_dump(config))
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--config", str(path)], capture_output=True, text=True, timeout=60
        )
    finally:
        holder.close()
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [expected.format(port=port)]
    assert config["mqtt"]["client_id"] not in mosquitto.log()  # it never connected


def test_sighup_reloads_then_sigterm_publishes_offline_and_exits_0(
    mosquitto: Broker,
    artifacts: dict[str, Path],
    unique_prefix: str,
    spawned: Callable[[dict[str, Any]], SpawnedService],
    mqtt_recorder: Callable[..., Any],
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/pw/status")
    svc = spawned(service_config_dict(mosquitto, artifacts, unique_prefix))
    svc.start()
    recorder.wait_for(f"{unique_prefix}/pw/status", lambda m: m.payload == b"online")
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: svc.metric("plantwatch_model_reloads_total", result="ok") == 1, timeout_s=30)
    assert svc.ready()  # still serving after the reload
    assert svc.signal(signal.SIGTERM) == 0
    recorder.wait_for(f"{unique_prefix}/pw/status", lambda m: m.payload == b"offline")
    assert "stopped" in svc.log()


def test_killed_service_restarts_scores_the_backlog_and_fires_no_alert_twice(
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    unique_prefix: str,
    spawned: Callable[[dict[str, Any]], SpawnedService],
    mqtt_recorder: Callable[..., Any],
    publisher: Callable[..., Publisher],
) -> None:
    recorder = mqtt_recorder(f"{unique_prefix}/pw/#")
    config = service_config_dict(mosquitto, artifacts, unique_prefix, unit_names=("R1",))
    config["units"][0]["alerts"] |= {"resolve_hits": 5, "min_duration_s": 5, "renotify_s": 3600}
    config["state"] = {"dir": str(tmp_path / "state")}
    svc = spawned(config)
    svc.start()
    t0 = epoch_base()
    normal = normal_rows(240, seed=11)
    rows = np.concatenate([normal[:60], with_fault(normal[60:120]), normal[120:]])
    pub = publisher()
    pub.rows("R1", rows[:80], t0)  # the fault starts at row 60
    alert_topic = f"{unique_prefix}/pw/alerts/R1"

    def recon(state: str) -> Callable[[Any], bool]:
        return lambda m: m.json()["detector"] == "reconstruction" and m.json()["state"] == state

    (firing,) = recorder.wait_for(alert_topic, recon("firing"), timeout_s=30)
    assert wait_until(
        lambda: svc.metric("plantwatch_windows_scored_total", detector="reconstruction") == 80 - WINDOW + 1, 30
    )
    assert svc.signal(signal.SIGKILL) == -signal.SIGKILL
    pub.rows("R1", rows[80:], t0, first_index=80)  # fault continues, then ends, while the service is down
    svc.start()
    (resolved,) = recorder.wait_for(alert_topic, recon("resolved"), timeout_s=60)
    assert resolved.json()["alert_id"] == firing.json()["alert_id"]
    # The restored episode did not fire again: one episode, and no severity announced twice (a firing event after
    # the first is an escalation from warning to critical, which may come before or after the restart).
    firings = [m.json() for m in recorder.matching(alert_topic, recon("firing"))]
    assert {f["alert_id"] for f in firings} == {firing.json()["alert_id"]}
    assert len(firings) == len({f["severity"] for f in firings}) and firings[0]["severity"] == "warning"
    # Every reading published while it was down was delivered, and the buffers came back from the journal: each of
    # those rows is scored, the first one included (no window's length of warm-up after the restart).
    assert wait_until(lambda: svc.metric("plantwatch_windows_scored_total", detector="reconstruction") == 160, 30), (
        svc.log()[-3000:]
    )
    assert svc.metric("plantwatch_readings_received_total", unit="R1") == 160
    assert svc.metric("plantwatch_journal_replayed_total", result="placed") == 80
    recorder.wait_for(f"{unique_prefix}/pw/scores/R1", lambda m: m.json()["ts"] == t0 + 239)
    scored_ts = {m.json()["ts"] for m in recorder.matching(f"{unique_prefix}/pw/scores/R1")}
    assert {t0 + i for i in range(WINDOW - 1, 240)} <= scored_ts
    assert svc.signal(signal.SIGTERM) == 0
    state = json.loads(recorder.matching(f"{unique_prefix}/pw/alerts/R1/state")[-1].payload)
    assert state["state"] == "ok"


# The worst of the hostile artifact corpus (models/hostile.py; every case is tested in process in
# tests/models/test_hostile_artifacts.py): 16 TB of LSTM, a RecursionError, NaN weights, a FIFO whose open blocks.
WORST_ARTIFACTS = ("hidden_size_1e6", "brackets_100k", "weights_nan", "weights_fifo")


# weights_overflowing_output: finite weights whose probe batch scores inf (only the probe catches it).
@pytest.mark.parametrize("case", [*WORST_ARTIFACTS, "weights_overflowing_output"])
def test_hostile_artifact_at_start_is_one_line_and_exit_2(
    case: str, tmp_path: Path, artifacts: dict[str, Path], mosquitto: Broker
) -> None:
    from models.hostile import build_case

    det = build_case(case, artifacts["det"], tmp_path / "det")
    config = service_config_dict(mosquitto, {**artifacts, "det": det}, "x")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    refused = [line for line in result.stderr.splitlines() if str(det) in line]
    assert len(refused) == 1, result.stderr
    assert refused[0].startswith(f"units.0.detector.artifact: model artifact {det}: ")
    print(refused[0])


def test_hostile_artifacts_on_sighup_keep_the_old_models_scoring(
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    unique_prefix: str,
    spawned: Callable[[dict[str, Any]], SpawnedService],
    publisher: Callable[..., Publisher],
) -> None:
    import shutil

    from models.hostile import build_case

    det = tmp_path / "det"
    shutil.copytree(artifacts["det"], det)
    svc = spawned(service_config_dict(mosquitto, {**artifacts, "det": det}, unique_prefix, unit_names=("R1",)))
    svc.start()
    assert svc.proc is not None
    pub = publisher()
    t0 = epoch_base()
    rows = normal_rows(WINDOW + 20 * len(WORST_ARTIFACTS), seed=12)

    def scored() -> float:
        return svc.metric("plantwatch_windows_scored_total", detector="reconstruction")

    published = WINDOW
    pub.rows("R1", rows[:published], t0)
    assert wait_until(lambda: scored() == 1, timeout_s=30), svc.log()[-3000:]
    for refusals, case in enumerate(WORST_ARTIFACTS, start=1):
        build_case(case, artifacts["det"], det)
        svc.proc.send_signal(signal.SIGHUP)
        assert wait_until(
            lambda n=refusals: svc.metric("plantwatch_model_reloads_total", result="error") == n,  # type: ignore[misc]
            timeout_s=30,
        ), svc.log()[-3000:]
        assert svc.ready(), case  # still up and ready on the old models
        pub.rows("R1", rows[published : published + 20], t0, first_index=published)
        published += 20
        assert wait_until(lambda p=published: scored() == p - WINDOW + 1, timeout_s=30), (case, svc.log()[-3000:])  # type: ignore[misc]
    log = svc.log()
    assert "Traceback" not in log
    refused = [line for line in log.splitlines() if "model reload refused" in line]
    assert len(refused) == len(WORST_ARTIFACTS)
    print("\n".join(refused))
    for line, reason in zip(refused, ("hidden_size", "nested", "NaN", "FIFO"), strict=True):
        assert reason in line, line
    # The good artifact back: the next reload is accepted.
    shutil.rmtree(det)
    shutil.copytree(artifacts["det"], det)
    svc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: svc.metric("plantwatch_model_reloads_total", result="ok") == 1, timeout_s=30)
    assert svc.metric("plantwatch_model_reloads_total", result="error") == len(WORST_ARTIFACTS)
    assert svc.ready()
    assert svc.signal(signal.SIGTERM) == 0


def test_kill_9_loses_no_acknowledged_reading_and_scores_what_the_killed_process_had_not(
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    unique_prefix: str,
    spawned: Callable[[dict[str, Any]], SpawnedService],
    mqtt_recorder: Callable[..., Any],
    publisher: Callable[..., Publisher],
) -> None:
    """Killed after it acknowledged 300 rows and before it scored them (a batch waits up to 5 s to fill): the
    restart replays them from its journal and scores every window, then goes on with the next rows."""
    recorder = mqtt_recorder(f"{unique_prefix}/pw/scores/#")
    config = service_config_dict(mosquitto, artifacts, unique_prefix, unit_names=("R1",))
    config["scheduler"] |= {"max_batch": 4096, "max_delay_ms": 5000}
    config["state"] = {"dir": str(tmp_path / "state")}
    svc = spawned(config)
    svc.start()
    t0 = epoch_base()
    rows = normal_rows(320, seed=5)
    pub = publisher()
    pub.rows("R1", rows[:300], t0)
    assert wait_until(lambda: svc.metric("plantwatch_readings_received_total", unit="R1") == 300, 30)
    scored_before = svc.metric("plantwatch_windows_scored_total", detector="reconstruction")
    assert svc.signal(signal.SIGKILL) == -signal.SIGKILL
    svc.start()
    assert svc.metric("plantwatch_journal_replayed_total", result="placed") == 300
    # What the killed process had taken but not scored is scored now (the marks say where it had got to).
    rescored = svc.metric("plantwatch_journal_replayed_total", result="rescored")
    assert rescored == 300 - WINDOW + 1 - scored_before > 0
    pub.rows("R1", rows[300:], t0, first_index=300)
    recorder.wait_for(f"{unique_prefix}/pw/scores/R1", lambda m: m.json()["ts"] == t0 + 319, timeout_s=30)
    scored_ts = {m.json()["ts"] for m in recorder.matching(f"{unique_prefix}/pw/scores/R1")}
    assert scored_ts == {t0 + i for i in range(WINDOW - 1, 320)}
    assert svc.metric("plantwatch_windows_skipped_total", reason="backlog") == 0
    assert svc.signal(signal.SIGTERM) == 0


def test_sighup_to_a_model_scoring_inf_on_live_windows_is_rolled_back(
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    unique_prefix: str,
    spawned: Callable[[dict[str, Any]], SpawnedService],
    publisher: Callable[..., Publisher],
) -> None:
    """`plantwatch run`, SIGHUP to an artifact that passes the load-time probe and scores inf on real windows: the
    old model is swapped back, scores every window, and the service is ready on it."""
    import shutil

    from models.hostile import overflowing_off_the_mean

    det = tmp_path / "det"
    shutil.copytree(artifacts["det"], det)
    svc = spawned(service_config_dict(mosquitto, {**artifacts, "det": det}, unique_prefix, unit_names=("R1",)))
    svc.start()
    assert svc.proc is not None
    pub = publisher()
    t0 = epoch_base()
    rows = normal_rows(90, seed=15)

    def scored() -> float:
        return svc.metric("plantwatch_windows_scored_total", detector="reconstruction")

    pub.rows("R1", rows[:30], t0)
    assert wait_until(lambda: scored() == 30 - WINDOW + 1, timeout_s=30), svc.log()[-3000:]
    overflowing_off_the_mean(artifacts["det"], det)
    svc.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: svc.metric("plantwatch_model_reloads_total", result="ok") == 1, timeout_s=30)
    pub.rows("R1", rows[30:60], t0, first_index=30)
    assert wait_until(lambda: svc.metric("plantwatch_model_reloads_total", result="rolled_back") == 1, 30), svc.log()
    assert wait_until(lambda: scored() == 60 - WINDOW + 1, timeout_s=30), svc.log()[-3000:]  # none lost
    assert wait_until(svc.ready, timeout_s=10)
    pub.rows("R1", rows[60:90], t0, first_index=60)
    assert wait_until(lambda: scored() == 90 - WINDOW + 1, timeout_s=30), svc.log()[-3000:]
    assert svc.metric("plantwatch_stage_errors_total", stage="scheduler") == 0
    log = svc.log()
    assert "RuntimeWarning" not in log and "scoring a batch" not in log, log[-3000:]  # overflow: judged, not noise
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "reloaded model det scored inf" in errors[0], errors
    print(errors[0])
    assert svc.signal(signal.SIGTERM) == 0
