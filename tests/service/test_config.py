"""Configuration: validation with field paths, environment overrides, secrets, the example file, CLI, and
check-config refusing what run refuses (the same preflight, the same line)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import ConfigError, load_config, mask_secrets
from tests.kit import Broker
from tests.service.conftest import SENSORS, service_config_dict

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "plantwatch.example.yaml"

MINIMAL = """
units:
  - name: R1
    sensors: [a, b]
    detector: {name: det, artifact: arts/det}
mqtt:
  host: h1
  protocol: 3.1.1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plantwatch.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults_and_relative_paths(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.mqtt.host == "h1"
    assert cfg.mqtt.protocol == "3.1.1"
    assert cfg.mqtt.port == 1883
    assert cfg.metrics.host == "127.0.0.1"
    assert cfg.units[0].period_s == 1.0
    assert cfg.units[0].alerts.fire_hits == 3
    assert cfg.units[0].detector.artifact == (tmp_path / "arts" / "det").resolve()
    assert cfg.units[0].forecaster is None


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTWATCH__MQTT__HOST", "envhost")
    monkeypatch.setenv("PLANTWATCH__SCHEDULER__MAX_BATCH", "64")
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.mqtt.host == "envhost"
    assert cfg.mqtt.protocol == "3.1.1"  # the rest of the section is kept
    assert cfg.scheduler.max_batch == 64


def test_secret_from_env_is_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTWATCH__MQTT__PASSWORD", "hunter2-secret")
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.mqtt.resolved_password() == "hunter2-secret"
    assert "hunter2-secret" not in repr(cfg)
    assert "hunter2-secret" not in str(mask_secrets(cfg))


def test_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    cfg = load_config(_write(tmp_path, MINIMAL + "  password_file: pw\n"))
    assert cfg.mqtt.resolved_password() == "from-file"
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, MINIMAL + "  password_file: missing\n"))
    assert info.value.errors[0].startswith("mqtt.password_file: no such file")


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ("  colour: red\n", "mqtt.colour: Extra inputs are not permitted"),
        ("  port: 0\n", "mqtt.port: Input should be greater than or equal to 1"),
        ("  port: abc\n", "mqtt.port: Input should be a valid integer"),
        ("  protocol: 4\n", "mqtt.protocol: Input should be '5' or '3.1.1'"),
        ("  topics: {readings: 'plant/#'}\n", "mqtt.topics.readings: Value error, must be a non-empty topic"),
        ("  reconnect_min_s: 60\n", "mqtt: Value error, reconnect_min_s must not exceed reconnect_max_s"),
    ],
)
def test_invalid_mqtt_field_is_named(tmp_path: Path, patch: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, MINIMAL + patch))
    assert any(line.startswith(expected) for line in info.value.errors), info.value.errors


def test_unit_errors_name_each_path(tmp_path: Path) -> None:
    text = """
units:
  - name: R1
    sensors: [a, a]
    detector: {name: det, artifact: x}
    alerts: {fire_hits: 9}
  - name: "bad name"
    sensors: [a]
    detector: {name: det, artifact: x}
  - name: R1
    sensors: [a]
    detector: {name: det, artifact: x}
"""
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    errors = info.value.errors
    assert "units.0.sensors: Value error, sensor names must be unique" in errors
    assert "units.0.alerts: Value error, fire_hits (9) must not exceed fire_window (5)" in errors
    assert any(e.startswith("units.1.name: String should match pattern") for e in errors)


def test_sensor_health_defaults_limits_and_their_validation(tmp_path: Path) -> None:
    from monitor.params import specs_from_config

    cfg = load_config(_write(tmp_path, MINIMAL))
    health = cfg.units[0].sensor_health
    assert health.enabled and health.silent and health.stuck and health.out_of_range and health.stuck_constant
    assert (health.stuck_rows, health.stuck_std_ratio, health.envelope_range_k, health.envelope_margin) == (
        0,
        0.1,
        1.0,
        0.05,
    )
    assert cfg.units[0].limits == {}

    text = MINIMAL.replace(
        "    detector: {name: det, artifact: arts/det}\n",
        "    detector: {name: det, artifact: arts/det}\n"
        "    limits: {a: {min: -10, max: 90.5}}\n"
        "    sensor_health: {stuck_rows: 30, stuck: false, envelope_margin: null}\n",
    )
    cfg = load_config(_write(tmp_path, text))

    class Model:
        window = 16

    specs, _, units = specs_from_config(cfg, {"det": Model()})  # type: ignore[dict-item]
    spec = units["R1"].health
    assert spec is not None and spec.limits == {"a": (-10.0, 90.5)} and spec.stuck_rows == 30 and not spec.stuck
    assert units["R1"].envelope_margin is None
    assert specs["R1"].silent_rows == cfg.units[0].alerts.fire_window
    off = load_config(_write(tmp_path, text.replace("stuck: false", "enabled: false")))
    assert specs_from_config(off, {"det": Model()})[2]["R1"].health is None  # type: ignore[dict-item]

    bad = MINIMAL.replace(
        "    detector: {name: det, artifact: arts/det}\n",
        "    detector: {name: det, artifact: arts/det}\n"
        "    limits: {a: {min: 5, max: 5}, zz: {min: 0, max: 1}}\n"
        "    sensor_health: {stuck_rows: 1, envelope_range_k: -1, typo: 1}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, bad))
    errors = "\n".join(info.value.errors)
    assert "units.0.limits.a: Value error, need finite min < max, got min 5.0, max 5.0" in errors
    assert "units.0.sensor_health.stuck_rows: Value error, stuck_rows must be 0 (the whole window) or at least 2" in (
        errors
    )
    assert "units.0.sensor_health.envelope_range_k: Input should be greater than or equal to 0" in errors
    assert "units.0.sensor_health.typo: Extra inputs are not permitted" in errors
    unknown = bad.replace("a: {min: 5, max: 5}, ", "").replace("stuck_rows: 1, envelope_range_k: -1, typo: 1", "")
    with pytest.raises(ConfigError, match="limits name sensors the unit does not have: zz"):
        load_config(_write(tmp_path, unknown))


def test_duplicate_units_and_max_units(tmp_path: Path) -> None:
    unit = "  - {name: R1, sensors: [a], detector: {name: d, artifact: x}}\n"
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "units:\n" + unit + unit))
    assert info.value.errors == ["(root): Value error, unit names must be unique; repeated: R1"]
    unit2 = "  - {name: R2, sensors: [a], detector: {name: d, artifact: x}}\n"
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "units:\n" + unit + unit2 + "limits: {max_units: 1}\n"))
    assert "limits.max_units is 1" in info.value.errors[0]


def test_yaml_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "units: [\n"))
    assert info.value.errors[0].startswith("(file): invalid YAML")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.errors[0].startswith("(file): cannot read")


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.units[0].name == "R-101"
    assert len(cfg.units[0].sensors) == 8
    assert cfg.mqtt.protocol == "5"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, timeout=60)


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    bad = _write(tmp_path, MINIMAL + "  port: 70000\n")
    result = _cli("check-config", str(bad))
    assert result.returncode == 2
    assert "mqtt.port: Input should be less than or equal to 65535" in result.stderr
    ok = _cli("check-config", "--skip-artifacts", str(EXAMPLE))
    assert ok.returncode == 0, ok.stderr
    missing = _cli("check-config", str(EXAMPLE))
    assert missing.returncode == 2
    assert "units.0.detector.artifact: no artifact" in missing.stderr
    # The file as `run --config` takes it, too; one of the two forms, not both.
    as_run = _cli("check-config", "--skip-artifacts", "--config", str(EXAMPLE))
    assert as_run.returncode == 0 and f"{EXAMPLE}: OK (1 unit;" in as_run.stdout, as_run.stdout + as_run.stderr
    both = _cli("check-config", "--config", str(EXAMPLE), str(bad))
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_print_config_masks_password(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "print-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PLANTWATCH__MQTT__PASSWORD": "hunter2-secret", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2-secret" not in result.stdout
    assert "password: '**********'" in result.stdout
    assert "host: h1" in result.stdout


def test_password_in_the_yaml_file_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-in-yaml"
    path = _write(tmp_path, MINIMAL + f"  password: {secret}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.errors
    assert line.startswith("mqtt.password: a password does not belong in the config file")
    assert "PLANTWATCH__MQTT__PASSWORD" in line and "mqtt.password_file" in line
    assert secret not in str(info.value)
    # The environment alternative does not make the file's copy acceptable; other errors are still listed.
    monkeypatch.setenv("PLANTWATCH__MQTT__PASSWORD", "from-env")
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, MINIMAL + f"  password: {secret}\n  port: 0\n"))
    assert info.value.errors[0].startswith("mqtt.password: a password does not belong")
    assert any(e.startswith("mqtt.port:") for e in info.value.errors)
    result = _cli("check-config", "--skip-artifacts", str(path))
    assert result.returncode == 2
    assert "mqtt.password: a password does not belong in the config file" in result.stderr
    assert secret not in result.stdout + result.stderr
    # `password: null` says nothing, and the environment alone is the supported way.
    assert load_config(_write(tmp_path, MINIMAL + "  password: null\n")).mqtt.resolved_password() == "from-env"


# check-config and run refuse the same configs, with the same line: each case is a config run refused before it
# connected (App raised StartupError, exit 2) while check-config passed it (or would have raised a traceback).
def _parity_cases(
    tmp_path: Path, artifacts: dict[str, Path]
) -> dict[str, tuple[Callable[[dict[str, Any]], None], str]]:
    import shutil

    det_copy = tmp_path / "det-copy"
    shutil.copytree(artifacts["det"], det_copy)
    broken = tmp_path / "det-broken"
    shutil.copytree(artifacts["det"], broken)
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")  # sha256 no longer matches the manifest
    (tmp_path / "pw-binary").write_bytes(b"\xff\xfe\x00not text\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")

    def two_artifacts(c: dict[str, Any]) -> None:
        c["units"][1]["detector"] = {"name": "det", "artifact": str(det_copy)}

    def foreign_sensor(c: dict[str, Any]) -> None:
        c["units"][0]["sensors"] = [*SENSORS[:-1], "zz"]

    def wrong_role(c: dict[str, Any]) -> None:
        c["units"][0]["detector"] = {"name": "fc", "artifact": str(artifacts["fc"])}

    def bad_weights(c: dict[str, Any]) -> None:
        c["units"][0]["detector"] = {"name": "det2", "artifact": str(broken)}

    def unreadable_password(c: dict[str, Any]) -> None:
        c["mqtt"]["password_file"] = str(tmp_path / "pw-binary")

    def bad_ca(c: dict[str, Any]) -> None:
        c["mqtt"]["tls"] = {"ca_file": str(tmp_path / "ca.pem")}

    def foreign_address(c: dict[str, Any]) -> None:
        c["metrics"] = {"host": "192.0.2.1", "port": 0}  # TEST-NET-1: on no host's interfaces

    (tmp_path / "a-file").write_text("not a directory\n")

    def state_under_a_file(c: dict[str, Any]) -> None:
        c["state"] = {"dir": str(tmp_path / "a-file" / "state")}

    def reduced_precision_on_the_cpu(c: dict[str, Any]) -> None:
        c["scheduler"]["precision"] = "bf16"  # the config scores on the CPU: ONNX Runtime runs the fp32 graph

    return {
        "two artifacts for one model": (
            two_artifacts,
            "units.1.detector: model 'det' is configured with two artifacts",
        ),
        "a sensor the model lacks": (
            foreign_sensor,
            "units.0.sensors: model 'det' (detector) was trained on other sensors than unit R1 has "
            "(the unit lacks: s7; the model lacks: zz)",
        ),
        "a forecaster as detector": (wrong_role, "units.0.detector: model 'fc' ("),  # (path) is a forecaster, ...
        "weights that do not load": (bad_weights, f"units.0.detector.artifact: model artifact {broken}: "),
        "a password file that is not text": (unreadable_password, "mqtt.password_file: cannot read"),
        "a CA file that is not a certificate": (bad_ca, "mqtt.tls: cannot load the TLS settings"),
        "a metrics address not on this host": (foreign_address, "metrics.host: cannot listen on 192.0.2.1:0"),
        "a state dir under a file": (state_under_a_file, f"state.dir: {tmp_path / 'a-file'} is not a directory"),
        "bf16 on the CPU": (reduced_precision_on_the_cpu, "scheduler.precision: bf16 applies on CUDA only"),
    }


CASES = [
    "two artifacts for one model",
    "a sensor the model lacks",
    "a forecaster as detector",
    "weights that do not load",
    "a password file that is not text",
    "a CA file that is not a certificate",
    "a metrics address not on this host",
    "a state dir under a file",
    "bf16 on the CPU",
]


@pytest.mark.parametrize("case", CASES)
def test_check_config_refuses_what_run_refuses(
    case: str,
    tmp_path: Path,
    artifacts: dict[str, Path],
    mosquitto: Broker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from monitor.app import App
    from monitor.commands import check_config
    from monitor.startup import StartupError

    patch, expected = _parity_cases(tmp_path, artifacts)[case]
    config = service_config_dict(mosquitto, artifacts, "parity")
    patch(config)
    path = tmp_path / "plantwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(StartupError) as info:
        App(load_config(path))
    assert str(info.value).startswith(expected), info.value
    assert "\n" not in str(info.value)
    code = check_config.main(argparse.Namespace(config=str(path), skip_artifacts=False))
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [str(info.value)]  # the very same line


def test_check_config_refuses_cuda_without_it(
    tmp_path: Path, artifacts: dict[str, Path], mosquitto: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from monitor.commands import check_config

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: scheduler.device cuda is valid here")
    config = service_config_dict(mosquitto, artifacts, "parity")
    config["scheduler"]["device"] = "cuda"
    path = tmp_path / "plantwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    assert check_config.main(argparse.Namespace(config=str(path), skip_artifacts=False)) == 2
    assert capsys.readouterr().err.startswith("scheduler.device: device 'cuda' requested but CUDA is not available")


def test_check_config_passes_a_config_run_accepts(
    tmp_path: Path, artifacts: dict[str, Path], mosquitto: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.commands import check_config

    path = tmp_path / "plantwatch.yaml"
    path.write_text(yaml.safe_dump(service_config_dict(mosquitto, artifacts, "parity")))
    assert check_config.main(argparse.Namespace(config=str(path), skip_artifacts=False)) == 0
    assert "OK (2 units; all pre-flight checks)" in capsys.readouterr().out
