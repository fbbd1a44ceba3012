"""The service scores on the CPU without torch: preflight loads the ONNX graphs (models/serving.py), and the scorer
process serves them with torch never loaded (DESIGN.md: processes)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from monitor.app import App
from monitor.config import PlantwatchConfig
from tests.kit import Broker, wait_until
from tests.service.conftest import Publisher, epoch_base, normal_rows, service_config_dict

ROOT = Path(__file__).resolve().parents[2]

PREFLIGHT = """
import sys
from monitor.startup import preflight
from monitor.config import load_config
checked = preflight(load_config(sys.argv[1]))
print(checked.device, sorted(type(m).__name__ for m in checked.models.values()), "torch" in sys.modules)
"""


def test_preflight_on_the_cpu_loads_the_onnx_graphs_without_torch(
    tmp_path: Path, artifacts: dict[str, Path], mosquitto: Broker
) -> None:
    path = tmp_path / "plantwatch.yaml"
    path.write_text(yaml.safe_dump(service_config_dict(mosquitto, artifacts, "torchless")))
    result = subprocess.run(
        [sys.executable, "-c", PREFLIGHT, str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cpu", "['OnnxModel',", "'OnnxModel']", "False"], result.stdout


def test_the_scorer_process_scores_without_torch(
    service_config: Callable[..., PlantwatchConfig], publisher: Callable[..., Publisher]
) -> None:
    app = App(service_config(scheduler={"scorer": "process"}))
    app.start()
    try:
        assert wait_until(lambda: app.ready()[0], timeout_s=60), app.ready()
        scorer = app._scorer
        assert scorer is not None and scorer.process.pid is not None
        publisher().rows("R1", normal_rows(40, seed=4), epoch_base())
        scored = "plantwatch_windows_scored_total"
        assert wait_until(
            lambda: (app.exposition.get_sample_value(scored, {"detector": "reconstruction"}) or 0) > 0, 60
        )
        maps = Path(f"/proc/{scorer.process.pid}/maps").read_text()
        assert "onnxruntime" in maps and "libtorch" not in maps
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{scorer.process.pid}/status").read_text().splitlines()
        )
        print(f"scorer process: VmRSS {status['VmRSS'].strip()}, VmHWM {status['VmHWM'].strip()}, no torch")
    finally:
        app.stop(10)
