"""The demo's service config: the one it runs, and the one it saves for someone to run by hand.

API::

    runnable = runnable_config(opts, artifacts)                # dict: the demo's units and models, an ordinary broker
    service = service_config(runnable, opts, host, port, metrics_port)   # dict: the same, on the demo's own broker
    path = write_config(run_dir / "plantwatch.yaml", runnable, header)  # plain YAML (no anchors), with a header

Why two. The demo's own service runs against its embedded amqtt broker (MQTT 3.1.1 only, on 1883 or whatever
port was free, gone when the demo ends) and, faster than real time, accepts readings stamped ahead of the wall
clock (the simulated clock). Neither belongs in a file someone runs later with `plantwatch run --config`: that one
names a broker on localhost:1883 (or the ``--broker`` the demo was given, which is still there), MQTT 5 for an
ordinary broker such as mosquitto, the default metrics port and the default clock guard, and the same units,
trained models and alert policy the demo ran. The saved file's header says what the demo's own service ran with
instead (monitor.demo.run writes it). Both are validated by monitor.config like any other.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from monitor.demo.options import CLIENT_ID, PREFIX, UNITS, DemoOptions
from monitor.wire.topics import READINGS_TOPIC

LOCAL_BROKER = ("localhost", 1883)  # where the saved config looks for a broker when the demo ran its own
ENDLESS_FAST_SKEW_S = 10.0 * 365 * 86400  # an endless faster-than-real-time run drifts ahead of the clock for good


def runnable_config(opts: DemoOptions, artifacts: dict[str, Path]) -> dict[str, Any]:
    """The config someone can run by hand (module docstring)."""
    from simulators import REACTOR_SENSORS

    def unit(name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": name,
            "sensors": list(REACTOR_SENSORS),
            "period_s": 1.0,
            "max_lateness_s": 5.0,
            "detector": {"name": "lstm_ae", "artifact": str(artifacts["detector"].resolve())},
        }
        if "forecaster" in artifacts:
            entry["forecaster"] = {"name": "lstm", "artifact": str(artifacts["forecaster"].resolve())}
        entry["alerts"] = {
            "fire_hits": 3,
            "fire_window": 5,
            "resolve_hits": 10,
            "min_duration_s": 30,
            "renotify_s": 600,
        }
        return entry

    host, port = opts.broker if opts.broker is not None else LOCAL_BROKER
    mqtt: dict[str, Any] = {"host": host, "port": port}
    if opts.broker is not None:
        mqtt["protocol"] = "3.1.1"  # what the demo spoke to that broker, so known to work with it
    mqtt |= {"client_id": CLIENT_ID, "topics": {"readings": READINGS_TOPIC, "sensor": None, "prefix": PREFIX}}
    return {
        "units": [unit(name) for name in UNITS],
        "mqtt": mqtt,
        "scheduler": {"device": opts.device},
    }


def service_config(
    runnable: dict[str, Any], opts: DemoOptions, host: str, port: int, metrics_port: int
) -> dict[str, Any]:
    """The config the demo's own service runs with: ``runnable`` on the demo's broker and metrics port."""
    cfg = copy.deepcopy(runnable)
    cfg["mqtt"] |= {"host": host, "port": port, "protocol": "3.1.1", "keepalive_s": 15}  # amqtt: 3.1.1 only
    cfg["metrics"] = {"host": "127.0.0.1", "port": metrics_port}
    cfg["scheduler"] |= {"max_batch": 256, "max_delay_ms": 10}
    if opts.speed > 1 and opts.duration_s is None:
        # Endless and faster than real time, the simulated clock runs ahead of the wall clock without bound; the
        # demo's own readings are allowed to (a bounded run starts in the past instead, and needs no such key).
        cfg["limits"] = {"max_clock_skew_s": ENDLESS_FAST_SKEW_S}
    cfg["shutdown_timeout_s"] = 10
    return cfg


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases (``&id001`` / ``*id001``): every unit spelled out, as a person writes it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(cfg: dict[str, Any]) -> str:
    return yaml.dump(cfg, Dumper=_PlainDumper, sort_keys=False)


def write_config(path: Path, cfg: dict[str, Any], header: list[str]) -> Path:
    """``cfg`` as YAML at ``path``, after ``header`` as comment lines; returns ``path``."""
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header)
    path.write_text(comments + to_yaml(cfg), encoding="utf-8")
    return path
