"""The `plantwatch` command line: one console script, one subcommand per job.

Each subcommand lives in its own module, which exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported only
when their command runs, so `plantwatch simulate` works without torch and
`--help` stays fast. Exit codes: 0 ok, 1 runtime failure, 2 bad input or config.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from monitor.log import setup_logging

# command name -> module implementing it
COMMANDS: dict[str, str] = {
    "run": "monitor.commands.run",
    "check-config": "monitor.commands.check_config",
    "print-config": "monitor.commands.print_config",
    "backtest": "monitor.commands.backtest",
    "train": "models.train_cli",
    "simulate": "simulators.simulate_cli",
    "replay": "simulators.replay_cli",
}


def _available_commands() -> dict[str, ModuleType]:
    """Import each command module that exists (others are skipped, so a partial install still runs)."""
    found: dict[str, ModuleType] = {}
    for name, module_name in COMMANDS.items():
        try:
            found[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # the command's own module is not there
            raise
    return found


def build_parser(commands: dict[str, ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plantwatch", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in commands.items():
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    commands = _available_commands()
    args = build_parser(commands).parse_args(argv)
    setup_logging(args.log_level)
    result: int = commands[args.command].main(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
