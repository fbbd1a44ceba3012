"""The newcomer's demo: broker, simulated reactors, small trained models, the real service and a live view.

API::

    opts = DemoOptions(workdir=Path("demo-run"), duration_s=None)     # see the fields for every knob
    result = run_demo(opts, stop=threading.Event(), out=sys.stdout)   # blocks until stop is set or duration ends
    result.events, result.report, result.rows_published, result.train_seconds

Steps, in order:

1. MQTT broker: an embedded amqtt broker (pure Python, MQTT 3.1.1 only) in a thread of this process on
   127.0.0.1, unless ``broker`` names one. The service therefore runs in its 3.1.1 mode here.
2. Training data: the demo plant (two reactors) simulated in normal operation, both units' rows joined by a
   gap longer than the trainer's forward-fill, so no training window spans the seam.
3. Training: an ``lstm_ae`` detector and an ``lstm`` forecaster, small sizes, with tqdm progress bars;
   thresholds calibrated by peaks-over-threshold at 1e-5 per window (the pipeline's backtest tests show why
   a 1 % quantile would page several times a day). Reused on the next run when the settings are unchanged.
4. The service: the ``App`` that ``plantwatch run`` uses, from a config file written to the work directory
   (validated by ``load_config`` like any other).
5. The simulator: ``LivePublisher`` streams the demo plant with a bias on reactor-01's temperature sensor
   ``fault_at_s`` into the run, at ``speed`` times real time.
6. The live view: a separate MQTT client reads the service's scores and alerts off the broker, as an alarm
   gateway would, and draws per unit the state, score against threshold and top sensor, the alerts as they
   fire and resolve, and the metrics URL. It also records what it sees to ``scores.csv``, ``alerts.jsonl`` and
   ``data.csv`` in the work directory.
7. Stop (``stop`` set, e.g. by Ctrl-C, or ``duration_s`` of wall time passed): simulator, service (its clean
   stop: drain, ``offline``), view, broker; then ``report.png`` (monitor.report) from the recorded files.

The demo plant is steady (no parameter spread, no slow disturbances): models trained for a minute on two
hours of data have not seen the excursions that disturbances take over a day, and would flag them.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import json
import logging
import math
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from monitor.alerts import event_from_dict
from monitor.messages import MODEL_DETECTORS, AlertEvent
from monitor.wire.topics import (
    ANY,
    OUTPUT_PREFIX,
    READINGS_TOPIC,
    alerts_topic,
    scores_topic,
    status_topic,
    topic_filter,
)

if TYPE_CHECKING:
    from simulators.scenario import Scenario

log = logging.getLogger(__name__)

UNITS = ("reactor-01", "reactor-02")
FAULT_UNIT = "reactor-01"
FAULT_SENSOR = "reactor_temp_K"
CLIENT_ID = "plantwatch-demo"
PREFIX = OUTPUT_PREFIX
DEFAULT_BROKER_PORT = 1883
DEFAULT_METRICS_PORT = 9108
TRAIN_SEED = 11
RUN_SEED = 3
# Rows of NaN between the two units' training rows: longer than the trainer's forward-fill (max_gap 5).
SEAM_ROWS = 20


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


# -- ports and the embedded broker -------------------------------------------------------------------------------


def port_or_free(host: str, port: int) -> int:
    """``port`` when it can be bound on ``host``, else a free one chosen by the kernel."""
    for candidate in (port, 0) if port else (0,):
        with socket.socket() as s:
            try:
                s.bind((host, candidate))
            except OSError:
                continue
            chosen: int = s.getsockname()[1]
            return chosen
    raise DemoError(f"no free TCP port on {host}")


class EmbeddedBroker:
    """An amqtt broker (MQTT 3.1.1) on ``host:port``, served by an asyncio loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_BROKER_PORT) -> None:
        self.host = host
        self.port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="demo-broker", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        # amqtt logs every connection at INFO; the demo's own view says what matters.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise DemoError(f"the embedded broker did not start on {self.address} within {timeout_s:.0f} s")
        if self._error is not None:
            raise DemoError(f"the embedded broker could not start on {self.address}: {self._error}")

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 64}},
            # Anonymous on loopback only: the demo's broker is private to this machine.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def serve() -> None:
            self._stop = asyncio.Event()
            broker = Broker(config)
            try:
                await broker.start()
            except BaseException as exc:  # reported to start(), which raises DemoError
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await broker.shutdown()

        try:
            loop.run_until_complete(serve())
        finally:
            loop.close()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Shut the broker down; True when its thread ended in time."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


# -- the demo plant and training -----------------------------------------------------------------------------------


def demo_scenario(opts: DemoOptions, with_fault: bool) -> Scenario:
    """The demo plant (config/scenarios/demo.yaml's units and fault, steady operation); optionally with its fault."""
    from simulators import parse_scenario

    faults: list[dict[str, Any]] = []
    if with_fault:
        faults.append(
            {
                "kind": "bias",
                "unit": FAULT_UNIT,
                "start": opts.fault_at_s,
                "duration": opts.fault_duration_s,
                "magnitude": opts.fault_magnitude,
                "sensors": [FAULT_SENSOR],
            }
        )
    return parse_scenario(
        {
            "name": "demo",
            "profile": "reactor",
            "period_s": 1,
            "units": {"names": list(UNITS)},
            "spread": 0.0,
            "disturbances": 0.0,
            "seed": RUN_SEED,
            "faults": faults,
        }
    )


def train_demo_models(opts: DemoOptions, out: TextIO) -> tuple[dict[str, Path], float, bool]:
    """Train (or reuse) the demo's artifacts; returns ({name: dir}, seconds spent, whether it trained)."""
    artifacts = opts.workdir / "artifacts"
    stamp = artifacts / "demo-training.json"
    names = {"detector": artifacts / "lstm_ae", **({"forecaster": artifacts / "lstm"} if opts.forecaster else {})}
    settings = opts.training_settings()
    if (
        not opts.retrain
        and stamp.is_file()
        and json.loads(stamp.read_text()) == settings
        and all((p / "manifest.json").is_file() for p in names.values())
    ):
        print(f"reusing the models trained earlier in {artifacts} (--retrain to train again)", file=out)
        return names, 0.0, False

    import torch

    from models.train import TrainConfig, train_model
    from simulators import simulate

    started = time.perf_counter()
    normal = simulate(demo_scenario(opts, with_fault=False), duration_s=opts.train_hours * 3600.0, seed=TRAIN_SEED)
    seam = np.full((SEAM_ROWS, len(normal.sensors)), np.nan)
    parts: list[np.ndarray[Any, Any]] = []
    for i in range(len(normal.units)):
        parts += [normal.data[i], seam]
    data = np.concatenate(parts[:-1])
    print(
        f"training on {opts.train_hours:g} simulated hours of normal operation x {len(normal.units)} reactors "
        f"({data.shape[0]} rows, {len(normal.sensors)} sensors), torch threads: {torch.get_num_threads()}",
        file=out,
        flush=True,
    )
    common: dict[str, Any] = {
        "window": opts.window,
        "hidden_size": opts.hidden_size,
        "epochs": opts.epochs,
        "batch_size": 128,
        "train_step": 2,
        "calibration": "pot",
        "target_far": 1e-5,
        "device": opts.device,
        "progress": opts.progress,
    }
    artifacts.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    train_model(
        data, normal.sensors, names["detector"], TrainConfig(kind="lstm_ae", name="lstm_ae", latent_size=8, **common)
    )
    if "forecaster" in names:
        train_model(
            data, normal.sensors, names["forecaster"], TrainConfig(kind="lstm", name="lstm", num_layers=1, **common)
        )
    stamp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return names, time.perf_counter() - started, True


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


# -- the live view ---------------------------------------------------------------------------------------------------


@dataclass
class UnitView:
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # detector -> (score, threshold)
    top_sensor: str = "-"
    last_ts: float = math.nan
    firing: dict[str, AlertEvent] = field(default_factory=dict)  # detector -> latest firing event


class LiveView:
    """Reads the service's outputs off the broker (as an alarm gateway would), draws them and records them."""

    def __init__(self, workdir: Path, units: Sequence[str], out: TextIO, interactive: bool) -> None:
        self._out = out
        self._interactive = interactive
        self._lock = threading.Lock()
        self.units = {u: UnitView() for u in units}
        self.events: list[AlertEvent] = []
        self._log: list[str] = []
        self._printed = 0
        self.scores_seen = 0
        self.readings_seen = 0
        self.status = "unknown"
        self._subscribed = threading.Event()
        self.scores_path = workdir / "scores.csv"
        self.alerts_path = workdir / "alerts.jsonl"
        self.data_path = workdir / "data.csv"
        self._scores_file = open(self.scores_path, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._alerts_file = open(self.alerts_path, "w", encoding="utf-8")  # noqa: SIM115
        self._data_file = open(self.data_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._scores = csv.writer(self._scores_file)
        self._scores.writerow(["unit", "ts", "detector", "model", "score", "threshold", "top_sensor"])
        self._data = csv.writer(self._data_file)
        self._sensors: tuple[str, ...] | None = None
        self._client: mqtt.Client | None = None

    def start(self, host: str, port: int, timeout_s: float = 10.0) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{CLIENT_ID}-view", protocol=mqtt.MQTTv311)
        topics = [
            (alerts_topic(PREFIX, ANY), 1),
            (scores_topic(PREFIX, ANY), 0),
            (status_topic(PREFIX), 1),
            (topic_filter(READINGS_TOPIC), 0),
        ]
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics) if not rc.is_failure else None
        client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        client.on_message = self._on_message
        client.connect(host, port, keepalive=15)
        client.loop_start()
        self._client = client
        if not self._subscribed.wait(timeout_s):
            raise DemoError(f"the live view could not subscribe on {host}:{port}")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle(msg.topic, bytes(msg.payload))
        except Exception as exc:  # a foreign message on our topics; nothing may raise into paho's network thread
            log.warning("live view ignored a message on %s: %s", msg.topic, exc)

    def _handle(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        with self._lock:
            if parts[0] == "plant":
                self._reading(parts[1], json.loads(payload))
            elif topic == status_topic(PREFIX):
                self.status = payload.decode("utf-8", "replace")
            elif parts[1] == "scores":
                self._score(json.loads(payload))
            elif parts[1] == "alerts":
                self._alert(event_from_dict(json.loads(payload)))

    def _reading(self, unit: str, body: dict[str, Any]) -> None:
        values = body["values"]
        if self._sensors is None:
            self._sensors = tuple(values)
            self._data.writerow(["timestamp", "unit", *self._sensors])
        self._data.writerow([f"{float(body['ts']):.3f}", unit, *(values.get(s, "") for s in self._sensors)])
        self.readings_seen += 1

    def _score(self, body: dict[str, Any]) -> None:
        unit = str(body["unit"])
        view = self.units.get(unit)
        if view is None:
            return
        ts = float(body["ts"])
        view.last_ts = ts
        for detector, s in body["scores"].items():
            sensors: dict[str, float] = s.get("sensors") or {}
            top = max(sensors.items(), key=lambda kv: kv[1])[0] if sensors else ""
            view.scores[detector] = (float(s["score"]), float(s["threshold"]))
            if detector == "reconstruction" and top:
                view.top_sensor = top
            self._scores.writerow(
                [
                    unit,
                    f"{ts:.3f}",
                    detector,
                    s["model"],
                    f"{float(s['score']):.6g}",
                    f"{float(s['threshold']):.6g}",
                    top,
                ]
            )
            self.scores_seen += 1

    def _alert(self, event: AlertEvent) -> None:
        from monitor.alerts import event_to_dict

        self.events.append(event)
        self._alerts_file.write(json.dumps(event_to_dict(event)) + "\n")
        self._alerts_file.flush()
        view = self.units.get(event.unit)
        if view is not None:
            if event.state == "firing":
                view.firing[event.detector] = event
            else:
                view.firing.pop(event.detector, None)
        sensors = ", ".join(f"{s} {share:.0%}" for s, share in event.sensors) or "-"
        when = dt.datetime.fromtimestamp(event.ts, tz=dt.UTC).strftime("%H:%M:%S")
        self._log.append(
            f"{when} {event.unit} {event.detector} {event.state.upper()} ({event.severity}): "
            f"score {event.score:.3g} / threshold {event.threshold:.3g}; top sensors: {sensors}"
        )

    def firing_seen(self, unit: str) -> bool:
        with self._lock:
            return any(e.unit == unit and e.state == "firing" for e in self.events)

    def render(self, header: Sequence[str]) -> None:
        """Draw the view: a redrawn screen on a terminal, new lines only otherwise."""
        with self._lock:
            rows = [self._unit_line(unit, view) for unit, view in self.units.items()]
            log_lines = list(self._log)
            self._scores_file.flush()
            self._data_file.flush()
        if self._interactive:
            screen = [*header, "", f"{'unit':<12} {'state':<22} {'score / threshold':<44} top sensor", *rows]
            screen += ["", "alerts (newest last):", *(log_lines[-12:] or ["  none yet"])]
            screen += ["", "Ctrl-C stops everything and writes the report."]
            self._out.write("\x1b[H\x1b[J" + "\n".join(screen) + "\n")
        else:
            for line in log_lines[self._printed :]:
                self._out.write("ALERT " + line + "\n")
            self._printed = len(log_lines)
        self._out.flush()

    def status_lines(self) -> list[str]:
        with self._lock:
            return [self._unit_line(unit, view) for unit, view in self.units.items()]

    @staticmethod
    def _unit_line(unit: str, view: UnitView) -> str:
        if not view.scores:
            state = "warming up"
        elif view.firing:
            state = "FIRING " + max(e.severity for e in view.firing.values())
        else:
            state = "normal"
        parts = []
        for detector in MODEL_DETECTORS:
            if detector in view.scores:
                score, threshold = view.scores[detector]
                parts.append(f"{detector[:5]} {score:8.3g} / {threshold:<6.3g}")
        return f"{unit:<12} {state:<22} {'  '.join(parts):<44} {view.top_sensor}"

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        with self._lock:
            for f in (self._scores_file, self._alerts_file, self._data_file):
                f.close()


# -- the run ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_service_logs(interactive: bool) -> Iterator[None]:
    """While the view draws, the service's log lines would scroll it away: errors only on a redrawn screen (the
    view shows every alert), warnings and errors when printing lines."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR if interactive else logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def run_demo(
    opts: DemoOptions,
    stop: threading.Event,
    out: TextIO | None = None,
    on_streaming: Callable[[], object] | None = None,
) -> DemoResult:
    """Run the demo (module docstring) until ``stop`` is set or ``duration_s`` passes; DemoError if it can't start.

    ``on_streaming`` is called once the service runs (the command switches Ctrl-C from interrupting the
    training to a clean stop there). ``out``: where the view draws (default: sys.stdout at call time).
    """
    out = out if out is not None else sys.stdout
    from monitor.config import ConfigError, load_config
    from simulators import LivePublisher, Simulation, write_labels
    from simulators.broker import BrokerOptions

    if opts.speed <= 0 or not math.isfinite(opts.speed):
        raise DemoError(f"--speed must be a positive number, got {opts.speed}")
    opts.workdir.mkdir(parents=True, exist_ok=True)
    result = DemoResult()
    broker: EmbeddedBroker | None = None
    if opts.broker is None:
        broker = EmbeddedBroker("127.0.0.1", port_or_free("127.0.0.1", opts.broker_port))
        broker.start()
        host, port = broker.host, broker.port
        print(f"embedded MQTT broker (amqtt, MQTT 3.1.1) on {broker.address}", file=out, flush=True)
    else:
        host, port = opts.broker
        print(f"using the MQTT broker at {host}:{port} (MQTT 3.1.1)", file=out, flush=True)
    result.broker = f"{host}:{port}"
    app = None
    view = None
    publisher = None
    try:
        artifacts, result.train_seconds, result.trained = train_demo_models(opts, out)
        if result.trained:
            print(f"trained in {result.train_seconds:.1f} s", file=out, flush=True)
        config_path = write_config(opts, artifacts, host, port, port_or_free("127.0.0.1", opts.metrics_port))
        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            raise DemoError(f"the demo's own config is invalid: {exc}") from exc

        from monitor.app import App, StartupError

        try:
            with _quiet_service_logs(opts.interactive):  # also the level the scorer process logs at
                app = App(cfg)
        except StartupError as exc:
            raise DemoError(str(exc)) from exc
        view = LiveView(opts.workdir, UNITS, out, opts.interactive)
        view.start(host, port)
        with _quiet_service_logs(opts.interactive):
            app.start()
            if not app.link.subscribed.wait(15):
                raise DemoError(f"the service could not connect to the broker at {host}:{port}")
            result.metrics_url = f"http://127.0.0.1:{app.metrics_port}/metrics"
            # Start the simulated clock so that, faster than real time, the last reading is stamped about now.
            span_s = (opts.speed - 1.0) * opts.duration_s if opts.duration_s is not None and opts.speed > 1 else 0.0
            sim = Simulation(demo_scenario(opts, with_fault=True), seed=RUN_SEED, start_epoch=time.time() - span_s)
            publisher = LivePublisher(
                sim,
                options=BrokerOptions(host=host, port=port, protocol=4, client_id=f"{CLIENT_ID}-sim"),
                speed=opts.speed,
                qos=1,
            )
            publisher.start()
            if on_streaming is not None:
                on_streaming()
            started = time.monotonic()
            header = [
                f"plantwatch demo: {len(UNITS)} simulated reactors at {opts.speed:g}x real time; a "
                f"{opts.fault_magnitude:g} K bias on {FAULT_UNIT}'s {FAULT_SENSOR} from {opts.fault_at_s:g} s "
                f"for {opts.fault_duration_s:g} s",
                f"broker {host}:{port}   metrics {result.metrics_url}   work dir {opts.workdir}",
            ]
            if not opts.interactive:
                print("\n".join(header), file=out, flush=True)
            last_status = 0.0
            while not stop.wait(opts.refresh_s):
                elapsed = time.monotonic() - started
                view.render([*header, f"running {elapsed:5.0f} s, {publisher.published} readings published"])
                if not opts.interactive and elapsed - last_status >= 10.0:
                    last_status = elapsed
                    print(f"[{elapsed:4.0f} s] " + " | ".join(view.status_lines()), file=out, flush=True)
                if opts.duration_s is not None and elapsed >= opts.duration_s:
                    break
                if publisher.done.is_set():
                    break
                if app.failed.is_set():
                    print("a service thread failed; stopping", file=out, flush=True)
                    break
    finally:
        if publisher is not None:
            publisher.stop()
            publisher.join(10)
            result.rows_published = publisher.published
            result.publisher_error = publisher.error
        if app is not None:
            result.stop_code = app.stop(cfg.shutdown_timeout_s)
        if view is not None:
            # Let the last alerts and scores the service published reach the view before it closes.
            time.sleep(0.5)
            view.close()
        if broker is not None and not broker.stop():
            log.warning("the embedded broker did not stop in time")
    assert view is not None and publisher is not None
    result.events = list(view.events)
    result.scores_seen = view.scores_seen
    last_ts = sim.start_epoch + (publisher.published / len(UNITS))
    labels_path = opts.workdir / "labels.csv"
    write_labels([lab for lab in sim.labels(last_ts) if lab.start < last_ts], labels_path)
    result.report = _write_report(opts.workdir, view, labels_path, out)
    return result


def _write_report(workdir: Path, view: LiveView, labels_path: Path, out: TextIO) -> Path | None:
    from monitor.report import read_signals, render_report
    from monitor.result_files import read_alerts, read_scores
    from monitor.wire.labels import read_labels

    scores = read_scores(view.scores_path)
    events = read_alerts(view.alerts_path)
    if not scores and not events:
        print("no scores were published: no report", file=out)
        return None
    units = sorted(set(scores) | {e.unit for e in events})
    signals = read_signals(view.data_path, units) if view.readings_seen else None
    path = render_report(
        scores,
        events,
        workdir / "report.png",
        labels=read_labels(labels_path),
        signals=signals,
        title="plantwatch demo",
    )
    return path


def summary(result: DemoResult) -> str:
    """The closing lines the command prints."""
    firing = [e for e in result.events if e.state == "firing"]
    episodes = len({e.alert_id for e in result.events})
    lines = [
        f"published {result.rows_published} readings; the view saw {result.scores_seen} scores and "
        f"{len(result.events)} alert events ({len(firing)} firing, {episodes} episodes)"
    ]
    for e in result.events:
        top = ", ".join(f"{s} {share:.0%}" for s, share in e.sensors) or "-"
        lines.append(f"  {e.unit} {e.detector} {e.state} ({e.severity}), top sensors: {top}")
    if result.publisher_error:
        lines.append(f"simulator stopped early: {result.publisher_error}")
    if result.report is not None:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)


def options_dict(opts: DemoOptions) -> dict[str, Any]:
    """The options as plain data (for logs)."""
    data = asdict(opts)
    data["workdir"] = str(opts.workdir)
    return data
