"""`plantwatch check-config FILE`: every check `plantwatch run` makes before it connects, without starting anything.

The same checks, by the same code: the config file (load_config: types, ranges, unknown keys, no password in
the file), the MQTT client settings (password file, TLS files), the metrics address (bound on port 0: the
configured port may be held by the running service, so only `run` finds it busy), and monitor.startup.preflight:
the device, every artifact loaded, one artifact per model name, each unit's sensors against its models.
Exit 0 ok, 2 refused, as `run`; each problem one "key.path: reason" line on stderr. A shadow candidate
(UnitConfig.shadow) that would not load or does not fit its unit is a "warning: key.path: reason" line with exit 0:
`run` serves the unit without it.
"""

from __future__ import annotations

import argparse
import sys

from monitor.commands import add_config_argument, config_file, load_config_or_report
from monitor.config import check_artifacts, check_shadow_artifacts
from monitor.health import listen_address_problem
from monitor.mqtt import client_settings_problem

HELP = "Check a configuration as `run` would before connecting: print each problem with its key path; exit 2."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--skip-artifacts",
        action="store_true",
        help="check the file, the MQTT client settings and the metrics address only: no device, no artifacts "
        "(and no torch import)",
    )


def main(args: argparse.Namespace) -> int:
    cfg = load_config_or_report(config_file(args))
    if cfg is None:
        return 2
    problems = [p for p in (listen_address_problem(cfg.metrics.host), client_settings_problem(cfg.mqtt)) if p]
    warnings = check_shadow_artifacts(cfg)  # a shadow that cannot load is left out by `run`, never a refusal
    if not problems and not args.skip_artifacts:
        problems = check_artifacts(cfg)
    if not problems and not args.skip_artifacts:
        from monitor.startup import StartupError, preflight  # imports torch

        try:
            warnings = list(preflight(cfg).shadow_problems)
        except StartupError as exc:
            problems = [str(exc)]
    for line in warnings:
        print(f"warning: {line} (the service runs without this shadow)", file=sys.stderr)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 2
    checked = "the file and settings only (--skip-artifacts)" if args.skip_artifacts else "all pre-flight checks"
    units = f"{len(cfg.units)} unit{'' if len(cfg.units) == 1 else 's'}"
    print(f"{config_file(args)}: OK ({units}; {checked})")
    return 0
