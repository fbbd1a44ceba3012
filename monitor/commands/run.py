"""`plantwatch run --config FILE`: the monitoring service, until SIGTERM or SIGINT.

Exit codes: 0 clean stop, 1 runtime failure (a worker died, a stop step missed its deadline),
2 refused before connecting: invalid configuration, device or artifact, or a metrics port or address it cannot
listen on (one "key.path: reason" line each; the same checks as `plantwatch check-config`, monitor.app.preflight).
The systemd unit does not restart on 2 (RestartPreventExitStatus=2): a restart cannot fix any of them.
Signals only set events here; the main thread does the work: SIGTERM/SIGINT stop, SIGHUP reloads
the model artifacts (the buffers and alert state are kept; an invalid artifact keeps the old models).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from monitor.commands import load_config_or_report
from monitor.config import check_artifacts

HELP = "Run the monitoring service (MQTT in; metrics, alerts, scores and forecasts out)."

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML configuration file")


def main(args: argparse.Namespace) -> int:
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    problems = check_artifacts(cfg)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 2

    from monitor.app import App, StartupError  # imports torch: only once the config is known to be valid

    stop = threading.Event()
    reload = threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        reload.set()

    try:
        app = App(cfg)
    except StartupError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    app.start()
    log.info("plantwatch running: %d unit(s)", len(cfg.units))
    while not stop.wait(0.2):
        if reload.is_set():
            reload.clear()
            log.info("SIGHUP: reloading model artifacts")
            app.reload()
        if app.failed.is_set():
            log.error("a worker thread failed; stopping")
            break
    log.info("stopping (deadline %.1f s)", cfg.shutdown_timeout_s)
    code = app.stop(cfg.shutdown_timeout_s)
    return 1 if app.failed.is_set() else code
