"""Every PromQL expression of the Grafana dashboard and of the alert rules, run by a real Prometheus.

A Prometheus (Debian's package) on a free port scrapes the running service every second while the simulator's
publisher streams readings (one unit with a fault) through the mosquitto fixture. Then each dashboard query goes
through Prometheus' HTTP API and must return data, and each rule expression must evaluate without error (and
every rule must report health "ok"). A panel that queries a metric the service does not export returns nothing,
which fails the test.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from monitor.app import App
from monitor.config import PlantwatchConfig
from simulators.live import LivePublisher, Row
from tests.conftest import require_program
from tests.deploy.conftest import ROOT
from tests.kit import Broker, can_connect, free_port, stop_process, wait_until
from tests.service.conftest import SENSORS, epoch_base, normal_rows, with_fault
from tests.service.test_shadow import sensitive_copy

DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "plantwatch.json"
RULES = ROOT / "config" / "prometheus" / "rules" / "plantwatch.yml"
# Grafana's variables, as a dashboard user with "All" selected would send them.
VARIABLES = {"$__rate_interval": "15s", "$unit": ".*", "$sensor": ".*"}


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error body
            return json.loads(exc.read())

    def query(self, expr: str) -> Any:
        return self.get("/api/v1/query", query=expr)


@pytest.fixture
def service(
    service_config: Callable[..., PlantwatchConfig], artifacts: dict[str, Path], tmp_path: Path
) -> Iterator[App]:
    # R1 has a shadow candidate (the detector with lowered levels): the shadow panels have series to show.
    units = [u.model_dump(mode="json") for u in service_config().units]
    candidate = sensitive_copy(artifacts["det"], tmp_path / "candidate")
    units[0]["shadow"] = {"detector": {"name": "det-sensitive", "artifact": str(candidate)}}
    app = App(service_config(units=units))
    app.start()
    try:
        assert wait_until(lambda: app.ready()[0], timeout_s=15), app.ready()
        yield app
    finally:
        app.stop(10)


@pytest.fixture
def prometheus(service: App, tmp_path: Path) -> Iterator[Prometheus]:
    exe = require_program("prometheus", "prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "plantwatch", "static_configs": [{"targets": [f"127.0.0.1:{service.metrics_port}"]}]}
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        ready = wait_until(lambda: can_connect("127.0.0.1", port) and _ready(prom), timeout_s=30, interval_s=0.2)
        assert ready, log_path.read_text()[-3000:]
        yield prom
    finally:
        stop_process(proc)


def _ready(prom: Prometheus) -> bool:
    try:
        with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, Grafana variables substituted."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"unsubstituted variable in {panel['title']}: {expr}"
            found.append((panel["title"], expr))
    return found


def variable_queries() -> list[tuple[str, str]]:
    """The template variables' label_values(metric{...}, label) as (label, PromQL selecting the metric)."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for var in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
        assert match, var["query"]
        selector = match.group(1)
        for name, value in VARIABLES.items():
            selector = selector.replace(name, value)
        found.append((match.group(2), selector))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def problems_with_panel(prom: Prometheus, title: str, expr: str) -> str | None:
    """None when the query runs and returns at least one series, else what is wrong."""
    answer = prom.query(expr)
    if answer.get("status") != "success":
        return f"{title}: {expr}: {answer.get('error')}"
    if not answer["data"]["result"]:
        return f"{title}: {expr}: no data (does the service export this metric?)"
    return None


def stream(broker: Broker, prefix: str, seconds: float) -> LivePublisher:
    """The simulator's publisher: R1 with a fault on s3 from row 60 to 120, R2 normal, 20 rows/s per unit."""
    rows = int(seconds * 20)
    normal = normal_rows(rows, seed=3)
    faulty = np.concatenate([normal[:60], with_fault(normal[60:120]), normal[120:]])
    t0 = epoch_base()

    def source() -> Iterator[Row]:
        for i in range(rows):
            for unit, data in (("R1", faulty), ("R2", normal)):
                yield Row(t0 + i, unit, {s: float(v) for s, v in zip(SENSORS, data[i], strict=True)})

    publisher = LivePublisher(
        source(),
        broker.host,
        broker.port,
        speed=20.0,
        qos=1,
        readings_topic=f"{prefix}/plant/{{unit}}/readings",
    )
    return publisher.start()


def scraped_value(prom: Prometheus, expr: str) -> float:
    answer = prom.query(expr)
    result = answer.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else 0.0


def test_every_dashboard_and_rule_expression_runs_against_the_live_service(
    service: App, prometheus: Prometheus, mosquitto: Broker, unique_prefix: str
) -> None:
    publisher = stream(mosquitto, unique_prefix, seconds=8)
    try:
        # Scraped with windows scored and an alert fired; rates need two scrapes after that.
        assert wait_until(
            lambda: scraped_value(prometheus, 'sum(plantwatch_alerts_fired_total{job="plantwatch"})') >= 1,
            timeout_s=60,
            interval_s=0.5,
        ), prometheus.log_path.read_text()[-2000:]
        assert wait_until(
            lambda: (
                scraped_value(prometheus, "count(count_over_time(plantwatch_alerts_fired_total[15s]))") >= 1
                and scraped_value(prometheus, "max(count_over_time(plantwatch_alerts_fired_total[15s]))") >= 3
            ),
            timeout_s=30,
            interval_s=0.5,
        )
        panels = dashboard_queries()
        assert len(panels) >= 25
        problems = [p for title, expr in panels if (p := problems_with_panel(prometheus, title, expr))]
        assert not problems, "\n".join(problems)

        for label, selector in variable_queries():
            answer = prometheus.query(selector)
            values = {series["metric"].get(label) for series in answer["data"]["result"]}
            assert values - {None}, f"variable query label_values({selector}, {label}) has no values"

        rules = rule_expressions()
        assert len(rules) >= 10
        for name, expr in rules:
            answer = prometheus.query(expr)
            assert answer["status"] == "success", f"{name}: {expr}: {answer.get('error')}"

        # Prometheus itself evaluated every rule without error, and the unit's alert reached it.
        def rules_healthy() -> bool:
            groups = prometheus.get("/api/v1/rules")["data"]["groups"]
            states = [r for g in groups for r in g["rules"]]
            evaluated = all(r["health"] == "ok" and r["lastEvaluation"][:4] != "0001" for r in states)
            return len(states) == len(rules) and evaluated

        assert wait_until(rules_healthy, timeout_s=10, interval_s=0.5), prometheus.get("/api/v1/rules")
        # The fault on R1 lasted a few seconds: Prometheus' own ALERTS series shows the rule fired for it.
        fired = 'max_over_time(ALERTS{alertname="PlantwatchUnitAnomaly", alertstate="firing", unit="R1"}[5m])'
        assert scraped_value(prometheus, fired) == 1, prometheus.query("ALERTS")
        quiet = 'max_over_time(ALERTS{alertname="PlantwatchUnitAnomaly", unit="R2"}[5m])'
        assert prometheus.query(quiet)["data"]["result"] == []
    finally:
        publisher.stop()
        publisher.join(10)


def test_a_panel_on_a_metric_the_service_does_not_export_is_reported(service: App, prometheus: Prometheus) -> None:
    assert wait_until(lambda: scraped_value(prometheus, 'up{job="plantwatch"}') == 1, timeout_s=20, interval_s=0.5)
    problem = problems_with_panel(prometheus, "typo", 'plantwatch_anomaly_scores{unit=~".*"}')
    assert problem is not None and "no data" in problem
    broken = problems_with_panel(prometheus, "syntax", "sum(rate(plantwatch_readings_received_total[1m])")
    assert broken is not None and "parse error" in broken
    assert problems_with_panel(prometheus, "real", 'plantwatch_anomaly_threshold{unit=~".*"}') is None
