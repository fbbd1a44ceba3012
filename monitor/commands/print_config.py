"""`plantwatch print-config FILE`: the effective configuration (YAML + environment + defaults), secrets masked."""

from __future__ import annotations

import argparse
import sys

import yaml

from monitor.config import ConfigError, load_config, mask_secrets

HELP = "Print the effective configuration (defaults and environment overrides applied, secrets masked)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML configuration file")


def main(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    print(yaml.safe_dump(mask_secrets(cfg), sort_keys=False), end="")
    return 0
