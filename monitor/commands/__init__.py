"""One module per `plantwatch` subcommand: each exposes HELP, add_arguments(parser) and main(args) -> int."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.config import ConfigError, PlantwatchConfig, load_config


def load_config_or_report(path: str | Path) -> PlantwatchConfig | None:
    """The validated config, or None after printing each error as "field.path: message" on stderr (exit 2)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return None


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """The config file as ``FILE`` or as ``--config FILE``: `run` and `backtest` take the option, so a user who
    checks the file they are about to run types it the same way; ``config_file(args)`` reads either."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("config", nargs="?", help="YAML configuration file")
    group.add_argument("--config", dest="config_option", metavar="FILE", help="the same, as `run --config` takes it")


def config_file(args: argparse.Namespace) -> str:
    return str(args.config or args.config_option)
