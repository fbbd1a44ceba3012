"""`plantwatch run --config FILE`: the monitoring service, until SIGTERM or SIGINT.

Exit codes: 0 clean stop, 1 runtime failure (a worker died, a stop step missed its deadline),
2 refused before connecting: invalid configuration, device or artifact, or a metrics port or address it cannot
listen on (one "key.path: reason" line each; the same checks as `plantwatch check-config`, monitor.startup.preflight).
The systemd unit does not restart on 2 (RestartPreventExitStatus=2): a restart cannot fix any of them.
Signals only set events here; the main thread does the work: SIGTERM/SIGINT stop, SIGHUP reads the file again
and reloads the model artifacts its units name (detector, forecaster, shadow: a promotion is a config edit and a
SIGHUP; the buffers and alert state are kept; an invalid file or artifact keeps the old models).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from monitor.commands import load_config_or_report
from monitor.config import ConfigError, PlantwatchConfig, check_artifacts, load_config, with_model_sections

HELP = "Run the monitoring service (MQTT in; metrics, alerts, scores and forecasts out)."

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML configuration file")


def reread_model_sections(path: str, running: PlantwatchConfig) -> PlantwatchConfig | None:
    """The running config with the units' detector, forecaster and shadow sections read again from ``path`` (a
    promotion, a new shadow); None, logged, when the file is now invalid or configures other units. Other changes
    need a restart: a WARNING says so, and they are not applied."""
    try:
        fresh = load_config(path)
        applied = with_model_sections(running, fresh)
    except (ConfigError, ValueError) as exc:
        problems = exc.errors if isinstance(exc, ConfigError) else [str(exc)]
        log.error("SIGHUP: %s not applied, the loaded models stay: %s", path, "; ".join(problems))
        return None
    if applied.model_dump() != fresh.model_dump():
        log.warning("SIGHUP applies the units' detector, forecaster and shadow sections; restart for the other changes")
    return applied


def main(args: argparse.Namespace) -> int:
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    problems = check_artifacts(cfg)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 2

    # Imported once the config is known to be valid: these import the model runtimes.
    from monitor.app import App
    from monitor.startup import StartupError

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
            log.info("SIGHUP: reading %s again and reloading the model artifacts", args.config)
            fresh = reread_model_sections(args.config, app.cfg)
            if fresh is None:
                app.metrics.model_reloads.labels("error").inc()
            else:
                app.reload(fresh)
        if app.failed.is_set():
            log.error("a worker thread failed; stopping")
            break
    log.info("stopping (deadline %.1f s)", cfg.shutdown_timeout_s)
    code = app.stop(cfg.shutdown_timeout_s)
    return 1 if app.failed.is_set() else code
