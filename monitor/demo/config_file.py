"""The service's config for the demo, written as a YAML file in the work directory (validated like any other).

API::

    path = write_config(opts, artifacts, host, port, metrics_port)    # <workdir>/plantwatch.yaml

The units are the demo plant's reactors with the trained models; MQTT 3.1.1 (amqtt speaks nothing else); topics
and prefix the defaults; the scorer in its own process, as `plantwatch run` deploys it. The file says how to run
the same service by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.demo.options import CLIENT_ID, PREFIX, UNITS, DemoOptions
from monitor.wire.topics import READINGS_TOPIC


def write_config(opts: DemoOptions, artifacts: dict[str, Path], host: str, port: int, metrics_port: int) -> Path:
    """The service's config for the demo, as a YAML file in the work directory; returns its path."""
    from simulators import REACTOR_SENSORS

    unit: dict[str, Any] = {
        "sensors": list(REACTOR_SENSORS),
        "period_s": 1.0,
        "max_lateness_s": 5.0,
        "detector": {"name": "lstm_ae", "artifact": str(artifacts["detector"].resolve())},
        "alerts": {"fire_hits": 3, "fire_window": 5, "resolve_hits": 10, "min_duration_s": 30, "renotify_s": 600},
    }
    if "forecaster" in artifacts:
        unit["forecaster"] = {"name": "lstm", "artifact": str(artifacts["forecaster"].resolve())}
    cfg: dict[str, Any] = {
        "units": [{"name": name, **unit} for name in UNITS],
        "mqtt": {
            "host": host,
            "port": port,
            "protocol": "3.1.1",  # amqtt speaks MQTT 3.1.1 only
            "client_id": CLIENT_ID,
            "keepalive_s": 15,
            "topics": {"readings": READINGS_TOPIC, "sensor": None, "prefix": PREFIX},
        },
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "scheduler": {"device": opts.device, "max_batch": 256, "max_delay_ms": 10},
        # Faster than real time, simulated clocks run ahead of the wall clock: allow it (the demo's own data).
        "limits": {"max_clock_skew_s": 120.0 if opts.speed <= 1 else 10.0 * 365 * 86400},
        "shutdown_timeout_s": 10,
    }
    path = opts.workdir / "plantwatch.yaml"
    path.write_text(
        "# Written by `plantwatch demo`; run the same service with: plantwatch run --config "
        + str(path)
        + "\n"
        + yaml.safe_dump(cfg, sort_keys=False)
    )
    return path
