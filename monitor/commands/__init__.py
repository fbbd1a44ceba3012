"""One module per `plantwatch` subcommand: each exposes HELP, add_arguments(parser) and main(args) -> int."""

from __future__ import annotations

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
