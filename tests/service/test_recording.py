"""The service's recording (monitor/recording), end to end: publisher -> real mosquitto -> App -> files on disk,
read back as `plantwatch train` and the backtest's readers read them."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml

from monitor.app import App
from monitor.config import ConfigError, PlantwatchConfig, load_config
from monitor.recording import recorded_files
from monitor.result_files import read_alerts, read_scores
from monitor.wire.csvfile import read_table
from tests.kit import Broker, SpawnedService, wait_until
from tests.service.conftest import (
    SENSORS,
    WINDOW,
    Publisher,
    epoch_base,
    normal_rows,
    sample,
    scored,
    service_config_dict,
    stop,
    with_fault,
)

KINDS = ("rows", "scores", "alerts")


def recorded_rows(root: Path, unit: str, whole_lines: bool = True) -> tuple[npt.NDArray[np.float64], Any]:
    """Every recorded row of the unit, file after file: (ts [N], values [N, S] in SENSORS order)."""
    ts, values = [], []
    for path in recorded_files(root, unit, "rows"):
        table = read_table(path, whole_lines=whole_lines)
        assert table.units is None or set(table.units) <= {unit}
        assert table.columns == SENSORS  # the header: ts, unit, the unit's sensors in config order
        ts.append(table.timestamps)
        values.append(table.values)
    if not ts:
        return np.zeros(0), np.zeros((0, len(SENSORS)))
    return np.concatenate(ts), np.concatenate(values)


@pytest.mark.parametrize("scorer", ["thread", "process"])
def test_every_aligned_row_alert_and_score_is_recorded_once_per_unit_and_read_back_equal(
    scorer: str,
    tmp_path: Path,
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., Any],
    unique_prefix: str,
) -> None:
    alerts_seen = mqtt_recorder(f"{unique_prefix}/pw/alerts/+")
    root = tmp_path / "recording"
    app = run_app(service_config(scheduler={"scorer": scorer}, recording={"path": str(root), "scores": True}))
    t0 = epoch_base()
    normal = normal_rows(300, seed=11)
    faulty = np.concatenate([normal[:150], with_fault(normal[150:200]), normal[200:]])
    pub = publisher()
    pub.rows("R1", faulty, t0)
    pub.rows("R2", normal, t0)
    assert wait_until(lambda: scored(app) == 2 * (300 - WINDOW + 1), timeout_s=60), scored(app)
    published = [m.json() for m in alerts_seen.wait_for(f"{unique_prefix}/pw/alerts/R1", count=2, timeout_s=15)]

    def rows_on_disk() -> float:
        return float(sum(p.stat().st_size for u in ("R1", "R2") for p in recorded_files(root, u, "rows")))

    # The gauges, in one scrape over both processes: rows from the front, scores and alerts from the scorer.
    assert wait_until(
        lambda: (
            rows_on_disk() > 0
            and sample(app, "plantwatch_recording_bytes", kind="rows") == rows_on_disk()
            and sample(app, "plantwatch_recording_bytes", kind="alerts") > 0
            and sample(app, "plantwatch_recording_bytes", kind="scores") > 0
        ),
        timeout_s=15,
    ), [sample(app, "plantwatch_recording_bytes", kind=k) for k in KINDS]
    for kind in KINDS:
        assert sample(app, "plantwatch_recording_errors_total", kind=kind) == 0
        assert sample(app, "plantwatch_recording_dropped_total", kind=kind) == 0
    assert stop(app) == 0

    for unit, sent in (("R1", faulty), ("R2", normal)):
        assert len(recorded_files(root, unit, "rows")) == 1  # one start, far under the rotation size
        ts, values = recorded_rows(root, unit, whole_lines=False)  # a clean stop leaves whole files
        np.testing.assert_array_equal(ts, t0 + np.arange(300))  # every row, once, in order
        np.testing.assert_array_equal(values, sent)  # the values as published, to the last bit
        table = read_table(recorded_files(root, unit, "rows")[0])
        assert table.for_unit(SENSORS, unit=unit).values.shape == (300, len(SENSORS))  # what training takes
        (scores_file,) = recorded_files(root, unit, "scores")
        series = read_scores(scores_file)[unit]
        assert set(series) == {"reconstruction", "forecast", "sensor"}
        np.testing.assert_array_equal(series["reconstruction"].ts, t0 + np.arange(WINDOW - 1, 300))
    # The alert episodes, exactly as they were published; the quiet unit has no alerts file at all.
    (alerts_file,) = recorded_files(root, "R1", "alerts")
    recorded = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert recorded == published
    assert [e.alert_id for e in read_alerts(alerts_file)] == [a["alert_id"] for a in published]  # the backtest's reader
    assert {a["state"] for a in recorded} == {"firing", "resolved"}
    assert recorded_files(root, "R2", "alerts") == []


def test_rotation_by_size_makes_several_files_and_the_size_limit_deletes_the_oldest(
    tmp_path: Path,
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    root = tmp_path / "recording"
    # A row here is about 180 bytes: 2 kB files, 10 kB kept, of 54 kB recorded.
    recording = {"path": str(root), "alerts": False, "rotate_mb": 0.002, "max_mb": 0.01}
    app = run_app(service_config(recording=recording))
    t0 = epoch_base()
    sent = normal_rows(300, seed=12)
    publisher().rows("R1", sent, t0)
    assert wait_until(lambda: scored(app) == 300 - WINDOW + 1, timeout_s=60), scored(app)
    assert stop(app) == 0
    paths = recorded_files(root, "R1", "rows")
    assert len(paths) >= 4
    assert sum(p.stat().st_size for p in paths) <= 10_000
    assert all(p.stat().st_size < 2_000 + 300 for p in paths)  # each past its 2 kB by less than a line
    ts, values = recorded_rows(root, "R1", whole_lines=False)
    kept = len(ts)
    assert 30 < kept < 100  # the newest ones: the oldest files went
    np.testing.assert_array_equal(ts, t0 + np.arange(300 - kept, 300))
    np.testing.assert_array_equal(values, sent[300 - kept :])


def test_an_unwritable_recording_counts_errors_and_the_service_keeps_scoring_and_alerting(
    tmp_path: Path,
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
    mqtt_recorder: Callable[..., Any],
    unique_prefix: str,
) -> None:
    alerts_seen = mqtt_recorder(f"{unique_prefix}/pw/alerts/+")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the recording's directory would go (root may write anywhere else)\n")
    cfg = service_config(scheduler={"scorer": "process"}, recording={"path": str(blocker / "recording")})
    app = run_app(cfg)
    t0 = epoch_base()
    normal = normal_rows(200, seed=13)
    faulty = np.concatenate([normal[:100], with_fault(normal[100:150]), normal[150:]])
    publisher().rows("R1", faulty, t0)
    assert wait_until(lambda: scored(app) == 200 - WINDOW + 1, timeout_s=60), scored(app)
    firing = alerts_seen.wait_for(f"{unique_prefix}/pw/alerts/R1", lambda m: m.json()["state"] == "firing")
    assert firing[0].json()["unit"] == "R1"
    assert wait_until(
        lambda: (
            sample(app, "plantwatch_recording_errors_total", kind="rows") > 0
            and sample(app, "plantwatch_recording_errors_total", kind="alerts") > 0
        ),
        timeout_s=15,
    )
    assert sample(app, "plantwatch_recording_bytes", kind="rows") == 0
    assert app.ready()[0] and not app.failed.is_set()
    assert stop(app) == 0


def test_a_full_recording_queue_drops_rows_and_counts_them(
    tmp_path: Path,
    service_config: Callable[..., PlantwatchConfig],
    run_app: Callable[[PlantwatchConfig], App],
    publisher: Callable[..., Publisher],
) -> None:
    root = tmp_path / "recording"
    # One row of room, and a writer that takes what is queued once a minute: all but the first row wait in vain.
    app = run_app(service_config(recording={"path": str(root), "queue": 1, "flush_s": 60}))
    t0 = epoch_base()
    sent = normal_rows(50, seed=14)
    publisher().rows("R1", sent, t0)
    assert wait_until(lambda: sample(app, "plantwatch_readings_received_total", unit="R1") == 50, timeout_s=30)
    dropped = sample(app, "plantwatch_recording_dropped_total", kind="rows")
    assert stop(app) == 0  # the writer wakes up and writes what it holds
    ts, values = recorded_rows(root, "R1", whole_lines=False)
    assert dropped >= 40 and len(ts) + dropped == 50
    np.testing.assert_array_equal(ts, t0 + np.arange(len(ts)))
    np.testing.assert_array_equal(values, sent[: len(ts)])


def test_kill_9_loses_at_most_the_unflushed_tail_and_leaves_files_the_reader_takes(
    tmp_path: Path,
    mosquitto: Broker,
    artifacts: dict[str, Path],
    unique_prefix: str,
    spawned: Callable[[dict[str, Any]], SpawnedService],
    publisher: Callable[..., Publisher],
) -> None:
    root = tmp_path / "recording"
    config = service_config_dict(mosquitto, artifacts, unique_prefix, unit_names=("R1", "R2"))
    config["recording"] = {"path": str(root), "flush_s": 0.5}
    svc = spawned(config)
    svc.start()
    t0 = epoch_base()
    sent = normal_rows(400, seed=15)
    pub = publisher()
    for unit in ("R1", "R2"):
        pub.rows(unit, sent[:200], t0)
    for unit in ("R1", "R2"):
        assert wait_until(lambda u=unit: svc.metric("plantwatch_readings_received_total", unit=u) == 200, 30)
    # Read while the service writes: a write in progress is not taken for a row.
    assert wait_until(lambda: all(len(recorded_rows(root, u)[0]) == 200 for u in ("R1", "R2")), timeout_s=10)
    for unit in ("R1", "R2"):
        pub.rows(unit, sent[200:300], t0, first_index=200)
    assert wait_until(lambda: svc.metric("plantwatch_readings_received_total", unit="R2") == 300, 30)
    assert svc.signal(signal.SIGKILL) == -signal.SIGKILL
    for unit in ("R1", "R2"):
        ts, values = recorded_rows(root, unit)
        # At least what was flushed before the wait above; at most what the killed process had taken; in order.
        assert 200 <= len(ts) <= 300
        np.testing.assert_array_equal(ts, t0 + np.arange(len(ts)))
        np.testing.assert_array_equal(values, sent[: len(ts)])
    killed = {u: len(recorded_rows(root, u)[0]) for u in ("R1", "R2")}
    # The restart begins new files beside the old ones (a cut tail, if the kill left one, is cut off first).
    svc.start()
    for unit in ("R1", "R2"):
        pub.rows(unit, sent[300:], t0, first_index=300)
    assert wait_until(lambda: svc.metric("plantwatch_readings_received_total", unit="R2") == 100, 30)
    assert svc.signal(signal.SIGTERM) == 0
    for unit in ("R1", "R2"):
        paths = recorded_files(root, unit, "rows")
        assert len(paths) == 2
        ts, _ = recorded_rows(root, unit, whole_lines=False)  # whole files, every one
        np.testing.assert_array_equal(ts, t0 + np.concatenate([np.arange(killed[unit]), np.arange(300, 400)]))


def test_off_unless_a_path_is_set(
    service_config: Callable[..., PlantwatchConfig], run_app: Callable[[PlantwatchConfig], App]
) -> None:
    app = run_app(service_config())
    assert app.row_recorder is None and app.side.recording is None
    assert not [t for t in threading.enumerate() if t.name.startswith("recording-")]


def test_the_recording_config_is_bounded_and_its_path_relative_to_the_config_file(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    unit = {"name": "R1", "sensors": list(SENSORS), "detector": {"name": "det", "artifact": str(artifacts["det"])}}
    path = tmp_path / "plantwatch.yaml"
    path.write_text(yaml.safe_dump({"units": [unit], "recording": {"path": "history"}}))
    assert load_config(path).recording.path == tmp_path / "history"
    for recording, message in (
        ({"path": "h", "max_mb": None, "max_age_s": None}, "a recording must be bounded: set max_mb or max_age_s"),
        ({"path": "h", "rotate_mb": 2048}, "rotate_mb (2048.0) must not exceed max_mb (256.0)"),
        ({"path": "h", "max_age_s": 3600}, "rotate_s (86400.0) must not exceed max_age_s (3600.0)"),
        ({"path": "h", "flush_s": 0}, "recording.flush_s: Input should be greater than 0"),
    ):
        path.write_text(yaml.safe_dump({"units": [unit], "recording": recording}))
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(path)
