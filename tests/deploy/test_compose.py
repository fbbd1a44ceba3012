"""docker-compose.yml, the Dockerfile and the systemd unit, checked for consistency without a Docker engine.

Every service, mounted file, secret, port and volume must line up with the files they name, and the
plantwatch service's config must validate with monitor.config.load_config once the container paths are
pointed at what compose mounts there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import load_config
from tests.deploy.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
LONG_RUNNING = {"mosquitto", "plantwatch", "plantwatch-gpu", "simulator", "prometheus", "alertmanager", "grafana"}
ONE_SHOT = {"plantwatch-train"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, is_bind) for each short-syntax volume entry of a service."""
    found = []
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        found.append((source, target, source.startswith((".", "/"))))
    return found


def container_paths(compose: dict[str, Any], name: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts and secrets."""
    service = compose["services"][name]
    paths = {target: (ROOT / source).resolve() for source, target, bind in mounts(service) if bind}
    for secret in service.get("secrets", []):
        paths[f"/run/secrets/{secret}"] = (ROOT / compose["secrets"][secret]["file"]).resolve()
    return paths


def resolve(paths: dict[str, Path], container_path: str) -> Path | None:
    """The host file behind a container path, through the longest mounted prefix."""
    for target in sorted(paths, key=len, reverse=True):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return paths[target] / container_path[len(target) :].lstrip("/")
    return None


def test_services_have_restart_policies_healthchecks_and_logging(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and check["interval"] and check["retries"] >= 1, name
        assert "image" in services[name] or "build" in services[name], name
    assert services["plantwatch-train"]["restart"] == "no"
    # The service waits for a healthy broker and for trained models.
    for name in ("plantwatch", "plantwatch-gpu", "simulator"):
        depends = services[name]["depends_on"]
        assert depends["mosquitto"]["condition"] == "service_healthy"
        assert depends["plantwatch-train"]["condition"] == "service_completed_successfully"


def test_every_bind_mount_and_secret_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, target, bind in mounts(service):
            if bind:
                assert (ROOT / source).exists(), f"{name}: {source} (mounted at {target}) does not exist"
    for secret, spec in compose["secrets"].items():
        path = ROOT / spec["file"]
        assert path.is_file() and path.read_text().strip(), f"secret {secret}: {path} missing or empty"


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    used = {source for s in compose["services"].values() for source, _, bind in mounts(s) if not bind}
    declared = set(compose["volumes"])
    assert used == declared
    # Broker data and model artifacts survive a container's replacement.
    assert ("mosquitto-data", "/mosquitto/data", False) in mounts(compose["services"]["mosquitto"])
    artifacts = {(s, t) for s, t, _ in mounts(compose["services"]["plantwatch"])}
    assert ("plantwatch-artifacts", "/var/lib/plantwatch/artifacts") in artifacts
    secrets_used = {s for svc in compose["services"].values() for s in svc.get("secrets", [])}
    assert secrets_used == set(compose["secrets"])


def test_published_ports_are_unique_loopback_by_default_and_match_the_configs(compose: dict[str, Any]) -> None:
    published: dict[str, str] = {}
    for name, service in compose["services"].items():
        for spec in service.get("ports", []):
            host_ip, host_port, container_port = spec.rsplit(":", 2)
            assert host_port not in published, f"{name} and {published[host_port]} both publish {host_port}"
            published[host_port] = name
            assert host_ip in {"127.0.0.1", "${MQTT_BIND:-127.0.0.1}"}, f"{name} publishes on {host_ip}"
            assert host_port == container_port
    assert published == {"1883": "mosquitto", "9090": "prometheus", "9093": "alertmanager", "3000": "grafana"}
    conf = (ROOT / "config/mosquitto/mosquitto.conf").read_text()
    assert re.search(r"^listener 1883\s*$", conf, re.MULTILINE)


def test_mosquitto_config_files_are_mounted_where_the_config_names_them(compose: dict[str, Any]) -> None:
    paths = container_paths(compose, "mosquitto")
    conf = (ROOT / "config/mosquitto/mosquitto.conf").read_text()
    for key in ("password_file", "acl_file"):
        (value,) = re.findall(rf"^{key}\s+(\S+)", conf, re.MULTILINE)
        host = resolve(paths, value)
        assert host is not None and host.is_file(), f"{key} {value} is not mounted"
    (location,) = re.findall(r"^persistence_location\s+(\S+)", conf, re.MULTILINE)
    assert any(t.rstrip("/") == location.rstrip("/") for _, t, _ in mounts(compose["services"]["mosquitto"]))
    assert re.search(r"^persistence true", conf, re.MULTILINE)
    assert re.search(r"^allow_anonymous false", conf, re.MULTILINE)
    assert compose["services"]["mosquitto"]["command"][-1] in paths


@pytest.mark.parametrize("service", ["plantwatch", "plantwatch-gpu"])
def test_the_service_config_validates_with_load_config(
    compose: dict[str, Any], service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = compose["services"][service]
    command = spec["command"]
    assert command[:2] == ["run", "--config"]
    paths = container_paths(compose, service)
    config_file = resolve(paths, command[2])
    assert config_file is not None and config_file.is_file(), f"{command[2]} is not mounted"
    # Container paths in the config -> the mounted host files (artifacts: the named volume, empty here).
    text = config_file.read_text()
    for container_path in sorted(set(re.findall(r"(/(?:run|var|etc)/\S+)", text))):
        host = resolve(paths, container_path)
        if host is None:
            host = tmp_path / container_path.lstrip("/")
        text = text.replace(container_path, str(host))
    resolved = tmp_path / "plantwatch.yaml"
    resolved.write_text(text)
    for key, value in spec.get("environment", {}).items():
        monkeypatch.setenv(key, str(value))
    cfg = load_config(resolved)
    assert cfg.mqtt.host in compose["services"], "mqtt.host must be a compose service"
    assert cfg.mqtt.port == 1883 and cfg.mqtt.username == "plantwatch"
    assert cfg.mqtt.resolved_password() == (ROOT / "config/mosquitto/dev-secrets/plantwatch.txt").read_text().strip()
    assert cfg.metrics.host == "0.0.0.0" and spec["expose"] == [str(cfg.metrics.port)]
    assert cfg.scheduler.device == spec["environment"]["PLANTWATCH__SCHEDULER__DEVICE"]
    artifact_volume = next(t for s, t, bind in mounts(spec) if s == "plantwatch-artifacts")
    for unit in cfg.units:
        assert str(unit.detector.artifact).startswith(str(tmp_path / artifact_volume.lstrip("/")))
    # The units are the ones the compose simulator publishes.
    assert [u.name for u in cfg.units] == ["reactor-01", "reactor-02"]
    assert "/app/config/scenarios/demo.yaml" in " ".join(compose["services"]["simulator"]["command"])
    scenario = yaml.safe_load((ROOT / "config/scenarios/demo.yaml").read_text())
    assert scenario["units"]["names"] == [u.name for u in cfg.units]


def test_gpu_profile_reserves_an_nvidia_device_and_replaces_the_cpu_service(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["plantwatch-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["networks"]["default"]["aliases"] == ["plantwatch"]  # Prometheus' target stays plantwatch:9108
    assert "profiles" not in compose["services"]["plantwatch"]  # CPU by default
    assert compose["services"]["plantwatch"]["deploy"]["replicas"] == "${PLANTWATCH_CPU_REPLICAS:-1}"


def test_prometheus_alertmanager_and_grafana_point_at_each_other(compose: dict[str, Any]) -> None:
    prom = yaml.safe_load((ROOT / "config/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    (target,) = jobs["plantwatch"]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "plantwatch" and port in compose["services"]["plantwatch"]["expose"]
    (am_target,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_target.split(":")[0] == "alertmanager"
    prom_paths = container_paths(compose, "prometheus")
    (rule_glob,) = prom["rule_files"]
    rule_dir = resolve(prom_paths, rule_glob.rsplit("/", 1)[0])
    assert rule_dir is not None and (rule_dir / "plantwatch.yml").is_file()
    assert resolve(prom_paths, "/etc/prometheus/prometheus.yml") == (ROOT / "config/prometheus/prometheus.yml")

    am_paths = container_paths(compose, "alertmanager")
    am_file = resolve(am_paths, "/etc/alertmanager/alertmanager.yml")
    assert am_file is not None and am_file.is_file()
    am = yaml.safe_load(am_file.read_text())
    receivers = {r["name"] for r in am["receivers"]}
    assert am["route"]["receiver"] in receivers and all(r["receiver"] in receivers for r in am["route"]["routes"])

    graf_paths = container_paths(compose, "grafana")
    datasource_file = resolve(graf_paths, "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert datasource_file is not None
    (datasource,) = yaml.safe_load(datasource_file.read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and "9090" in compose["services"]["prometheus"]["ports"][0]
    provider_file = resolve(graf_paths, "/etc/grafana/provisioning/dashboards/plantwatch.yml")
    assert provider_file is not None
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    dashboards = resolve(graf_paths, provider["options"]["path"])
    assert dashboards is not None
    dashboard = json.loads((dashboards / "plantwatch.json").read_text())
    uids = {
        t["datasource"]["uid"]
        for p in dashboard["panels"]
        for t in p.get("targets", [])
        if isinstance(t.get("datasource"), dict)
    }
    assert uids == {datasource["uid"]}


def test_dockerfile_copies_existing_paths_and_runs_the_compose_command(compose: dict[str, Any]) -> None:
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    (cmd,) = re.findall(r"^CMD (\[.+\])$", text, re.MULTILINE)
    assert json.loads(cmd) == compose["services"]["plantwatch"]["command"]
    assert re.search(r"^USER plantwatch$", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["plantwatch"\]$', text, re.MULTILINE)  # exec form: SIGTERM reaches it
    assert "9108/healthz" in text


def test_systemd_unit_is_hardened_as_reliability_section_3_asks() -> None:
    unit = (ROOT / "config/systemd/plantwatch.service").read_text()
    settings = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/plantwatch",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "Restart": "on-failure",
        "TimeoutStopSec": "30",
        "User": "plantwatch",
        "StateDirectoryMode": "0700",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], f"{key}: {settings.get(key)}"
    assert settings["ExecStart"] == ["/opt/plantwatch/bin/plantwatch run --config /etc/plantwatch/plantwatch.yaml"]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["RestartPreventExitStatus"] == ["2"]  # a bad config does not restart in a loop
