"""The Grafana dashboard JSON: well formed for provisioning (ids, grid, datasources, variables, required panels)."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.conftest import ROOT

DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "plantwatch.json"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    dashboard = load()
    assert dashboard["uid"] == "plantwatch"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_targets_use_the_provisioned_datasource_and_distinct_ref_ids() -> None:
    for panel in load()["panels"]:
        if panel["type"] == "row":
            continue
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert all(t["datasource"]["uid"] == "prometheus" and t["expr"].strip() for t in panel["targets"])


def test_the_panels_the_operators_need_are_there() -> None:
    dashboard = load()
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "plantwatch_anomaly_score",
        "plantwatch_anomaly_threshold",
        "plantwatch_alerts_active",
        "plantwatch_sensor_error",
        "plantwatch_forecast_value",
        "plantwatch_sensor_value",
        "plantwatch_readings_received_total",
        "plantwatch_readings_rejected_total",
        "plantwatch_inference_seconds_bucket",
        "plantwatch_batch_size_windows_bucket",
        "plantwatch_buffer_fill_ratio",
        "plantwatch_mqtt_connected",
        "plantwatch_model_info",
        "plantwatch_shadow_anomaly_score_normalized",
        "plantwatch_anomaly_score_normalized",
        "plantwatch_shadow_alerts_fired_total",
        "plantwatch_outside_envelope",
        "plantwatch_anomaly_threshold_calibrated",
    ):
        assert metric in exprs, metric
    types = {p["type"] for p in dashboard["panels"]}
    assert {"timeseries", "state-timeline", "stat", "table", "row"} <= types
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"unit", "sensor"}
