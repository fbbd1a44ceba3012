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
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

import paho.mqtt.client as mqtt

from monitor.demo.broker import EmbeddedBroker, port_or_free
from monitor.demo.config_file import write_config
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
from monitor.demo.report import DATA_FILE, LABELS_FILE, write_report
from monitor.demo.training import train_demo_models
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
    from simulators.live import fault_events, simulation_rows

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
    view = LiveView(UNITS, out, opts.interactive)
    app = None
    files: FilesSink | None = None
    feed: OutputFeed | None = None
    recorder: DataRecorder | None = None
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
        files = FilesSink(opts.workdir)
        # Subscribed before the service starts: the view sees its first score.
        feed = OutputFeed(
            host, port, cfg.mqtt.topics.prefix, [view, files], client_id=f"{CLIENT_ID}-view", protocol=mqtt.MQTTv311
        )
        try:
            feed.start()
        except OutputFeedError as exc:
            raise DemoError(f"the live view: {exc}") from exc
        with _quiet_service_logs(opts.interactive):
            app.start()
            if not app.link.subscribed.wait(15):
                raise DemoError(f"the service could not connect to the broker at {host}:{port}")
            result.metrics_url = f"http://127.0.0.1:{app.metrics_port}/metrics"
            # Start the simulated clock so that, faster than real time, the last reading is stamped about now.
            span_s = (opts.speed - 1.0) * opts.duration_s if opts.duration_s is not None and opts.speed > 1 else 0.0
            sim = Simulation(demo_scenario(opts, with_fault=True), seed=RUN_SEED, start_epoch=time.time() - span_s)
            recorder = DataRecorder(opts.workdir / DATA_FILE, sim.sensors)
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
            _stream(opts, stop, view, files, publisher, app, result.metrics_url, host, port, out)
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
    write_labels([lab for lab in sim.labels(last_ts) if lab.start < last_ts], opts.workdir / LABELS_FILE)
    result.report = write_report(opts.workdir, out, signals=recorder.rows > 0)
    return result


def _stream(
    opts: DemoOptions,
    stop: threading.Event,
    view: LiveView,
    files: FilesSink,
    publisher: LivePublisher,
    app: App,
    metrics_url: str,
    host: str,
    port: int,
    out: TextIO,
) -> None:
    """Draw the view every ``refresh_s`` until stopped, the duration passed, the simulator ended or the service
    failed."""
    started = time.monotonic()
    header = [
        f"plantwatch demo: {len(UNITS)} simulated reactors at {opts.speed:g}x real time; a "
        f"{opts.fault_magnitude:g} K bias on {FAULT_UNIT}'s {FAULT_SENSOR} from {opts.fault_at_s:g} s "
        f"for {opts.fault_duration_s:g} s",
        f"broker {host}:{port}   metrics {metrics_url}   work dir {opts.workdir}",
    ]
    if not opts.interactive:
        print("\n".join(header), file=out, flush=True)
    last_status = 0.0
    while not stop.wait(opts.refresh_s):
        elapsed = time.monotonic() - started
        view.render([*header, f"running {elapsed:5.0f} s, {publisher.published} readings published"])
        files.flush()  # scores.csv readable while the demo runs
        if not opts.interactive and elapsed - last_status >= STATUS_EVERY_S:
            last_status = elapsed
            print(f"[{elapsed:4.0f} s] " + " | ".join(view.status_lines()), file=out, flush=True)
        if opts.duration_s is not None and elapsed >= opts.duration_s:
            return
        if publisher.done.is_set():
            return
        if app.failed.is_set():
            print("a service thread failed; stopping", file=out, flush=True)
            return
