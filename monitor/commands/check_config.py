"""`plantwatch check-config FILE`: validate a configuration without starting anything (exit 0 ok, 2 invalid)."""

from __future__ import annotations

import argparse
import sys

from monitor.commands import load_config_or_report
from monitor.config import check_artifacts

HELP = "Validate a configuration file: print each error with its field path; exit 2 if invalid."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML configuration file")
    parser.add_argument(
        "--skip-artifacts", action="store_true", help="do not check that the model artifact directories exist"
    )


def main(args: argparse.Namespace) -> int:
    cfg = load_config_or_report(args.config)
    if cfg is None:
        return 2
    problems = [] if args.skip_artifacts else check_artifacts(cfg)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 2
    print(f"{args.config}: OK ({len(cfg.units)} units)")
    return 0
