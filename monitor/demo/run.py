"""The demo's run: broker, models, the service, the simulator, the live view, in order, until stopped.

API::

    result = run_demo(opts, stop=threading.Event(), out=sys.stdout)   # blocks until stop is set or duration ends

The composition (the third of the service's three, beside `plantwatch run` and the backtest): the same ``App``
that `plantwatch run` runs, from the config file written to the work directory (monitor.demo.config_file), with
its scorer process publishing on the broker; the view and the files sink (monitor.demo.view.LiveView,
monitor.result_files.FilesSink) take the outputs back off the broker through monitor.output_feed.OutputFeed, as
the scorer process cannot hand them objects. The simulator (simulators.LivePublisher) streams the demo plant with
its fault through a DataRecorder (monitor.demo.plant) that keeps ``data.csv``.

Stop (``stop`` set, e.g. by Ctrl-C, or ``duration_s`` of wall time passed): simulator, service (its clean stop:
drain, ``offline``), view and files, broker; then ``labels.csv`` and ``report.png`` (monitor.demo.report).

Where things go. The trained models stay in ``<workdir>/artifacts`` (reused by the next run); each run's records
(``scores.csv``, ``alerts.jsonl``, ``data.csv``, ``labels.csv``, ``report.png`` and the config ``plantwatch.yaml``)
go to a directory of their own, ``<workdir>/run-<UTC start, e.g. 20261202T170501Z>``, so a second demo never
empties the first one's. The demo says where at start and in its summary.

What it prints. The embedded broker's port and, when it is not the one asked for, why (1883 taken, most often by
a broker already running there); the training summary; then the view. The service's own log is held to errors
while the view draws: the view prints every alert event once, and the service's log would print each firing one a
second time (a redrawn screen would also scroll away).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import paho.mqtt.client as mqtt

from monitor.demo.broker import EmbeddedBroker, port_or_free
from monitor.demo.config_file import (
    ENDLESS_FAST_SKEW_S,
    LOCAL_BROKER,
    runnable_config,
    service_config,
    write_config,
)
from monitor.demo.options import (
    CLIENT_ID,
    FAULT_SENSOR,
    FAULT_UNIT,
    RUN_SEED,
    UNITS,
    DemoError,
    DemoOptions,
    DemoResult,
)
from monitor.demo.plant import DataRecorder, demo_scenario
from monitor.demo.report import CONFIG_FILE, DATA_FILE, LABELS_FILE, write_report
from monitor.demo.training import describe_models, train_demo_models
from monitor.demo.view import LiveView
from monitor.output_feed import OutputFeed, OutputFeedError
from monitor.result_files import FilesSink

if TYPE_CHECKING:
    from monitor.app import App
    from simulators import LivePublisher

log = logging.getLogger(__name__)

STATUS_EVERY_S = 10.0  # the status line when printing lines instead of redrawing a screen
SETTLE_S = 0.5  # after the service stopped: for its last outputs to reach the view


@contextlib.contextmanager
def _quiet_service_logs() -> Iterator[None]:
    """Errors only from the service while the view draws (module docstring: the view prints every alert once)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def new_run_dir(workdir: Path, now: float | None = None) -> Path:
    """A new, empty ``<workdir>/run-<UTC stamp>`` (``-2``, ``-3``, ... when a run started in the same second)."""
    stamp = dt.datetime.fromtimestamp(time.time() if now is None else now, tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = workdir / (f"run-{stamp}" if n == 1 else f"run-{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise DemoError(f"cannot make a new run directory in {workdir}")


def _port_note(what: str, asked: int, got: int) -> str | None:
    """Why ``what`` is not on the port asked for (None when it is)."""
    if asked == 0:
        return f"{what}: port {got} (any free port, as asked)"
    if got != asked:
        return f"{what}: port {asked} is taken on 127.0.0.1 (most often by a broker or service already there), so {got}"
    return None


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
    from monitor.config import ConfigError, parse_config
    from simulators import LivePublisher, Simulation, write_labels
    from simulators.broker import BrokerOptions
    from simulators.live import fault_events, simulation_rows

    if opts.speed <= 0 or not math.isfinite(opts.speed):
        raise DemoError(f"--speed must be a positive number, got {opts.speed}")
    run_dir = new_run_dir(opts.workdir)
    result = DemoResult(run_dir=run_dir)
    notes: list[str] = []  # what stays on top of the redrawn screen

    def note(line: str) -> None:
        notes.append(line)
        print(line, file=out, flush=True)

    note(f"this run's records: {run_dir} (models: {opts.workdir / 'artifacts'})")
    broker: EmbeddedBroker | None = None
    if opts.broker is None:
        broker = EmbeddedBroker("127.0.0.1", port_or_free("127.0.0.1", opts.broker_port))
        broker.start()
        host, port = broker.host, broker.port
        note(f"embedded MQTT broker (amqtt, MQTT 3.1.1) on {broker.address}")
        if (why := _port_note("embedded broker", opts.broker_port, port)) is not None:
            note(why)
    else:
        host, port = opts.broker
        note(f"using the MQTT broker at {host}:{port} (MQTT 3.1.1)")
    result.broker = f"{host}:{port}"
    view = LiveView(UNITS, out, opts.interactive, speed=opts.speed)
    app = None
    files: FilesSink | None = None
    feed: OutputFeed | None = None
    recorder: DataRecorder | None = None
    publisher = None
    try:
        artifacts, result.train_seconds, result.trained = train_demo_models(opts, out)
        if result.trained:
            note(f"trained in {result.train_seconds:.1f} s:")
        else:
            note(f"reusing the models trained earlier in {opts.workdir / 'artifacts'} (--retrain to train again):")
        for line in describe_models(artifacts):
            note("  " + line)
        metrics_port = port_or_free("127.0.0.1", opts.metrics_port)
        if (why := _port_note("metrics", opts.metrics_port, metrics_port)) is not None:
            note(why)
        runnable = runnable_config(opts, artifacts)
        service = service_config(runnable, opts, host, port, metrics_port)
        try:
            cfg = parse_config(service)
            config_path = write_config(run_dir / CONFIG_FILE, runnable, _config_header(opts, host, port, metrics_port))
        except ConfigError as exc:
            raise DemoError(f"the demo's own config is invalid: {exc}") from exc
        note(f"config to run this service yourself: {config_path} (its header says how)")

        from monitor.app import App
        from monitor.startup import StartupError

        try:
            with _quiet_service_logs():  # also the level the scorer process logs at
                app = App(cfg)
        except StartupError as exc:
            raise DemoError(str(exc)) from exc
        files = FilesSink(run_dir)
        # Subscribed before the service starts: the view sees its first score.
        feed = OutputFeed(
            host, port, cfg.mqtt.topics.prefix, [view, files], client_id=f"{CLIENT_ID}-view", protocol=mqtt.MQTTv311
        )
        try:
            feed.start()
        except OutputFeedError as exc:
            raise DemoError(f"the live view: {exc}") from exc
        with _quiet_service_logs():
            app.start()
            if not app.link.subscribed.wait(15):
                raise DemoError(f"the service could not connect to the broker at {host}:{port}")
            result.metrics_url = f"http://127.0.0.1:{app.metrics_port}/metrics"
            # Start the simulated clock so that, faster than real time, the last reading is stamped about now.
            span_s = (opts.speed - 1.0) * opts.duration_s if opts.duration_s is not None and opts.speed > 1 else 0.0
            sim = Simulation(demo_scenario(opts, with_fault=True), seed=RUN_SEED, start_epoch=time.time() - span_s)
            recorder = DataRecorder(run_dir / DATA_FILE, sim.sensors)
            publisher = LivePublisher(
                recorder.tee(simulation_rows(sim)),
                options=BrokerOptions(host=host, port=port, protocol="3.1.1", client_id=f"{CLIENT_ID}-sim"),
                speed=opts.speed,
                qos=1,
                events=fault_events(sim.labels()),
            )
            publisher.start()
            if on_streaming is not None:
                on_streaming()
            _stream(opts, stop, view, files, publisher, app, [*notes, ""], result.metrics_url, out)
    finally:
        if publisher is not None:
            publisher.stop()
            publisher.join(10)
            result.rows_published = publisher.published
            result.publisher_error = publisher.error
        if app is not None:
            result.stop_code = app.stop(cfg.shutdown_timeout_s)
        if feed is not None:
            time.sleep(SETTLE_S)  # the last alerts and scores the service published, on their way to the view
            feed.close()
        for closing in (files, recorder):
            if closing is not None:
                closing.close()
        if broker is not None and not broker.stop():
            log.warning("the embedded broker did not stop in time")
    assert publisher is not None and recorder is not None
    result.events = list(view.events)
    result.scores_seen = view.scores_seen
    last_ts = sim.start_epoch + (publisher.published / len(UNITS))
    write_labels([lab for lab in sim.labels(last_ts) if lab.start < last_ts], run_dir / LABELS_FILE)
    result.report = write_report(run_dir, out, signals=recorder.rows > 0)
    return result


def _config_header(opts: DemoOptions, host: str, port: int, metrics_port: int) -> list[str]:
    """The saved config's header: how to run it, and what the demo's own service ran with instead."""
    host_port = opts.broker if opts.broker is not None else LOCAL_BROKER
    broker = f"{host_port[0]}:{host_port[1]}"
    lines = ["Written by `plantwatch demo`: its units, trained models and alert policy, to run by hand:"]
    if opts.broker is None:
        lines += [
            "  mosquitto -p 1883 &          # any MQTT 5 broker on localhost:1883; elsewhere: edit mqtt.host / port",
            '                               # (a broker that speaks only MQTT 3.1.1: add mqtt.protocol: "3.1.1")',
        ]
    lines += [
        "  plantwatch check-config plantwatch.yaml",
        "  plantwatch run --config plantwatch.yaml",
        f"  plantwatch replay data.csv --retime --broker {broker}   # this run's plant again, stamped from now",
        "",
        "The demo's own service ran with this file, but:",
    ]
    if opts.broker is None:
        lines.append(f"  mqtt {host}:{port}, protocol 3.1.1: the embedded amqtt broker, gone when the demo ended")
    else:
        lines.append("  mqtt keepalive_s 15")
    lines.append(f"  metrics 127.0.0.1:{metrics_port}; scheduler max_batch 256, max_delay_ms 10; shutdown_timeout_s 10")
    if opts.speed > 1 and opts.duration_s is None:
        lines.append(
            f"  limits.max_clock_skew_s {ENDLESS_FAST_SKEW_S:.0f}: an endless run at {opts.speed:g}x stamps its "
            "readings ahead of the wall clock"
        )
    return lines


def _stream(
    opts: DemoOptions,
    stop: threading.Event,
    view: LiveView,
    files: FilesSink,
    publisher: LivePublisher,
    app: App,
    notes: list[str],
    metrics_url: str,
    out: TextIO,
) -> None:
    """Draw the view every ``refresh_s`` until stopped, the duration passed, the simulator ended or the service
    failed. ``notes``: the lines printed before (broker, training summary, where the records go), kept on top of
    a redrawn screen."""
    started = time.monotonic()
    if opts.speed == 1:
        clocks = "alert times: event time (the readings' ts), UTC; at 1x the same as the wall clock"
    else:
        clocks = (
            f"alert times: event time (the simulated plant's clock, running {opts.speed:g}x the wall clock), UTC, "
            "with the wall time each event arrived"
        )
    header = [
        f"plantwatch demo: {len(UNITS)} simulated reactors at {opts.speed:g}x real time; a "
        f"{opts.fault_magnitude:g} K bias on {FAULT_UNIT}'s {FAULT_SENSOR} from {opts.fault_at_s:g} s "
        f"for {opts.fault_duration_s:g} s (simulated time)",
        f"metrics {metrics_url}",
        clocks,
    ]
    if not opts.interactive:
        print("\n".join(header), file=out, flush=True)
    last_status = 0.0
    while not stop.wait(opts.refresh_s):
        elapsed = time.monotonic() - started
        view.render([*notes, *header, f"running {elapsed:5.0f} s (wall), {publisher.published} readings published"])
        files.flush()  # scores.csv readable while the demo runs
        if not opts.interactive and elapsed - last_status >= STATUS_EVERY_S:
            last_status = elapsed
            print(f"[{elapsed:4.0f} s wall] " + " | ".join(view.status_lines()), file=out, flush=True)
        if opts.duration_s is not None and elapsed >= opts.duration_s:
            return
        if publisher.done.is_set():
            return
        if app.failed.is_set():
            print("a service thread failed; stopping", file=out, flush=True)
            return
