"""`plantwatch print-config FILE`: the effective configuration (YAML + environment + defaults), secrets masked."""

from __future__ import annotations

import argparse

import yaml

from monitor.commands import load_config_or_report
from monitor.config import mask_secrets

HELP = "Print the effective configuration (defaults and environment overrides applied, secrets masked)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML configuration file")


def main(args: argparse.Namespace) -> int:
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    print(yaml.safe_dump(mask_secrets(cfg), sort_keys=False), end="")
    return 0
