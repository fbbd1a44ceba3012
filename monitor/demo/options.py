"""The demo's options, its result, its error, and the names it runs under (the plant's units, the fault, ports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.messages import AlertEvent
from monitor.wire.topics import OUTPUT_PREFIX

UNITS = ("reactor-01", "reactor-02")
FAULT_UNIT = "reactor-01"
FAULT_SENSOR = "reactor_temp_K"
CLIENT_ID = "plantwatch-demo"
PREFIX = OUTPUT_PREFIX
DEFAULT_BROKER_PORT = 1883
DEFAULT_METRICS_PORT = 9108
TRAIN_SEED = 11
RUN_SEED = 3


class DemoError(RuntimeError):
    """The demo could not start (broker port, training, service start); the message says why."""


@dataclass(frozen=True)
class DemoOptions:
    """Everything the demo can be told; the defaults are what `make demo` runs."""

    workdir: Path = Path("demo-run")
    broker: tuple[str, int] | None = None  # None: embedded broker on 127.0.0.1:broker_port
    broker_port: int = DEFAULT_BROKER_PORT  # embedded; a free port is used when this one is taken (0: any)
    metrics_port: int = DEFAULT_METRICS_PORT  # a free port is used when this one is taken (0: any)
    duration_s: float | None = None  # wall seconds of streaming; None: until stopped
    speed: float = 1.0  # simulated seconds per wall second
    fault_at_s: float = 60.0  # simulated seconds from the start of streaming
    fault_duration_s: float = 120.0
    fault_magnitude: float = 6.0  # kelvin added to reactor-01's reactor_temp_K reading
    train_hours: float = 2.0  # simulated hours of normal operation per unit
    epochs: int = 8
    window: int = 30
    hidden_size: int = 32
    forecaster: bool = True
    device: str = "auto"
    retrain: bool = False
    refresh_s: float = 1.0
    interactive: bool = False  # redraw a screen with ANSI codes (a terminal) instead of printing lines
    progress: bool = True  # tqdm bars while training

    def training_settings(self) -> dict[str, Any]:
        """What shapes the trained artifacts: a change retrains."""
        return {
            "train_hours": self.train_hours,
            "epochs": self.epochs,
            "window": self.window,
            "hidden_size": self.hidden_size,
            "forecaster": self.forecaster,
            "seed": TRAIN_SEED,
            "format": 1,
        }


@dataclass
class DemoResult:
    run_dir: Path | None = None  # this run's records: <workdir>/run-<UTC stamp>
    events: list[AlertEvent] = field(default_factory=list)
    report: Path | None = None
    rows_published: int = 0
    scores_seen: int = 0
    train_seconds: float = 0.0
    trained: bool = False
    broker: str = ""
    metrics_url: str = ""
    publisher_error: str | None = None
    stop_code: int = 0
