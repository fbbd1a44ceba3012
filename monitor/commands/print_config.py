"""`plantwatch print-config FILE`: the effective configuration (YAML + environment + defaults), secrets masked."""

from __future__ import annotations

import argparse

import yaml

from monitor.commands import add_config_argument, config_file, load_config_or_report
from monitor.config import mask_secrets

HELP = "Print the effective configuration (defaults and environment overrides applied, secrets masked)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    cfg = load_config_or_report(config_file(args))
    if cfg is None:
        return 2
    print(yaml.safe_dump(mask_secrets(cfg), sort_keys=False), end="")
    return 0
