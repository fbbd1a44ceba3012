"""A reading's path from its MQTT topic to the alert it fires: the modules it passes, and how often each is entered.

    .venv/bin/python -m benchmarks.reading_path          # about 20 s: a private mosquitto, a tiny model, one unit

The service runs in this process in its one-process mode (``scheduler.scorer: thread``, the same stages as the
scorer process) with an alert policy that fires on one window over the threshold. After the unit's window has
filled with normal readings, a profiler (threading.setprofile, installed before the service starts its threads)
records, per thread, every change of the module whose code runs (a call into another module, or a return to the
caller's), for code under monitor/ and models/, from the publish of one faulty reading until its two alerts
(reconstruction and sensor) have arrived at an independent subscriber, and 0.3 s more. A record's constructor
counts as an entry into the module that defines the record (monitor.messages: one Reading per sensor value).
Printed: each thread's module sequence (consecutive repeats collapsed), the distinct modules and the entries per
module. Threads that only idled meanwhile (the HTTP server) are left out.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators import parse_scenario, simulate
from simulators.reactor import REACTOR_SENSORS
from tests.kit import Broker, train_tiny, wait_until

OURS = ("monitor", "models")
WINDOW = 16


class PathRecorder:
    """Per thread, the sequence of our modules as control passes between them (while ``on`` is set)."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.paths: dict[str, list[str]] = defaultdict(list)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.on.is_set() or event not in ("call", "return"):
            return
        where = frame if event == "call" else frame.f_back
        if where is None:
            return
        module = str(where.f_globals.get("__name__", ""))
        if not module.startswith(OURS):
            return
        path = self.paths[threading.current_thread().name]
        if not path or path[-1] != module:
            path.append(module)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="reading-path-") as tmp:
        workdir = Path(tmp)
        broker = Broker(workdir).start()
        try:
            return run(broker, workdir)
        finally:
            broker.stop()


def run(broker: Broker, workdir: Path) -> int:
    from monitor.app import App
    from monitor.config import parse_config

    scenario = parse_scenario({"units": {"names": ["R-1"]}, "spread": 0.0, "disturbances": 0.0, "seed": 3})
    normal = simulate(scenario, 1800, seed=3, start_epoch=1_767_225_600 - 1800)
    detector = train_tiny(normal.data[0], normal.sensors, workdir / "det", "lstm_ae", name="det", window=WINDOW)
    cfg = parse_config(
        {
            "units": [{
                "name": "R-1", "sensors": list(REACTOR_SENSORS), "detector": {"name": "det", "artifact": str(detector)},
                "alerts": {"fire_hits": 1, "fire_window": 1, "min_duration_s": 0},
            }],
            "mqtt": {"host": broker.host, "port": broker.port, "client_id": "path-svc"},
            "metrics": {"port": 0},
            "scheduler": {"device": "cpu", "scorer": "thread", "max_lag_s": 300},
            "outputs": {"publish_scores": False, "publish_forecasts": False},
        }
    )  # fmt: skip
    recorder = PathRecorder()
    threading.setprofile(recorder.profile)  # every thread the service starts from here on
    alerts: list[dict[str, Any]] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="path-listener")
    listener.on_message = lambda c, u, m: alerts.append(json.loads(m.payload))
    listener.connect(broker.host, broker.port)
    listener.subscribe("plantwatch/alerts/+", qos=1)
    listener.loop_start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="path-plant")
    publisher.connect(broker.host, broker.port)
    publisher.loop_start()
    app = App(cfg)
    app.start()
    try:
        assert wait_until(lambda: app.ready()[0], 30), "the service did not get ready"
        start = 1_767_225_600.0
        rows = np.asarray(normal.data[0][-WINDOW - 4 :], dtype=np.float64)
        for k, row in enumerate(rows):  # fill the window with normal readings (scored, no alert)
            publish(publisher, start + k, row)
        scored = "plantwatch_windows_scored_total"
        recon = {"detector": "reconstruction"}
        assert wait_until(lambda: (app.exposition.get_sample_value(scored, recon) or 0) >= 5, 30)
        time.sleep(0.5)
        faulty = rows[-1].copy()
        faulty[list(REACTOR_SENSORS).index("reactor_temp_K")] += 40.0  # far out: one window fires
        recorder.on.set()
        publish(publisher, start + len(rows), faulty)
        # Both detectors that see the fault fire (reconstruction, sensor); then a moment for what follows them.
        fired = wait_until(lambda: sum(a.get("state") == "firing" for a in alerts) >= 2, 30, 0.001)
        time.sleep(0.3)
        recorder.on.clear()
        assert fired, "no alert"
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        app.stop(10)
        publisher.loop_stop()
        listener.loop_stop()
    report(recorder.paths)
    return 0


def publish(client: mqtt.Client, ts: float, row: np.ndarray) -> None:
    values = {s: float(v) for s, v in zip(REACTOR_SENSORS, row, strict=True)}
    client.publish("plant/R-1/readings", json.dumps({"ts": ts, "values": values}), qos=1).wait_for_publish(5)


def report(paths: dict[str, list[str]]) -> None:
    busy = {name: path for name, path in paths.items() if name != "http" and len(path) > 1}
    everything: Counter[str] = Counter()
    for name, path in busy.items():
        short = [m.removeprefix("monitor.") for m in path]
        print(f"{name} ({len(path)} entries): {' > '.join(short)}")
        everything.update(path)
    print(f"\n{len(everything)} modules, {sum(everything.values())} entries in all:")
    for module, n in everything.most_common():
        print(f"  {module}: {n}")


if __name__ == "__main__":
    sys.exit(main())
